"""GitHub as the signed-in user: the App's OAuth code exchange and what that user can read."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
MAX_PAGES = 20  # 100 items a page: 2000 installations or repositories per installation
API_VERSION = "2022-11-28"


class SignInError(Exception):
    """GitHub refused or failed a sign-in step; the message is fit to show (no secrets)."""


@dataclass(frozen=True)
class GitHubUser:
    login: str
    repositories: frozenset[str]  # lower-case owner/name the user can read, where the App is


class GitHubOAuth:
    """The App's OAuth client (user-to-server). The user's token lives only inside `sign_in`."""

    def __init__(
        self,
        client_id: str,
        client_secret: Any,  # bot.settings.Secret
        web_url: str,
        api_url: str,
        *,
        session: requests.Session | None = None,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.web_url = web_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self._http = session or requests.Session()

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        """Where to send the browser: GitHub's consent page, back to `redirect_uri`."""
        query = urlencode(
            {"client_id": self.client_id, "redirect_uri": redirect_uri, "state": state}
        )
        return f"{self.web_url}/login/oauth/authorize?{query}"

    def sign_in(self, code: str, redirect_uri: str) -> GitHubUser:
        """Exchange `code` for a user token, then ask GitHub who the user is and which
        repositories of the App's installations they can read. The token is dropped after."""
        token = self._exchange(code, redirect_uri)
        user = self._get(token, "/user")
        login = user.get("login") if isinstance(user, dict) else None
        if not isinstance(login, str) or not login:
            raise SignInError("GitHub did not say who signed in")
        readable: set[str] = set()
        for installation in self._paginate(token, "/user/installations", "installations"):
            path = f"/user/installations/{int(installation['id'])}/repositories"
            for repo in self._paginate(token, path, "repositories"):
                if (repo.get("permissions") or {}).get("pull", True):
                    readable.add(str(repo["full_name"]).lower())
        return GitHubUser(login, frozenset(readable))

    def _exchange(self, code: str, redirect_uri: str) -> str:
        try:
            response = self._http.post(
                f"{self.web_url}/login/oauth/access_token",
                data={
                    "client_id": self.client_id,
                    "client_secret": self._client_secret.get(),
                    "code": code,
                    "redirect_uri": redirect_uri,
                },
                headers={"Accept": "application/json"},
                timeout=TIMEOUT_S,
            )
        except requests.RequestException as exc:
            raise SignInError(f"GitHub could not be reached ({type(exc).__name__})") from None
        try:
            answer = response.json() if response.status_code == 200 else {}
        except ValueError:
            answer = {}
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if isinstance(token, str) and token:
            return token
        error = answer.get("error") if isinstance(answer, dict) else None
        reason = error if isinstance(error, str) and error.isidentifier() else "no token"
        log.warning("sign-in: GitHub refused the code exchange (%s)", reason)
        raise SignInError(f"GitHub refused the sign-in ({reason})")

    def _get(self, token: str, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._request(token, f"{self.api_url}{path}", params).json()

    def _request(self, token: str, url: str, params: dict[str, Any] | None) -> requests.Response:
        try:
            response = self._http.get(
                url,
                params=params,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": API_VERSION,
                },
                timeout=TIMEOUT_S,
            )
        except requests.RequestException as exc:
            raise SignInError(f"GitHub could not be reached ({type(exc).__name__})") from None
        if response.status_code != 200:
            path = url[len(self.api_url) :].split("?")[0]
            raise SignInError(f"GitHub answered {response.status_code} to GET {path}")
        return response

    def _paginate(self, token: str, path: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = f"{self.api_url}{path}"
        params: dict[str, Any] | None = {"per_page": 100}
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response = self._request(token, url, params)
            page = response.json().get(key)
            if not isinstance(page, list):
                raise SignInError(f"GitHub's answer to GET {path} has no {key}")
            items.extend(item for item in page if isinstance(item, dict))
            following = response.links.get("next", {}).get("url")
            # the token goes to the API only, whatever a Link header says
            url = following if following and following.startswith(self.api_url + "/") else None
            params = None
        return items
