"""Test helpers for the operator page's sign-in: sessions without the OAuth dance."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from bot.web.signin import SESSION_COOKIE

SESSION_SECRET = "session-secret-for-tests-0123456789abcdef"


class NoOAuth:
    """An OAuth client for tests that sign in through `sign_in_as`: never called."""

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        raise AssertionError("this test does not go through GitHub")

    def sign_in(self, code: str, redirect_uri: str) -> Any:
        raise AssertionError("this test does not go through GitHub")


def session_data(login: str, repos: Iterable[str], lifetime_s: float = 3600) -> dict[str, Any]:
    return {
        "_permanent": True,
        "login": login,
        "repos": sorted(repos),
        "exp": int(time.time() + lifetime_s),
        "csrf": secrets.token_urlsafe(16),
    }


def sign_in_as(client: FlaskClient, login: str, repos: Iterable[str]) -> str:
    """Put a signed session for `login` seeing `repos` in the client; returns its CSRF token."""
    data = session_data(login, repos)
    with client.session_transaction() as session:
        session.clear()
        session.update(data)
    return str(data["csrf"])


def session_cookie(app: Flask, data: dict[str, Any]) -> str:
    """The signed cookie value the app would set for `data` (for a browser)."""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None
    return str(serializer.dumps(data))


__all__ = ["SESSION_COOKIE", "NoOAuth", "session_cookie", "session_data", "sign_in_as"]
