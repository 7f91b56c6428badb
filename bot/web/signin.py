"""Sign in with GitHub for the operator page: OAuth state, the signed session cookie, logout."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Blueprint, Flask, Response, redirect, request, session
from werkzeug.wrappers import Response as BaseResponse

from bot.gateways.github_user import SignInError

log = logging.getLogger(__name__)

SESSION_COOKIE = "gitops_bot_session"
CALLBACK_PATH = "/oauth/callback"
STATE_TTL_S = 600.0  # a sign-in must come back from GitHub within 10 minutes
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_OAUTH_ERROR = re.compile(r"[a-z_]{1,64}")

# No script, nothing loaded; forms may post only back to the bot (the logout button).
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SignInSettings(Protocol):
    """What sign-in reads from `bot.settings.Settings`."""

    @property
    def session_secret(self) -> Any: ...
    @property
    def public_url(self) -> str: ...
    @property
    def session_lifetime_s(self) -> float: ...


class OAuthClient(Protocol):
    """`bot.gateways.github_user.GitHubOAuth`, as sign-in uses it."""

    def authorize_url(self, state: str, redirect_uri: str) -> str: ...
    def sign_in(self, code: str, redirect_uri: str) -> Any: ...


@dataclass(frozen=True)
class Viewer:
    """The signed-in user and the configured repositories GitHub says they can read."""

    login: str
    repos: frozenset[str]  # lower-case owner/name
    csrf: str  # the logout form's token

    def can_see(self, repo: object) -> bool:
        return isinstance(repo, str) and repo.lower() in self.repos


def current_viewer(now: float | None = None) -> Viewer | None:
    """The viewer of this request's signed session cookie, or None (signed out, expired,
    forged: Flask drops a cookie whose signature or age does not check out)."""
    login, repos, expires, csrf = (session.get(k) for k in ("login", "repos", "exp", "csrf"))
    if not isinstance(login, str) or not isinstance(repos, list) or not isinstance(csrf, str):
        return None
    if not isinstance(expires, (int, float)) or expires <= (time.time() if now is None else now):
        return None
    return Viewer(login, frozenset(str(r).lower() for r in repos), csrf)


class _UsedStates:
    """OAuth states already consumed by this process (a replayed callback is refused even
    with the cookie from before it was used); forgotten once they could not be valid."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, state: str, now: float) -> bool:
        with self._lock:
            for old in [s for s, at in self._seen.items() if now - at > STATE_TTL_S]:
                del self._seen[old]
            if state in self._seen:
                return False
            self._seen[state] = now
            return True


def configure_sessions(app: Flask, settings: SignInSettings) -> None:
    """Signed, HttpOnly, SameSite=Lax cookies (Secure on https), never refreshed by use."""
    from datetime import timedelta

    app.secret_key = settings.session_secret.get()
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.session_lifetime_s),
        SESSION_REFRESH_EACH_REQUEST=False,  # a sign-in ends on time, however busy
    )


def signin_blueprint(
    oauth: OAuthClient,
    settings: SignInSettings,
    repos: Collection[str],
    render: Callable[..., Response],
    *,
    clock: Callable[[], float] = time.time,
) -> Blueprint:
    """Routes GET /login, GET /oauth/callback and POST /logout. `render(status, **context)`
    draws the sign-in page (templates/signin.html.j2)."""
    bp = Blueprint("signin", __name__)
    redirect_uri = settings.public_url + CALLBACK_PATH
    configured = {r.lower(): r for r in repos}
    used = _UsedStates()

    def failed(status: int, message: str) -> Response:
        return render(status, message=message)

    @bp.get("/login")
    def login() -> BaseResponse:
        state = secrets.token_urlsafe(32)
        # a GET changes no sign-in: a current session stays until the callback replaces it
        session["oauth_state"] = state
        session["state_at"] = clock()
        response = redirect(oauth.authorize_url(state, redirect_uri), code=302)
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.get(CALLBACK_PATH)
    def callback() -> BaseResponse:
        expected = session.pop("oauth_state", None)  # single use, whatever happens next
        issued = session.pop("state_at", None)
        args: Mapping[str, str] = request.args
        state = args.get("state", "")
        now = clock()
        if (
            not isinstance(expected, str)
            or not isinstance(issued, (int, float))
            or not hmac.compare_digest(state.encode(), expected.encode())
            or not 0 <= now - issued <= STATE_TTL_S
            or not used.first_use(state, now)
        ):
            log.warning("sign-in refused: OAuth state missing, mismatched, stale or replayed")
            return failed(400, "This sign-in was not started here or was already used.")
        error = args.get("error")
        if error is not None:
            reason = error if _OAUTH_ERROR.fullmatch(error) else "error"
            log.info("sign-in: GitHub answered %s", reason)
            return failed(403, f"GitHub did not sign you in ({reason}).")
        code = args.get("code", "")
        if not _CODE.fullmatch(code):
            return failed(400, "GitHub's answer has no valid code.")
        try:
            user = oauth.sign_in(code, redirect_uri)
        except SignInError as exc:
            return failed(502, f"Sign-in failed: {exc}.")
        permitted = sorted(name for key, name in configured.items() if key in user.repositories)
        session.clear()
        session.permanent = True
        session.update(
            login=user.login,
            repos=permitted,
            exp=int(now + settings.session_lifetime_s),
            csrf=secrets.token_urlsafe(32),
        )
        log.info(
            "sign-in: %s can read %d of %d configured repositories",
            user.login,
            len(permitted),
            len(configured),
        )
        return redirect("/", code=303)

    @bp.post("/logout")
    def logout() -> BaseResponse:
        viewer = current_viewer(clock())
        token = request.form.get("csrf", "")
        if viewer is not None and not hmac.compare_digest(token.encode(), viewer.csrf.encode()):
            return failed(400, "This sign-out request did not come from the operator page.")
        session.clear()
        return redirect("/", code=303)

    return bp
