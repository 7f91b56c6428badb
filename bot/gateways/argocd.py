"""Argo CD API client: read an Application's sync and health status (the reconcile loop's
answer to notifications that never came)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from bot.core.errors import BotError, TransientError


class ArgoCDError(BotError):
    """Argo CD answered, but not with the application (unknown name, no permission)."""


class ArgoCDClient:
    """`GET /api/v1/applications/{name}` with a bearer token (an Argo CD account's API
    token with `applications, get` on the mapped applications)."""

    def __init__(self, server: str, token: str, *, timeout: float = 10.0) -> None:
        self.base = server.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def sync(self, name: str, revision: str) -> None:
        """Start a sync of `name` to `revision` (Argo CD answers once the operation is
        queued; the notifications report its progress)."""
        response = self._send(
            "POST",
            name,
            "/sync",
            f"to the sync of {name}",
            json={"name": name, "revision": revision},
        )
        if response.status_code != 200:
            raise ArgoCDError(f"Argo CD refused to sync {name} ({response.status_code})")

    def application(self, name: str) -> dict[str, Any]:
        response = self._send("GET", name, "", f"for {name}")
        if response.status_code != 200:
            # Argo CD answers 403 for unknown applications too (it does not tell them apart)
            raise ArgoCDError(f"Argo CD answered {response.status_code} for application {name}")
        try:
            data = response.json()
        except ValueError:
            raise ArgoCDError(f"Argo CD's answer for {name} is not JSON") from None
        if not isinstance(data, dict):
            raise ArgoCDError(f"Argo CD's answer for {name} is not an application")
        return data

    def _send(
        self, method: str, name: str, suffix: str, about: str, **kwargs: Any
    ) -> requests.Response:
        """A request about application `name`; unreachable, 5xx and 429 are transient."""
        url = f"{self.base}/api/v1/applications/{quote(name, safe='')}{suffix}"
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise TransientError(f"Argo CD unreachable ({type(exc).__name__})") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"Argo CD answered {response.status_code} {about}")
        return response
