"""GitHub's OAuth web flow for the App's own client, and the user-to-server endpoints.

The web endpoints (`{web}/login/oauth/authorize`, `{web}/login/oauth/access_token`) are not
REST operations, so they have no OpenAPI description: their requests are checked by hand
against GitHub's documentation ("Generating a user access token for a GitHub App"); anything
outside it lands in `validation_errors` like an OpenAPI failure. Which GitHub user the
browser is signed in as is `web_user` (None: GitHub would show its sign-in form).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from . import shapes
from .state import Repo, now

AUTHORIZE = "/login/oauth/authorize"
ACCESS_TOKEN = "/login/oauth/access_token"
CODE_TTL = 600  # GitHub: "The code expires after 10 minutes"
USER_TOKEN_TTL = 28800  # user access tokens expire after 8 hours
AUTHORIZE_PARAMS = frozenset(
    {"client_id", "redirect_uri", "login", "scope", "state", "allow_signup", "prompt"}
    | {"code_challenge", "code_challenge_method"}
)
TOKEN_PARAMS = frozenset(
    {"client_id", "client_secret", "code", "redirect_uri", "repository_id", "code_verifier"}
)
DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"

WebResponse = tuple[int, dict[str, str], bytes]


@dataclass
class Grant:
    """An authorization code handed to the browser, exchanged at most once."""

    login: str
    redirect_uri: str
    expires: int


class OAuthMixin:
    """The host class provides `repos`, `calls`, `validation_errors`, `app_id`, `_finish`."""

    client_id: str
    client_secret: str
    web_user: str | None
    callback_urls: list[str]
    user_tokens: dict[str, tuple[str, int]]  # token -> (login, expiry)
    _grants: dict[str, Grant]

    def _init_oauth(self) -> None:
        self.client_id = f"Iv1.{self.app_id:016x}"  # type: ignore[attr-defined]
        self.client_secret = secrets.token_hex(20)
        self.web_user = None
        self.callback_urls = []
        self.user_tokens = {}
        self._grants = {}

    # -- test-side helpers -----------------------------------------------------------------

    def register_callback(self, url: str) -> None:
        """Add a callback URL to the App's settings (*Identifying and authorizing users*)."""
        self.callback_urls.append(url)

    def sign_in_web(self, login: str | None) -> None:
        """The GitHub user the browser is signed in as on GitHub (None: signed out)."""
        self.web_user = login

    def user_token_for(self, login: str) -> str:
        """Issue a user-to-server token as the web flow would (for direct API tests)."""
        token = "ghu_" + secrets.token_urlsafe(27)[:36]
        self.user_tokens[token] = (login, now() + USER_TOKEN_TTL)
        return token

    def readable_repos(self, login: str) -> list[Repo]:
        """Repositories where `login` has an explicit role (what user-to-server calls list)."""
        return [
            r
            for r in self.repos.values()  # type: ignore[attr-defined]
            if r.permissions.get(login, "none") != "none"
        ]

    # -- web flow --------------------------------------------------------------------------

    def _oauth_web(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes | None
    ) -> WebResponse:
        if path == AUTHORIZE and method == "GET":
            return self._authorize_page(dict(parse_qsl(query, keep_blank_values=True)), query)
        if path == ACCESS_TOKEN and method == "POST":
            return self._access_token(query, headers, body)
        return self._web_invalid(method, path, query, f"{method} {path} is not a web endpoint")

    def _web_invalid(self, method: str, path: str, query: str, msg: str) -> WebResponse:
        self.validation_errors.append(f"{method} {path}?{query}: {msg}")  # type: ignore[attr-defined]
        return self._web_finish(method, path, query, 404, {}, b"Not Found")

    def _web_finish(
        self,
        method: str,
        path: str,
        query: str,
        status: int,
        headers: dict[str, str],
        data: bytes,
        body: bytes | None = None,
    ) -> WebResponse:
        from .fake import Call

        self.calls.append(Call(method, path, query, status, path, body))  # type: ignore[attr-defined]
        return status, headers, data

    def _authorize_page(self, params: dict[str, str], query: str) -> WebResponse:
        unknown = set(params) - AUTHORIZE_PARAMS
        if unknown:
            return self._web_invalid("GET", AUTHORIZE, query, f"unknown parameters {unknown}")
        if params.get("client_id") != self.client_id:
            html = b"<!DOCTYPE html><title>Page not found</title><h1>404</h1>"
            return self._web_finish("GET", AUTHORIZE, query, 404, _HTML, html)
        if not self.callback_urls:
            return self._web_invalid("GET", AUTHORIZE, query, "the App has no callback URL")
        redirect = params.get("redirect_uri") or self.callback_urls[0]
        state = params.get("state")
        if not any(_under(redirect, url) for url in self.callback_urls):
            location = _with_query(
                self.callback_urls[0],
                {
                    "error": "redirect_uri_mismatch",
                    "error_description": "The redirect_uri MUST match the registered callback "
                    "URL for this application.",
                    "error_uri": f"{DOCS}/#redirect-uri-mismatch",
                    **({"state": state} if state is not None else {}),
                },
            )
            return self._web_finish("GET", AUTHORIZE, query, 302, {"Location": location}, b"")
        if self.web_user is None:  # GitHub's sign-in form: the test never gets past it
            html = b'<!DOCTYPE html><link rel="icon" href="data:,"><title>Sign in to GitHub</title>'
            html += b"<h1>Sign in to GitHub</h1>"
            return self._web_finish("GET", AUTHORIZE, query, 200, _HTML, html)
        code = secrets.token_hex(10)
        self._grants[code] = Grant(self.web_user, redirect, now() + CODE_TTL)
        location = _with_query(
            redirect, {"code": code, **({"state": state} if state is not None else {})}
        )
        return self._web_finish("GET", AUTHORIZE, query, 302, {"Location": location}, b"")

    def _access_token(self, query: str, headers: dict[str, str], body: bytes | None) -> WebResponse:
        ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
        params = dict(parse_qsl(query, keep_blank_values=True))
        if body:
            if ctype == "application/json":
                params.update({k: str(v) for k, v in json.loads(body).items()})
            elif ctype == "application/x-www-form-urlencoded":
                params.update(parse_qsl(body.decode(), keep_blank_values=True))
            else:
                return self._web_invalid("POST", ACCESS_TOKEN, query, f"content type {ctype!r}")
        unknown = set(params) - TOKEN_PARAMS
        missing = {"client_id", "client_secret", "code"} - set(params)
        if unknown or missing:
            msg = f"unknown parameters {unknown or '{}'}, missing {missing or '{}'}"
            return self._web_invalid("POST", ACCESS_TOKEN, query, msg)
        if params["client_id"] != self.client_id or not secrets.compare_digest(
            params["client_secret"], self.client_secret
        ):
            answer = _token_error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            )
        else:
            grant = self._grants.pop(params["code"], None)  # single use, whatever happens
            if grant is None or grant.expires <= now():
                answer = _token_error(
                    "bad_verification_code", "The code passed is incorrect or expired."
                )
            elif "redirect_uri" in params and params["redirect_uri"] != grant.redirect_uri:
                answer = _token_error(
                    "redirect_uri_mismatch",
                    "The redirect_uri MUST match the registered callback URL for this application.",
                )
            else:
                answer = {
                    "access_token": self.user_token_for(grant.login),
                    "expires_in": USER_TOKEN_TTL,
                    "refresh_token": "ghr_" + secrets.token_urlsafe(60)[:76],
                    "refresh_token_expires_in": 15897600,
                    "scope": "",
                    "token_type": "bearer",
                }
        accept = headers.get("Accept", "")
        if "application/json" in accept:
            data, out_type = json.dumps(answer).encode(), "application/json; charset=utf-8"
        else:
            data = urlencode({k: str(v) for k, v in answer.items()}).encode()
            out_type = "application/x-www-form-urlencoded; charset=utf-8"
        return self._web_finish(
            "POST", ACCESS_TOKEN, query, 200, {"Content-Type": out_type}, data, body
        )

    # -- user-to-server REST operations ----------------------------------------------------

    def _user_installations(self, login: str) -> dict[int, list[Repo]]:
        found: dict[int, list[Repo]] = {}
        for r in self.readable_repos(login):
            found.setdefault(r.installation_id, []).append(r)
        return found

    def _get_user(self, req: Any) -> tuple[int, Any]:
        return 200, shapes.private_user(req.u, req.user_login)

    def _list_user_installations(self, req: Any) -> tuple[int, Any]:
        installs = self._user_installations(req.user_login)
        items = [
            shapes.installation(req.u, repos[0], self.app_info)  # type: ignore[attr-defined]
            for _, repos in sorted(installs.items())
        ]
        page = self._page(req, items)  # type: ignore[attr-defined]
        return 200, {"total_count": len(items), "installations": page}

    def _list_user_installation_repos(self, req: Any) -> tuple[int, Any]:
        from .fake import NOT_FOUND, HttpError

        repos = self._user_installations(req.user_login).get(int(req.params["installation_id"]))
        if repos is None:
            raise HttpError(404, NOT_FOUND)
        items = [
            {
                **shapes.repository(req.u, r),
                "permissions": shapes.role_permissions(r.permissions[req.user_login]),
            }
            for r in sorted(repos, key=lambda r: r.full_name)
        ]
        page = self._page(req, items)  # type: ignore[attr-defined]
        return 200, {
            "total_count": len(items),
            "repository_selection": "selected",
            "repositories": page,
        }


_HTML = {"Content-Type": "text/html; charset=utf-8"}


def _under(candidate: str, registered: str) -> bool:
    """GitHub: the host and port must match exactly, the path must be the callback's or below."""
    a, b = urlsplit(candidate), urlsplit(registered)
    path = b.path.rstrip("/")
    return (
        (a.scheme, a.netloc) == (b.scheme, b.netloc)
        and (a.path == b.path or a.path.startswith(path + "/"))
        and not a.fragment
    )


def _with_query(url: str, params: dict[str, str]) -> str:
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"


def _token_error(error: str, description: str) -> dict[str, str]:
    anchor = error.replace("_", "-")
    return {"error": error, "error_description": description, "error_uri": f"{DOCS}/#{anchor}"}
