"""The GitHub App: JWT, installation tokens, one client per installation (the port's
implementation, composed of its parts)."""

from __future__ import annotations

import math
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from typing import Any

from github.Auth import AppAuth
from github.GithubException import GithubException
from github.GithubIntegration import GithubIntegration
from github.InstallationAuthorization import InstallationAuthorization

from bot.core.errors import BotError, TransientError
from bot.core.github_port import (
    BaseModifiedError,
    CheckInfo,
    CommentInfo,
    Comparison,
    GitHubAppPort,
    GitHubError,
    GitHubPort,
    MergeConflictError,
    MergeNotAllowedError,
    PullRequestInfo,
    ReviewInfo,
)
from bot.gateways.github_archive import (
    SnapshotCache,
)
from bot.gateways.github_base import R, _split, installation_scope, truncate
from bot.gateways.github_checks import Checks
from bot.gateways.github_comments import Comments
from bot.gateways.github_deployments import Deployments
from bot.gateways.github_etags import ConditionalCache
from bot.gateways.github_git import GitData
from bot.gateways.github_http import (
    CallCounter,
    call_with_retries,
    instrument,
    quote,
)
from bot.gateways.github_pulls import PullRequests

__all__ = [
    "BaseModifiedError",
    "CheckInfo",
    "CommentInfo",
    "Comparison",
    "GitHubApp",
    "GitHubError",
    "InstallationClient",
    "MergeConflictError",
    "MergeNotAllowedError",
    "PullRequestInfo",
    "ReviewInfo",
    "TransientError",
    "truncate",
]


class GitHubApp:
    """A GitHub App: JWT auth, installation lookup, and one client per installation."""

    def __init__(
        self,
        app_id: int | str,
        private_key_pem: str,
        api_url: str = "https://api.github.com",
        *,
        user_agent: str = "gitops-bot",
        timeout: float = 15.0,
        max_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = 1.0,
        app_slug: str | None = None,
        snapshot_cache_bytes: int = 256 * 1024 * 1024,
        max_snapshot_bytes: int = 512 * 1024 * 1024,
        etag_cache_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if not str(app_id).strip():
            raise BotError("GitHub App id is empty")
        if "PRIVATE KEY" not in private_key_pem:
            raise BotError("GitHub App private key is not a PEM private key")
        self.api_url = api_url.rstrip("/")
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.sleep = sleep
        self.app_slug = app_slug
        self.max_snapshot_bytes = max_snapshot_bytes
        self.snapshots = SnapshotCache(snapshot_cache_bytes)
        # the answers of every installation's GETs, revalidated with their ETags (0: off)
        self.etags = ConditionalCache(etag_cache_bytes)
        # repo -> (default branch name, when learned): a rename is rare and shows as a 404
        self.default_branches: dict[str, tuple[str, float]] = {}
        self.default_branch_ttl_s = 600.0
        self.auth = AppAuth(app_id, private_key_pem)
        try:
            self.auth.create_jwt()
        except Exception as exc:  # never echo the key: name the failure only
            raise BotError(f"GitHub App private key is unusable ({type(exc).__name__})") from None
        self.counter = CallCounter(urllib.parse.urlparse(self.api_url).path)
        self._integration = GithubIntegration(auth=self.auth, **self.pygithub_kwargs())
        instrument(self._integration.requester, self.counter, timeout)
        self._installations: dict[str, int] = {}
        self._clients: dict[int, InstallationClient] = {}
        self._lock = threading.Lock()

    def pygithub_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.api_url,
            "timeout": max(1, math.ceil(self.timeout)),  # PyGithub insists on an int
            "user_agent": self.user_agent,
            "per_page": 100,
            "retry": None,  # the gateway retries whole idempotent operations itself
            "seconds_between_requests": None,
            "seconds_between_writes": None,
        }

    @property
    def calls(self) -> Counter[str]:
        """Requests made with the app JWT (installation lookups, installation tokens)."""
        return self.counter.calls

    @property
    def rate_limit_remaining(self) -> int | None:
        """The lowest X-RateLimit-Remaining seen across installations (None before any call)."""
        with self._lock:
            seen = [c.rate_limit_remaining for c in self._clients.values()]
        values = [v for v in seen if v is not None]
        return min(values) if values else None

    @property
    def bot_login(self) -> str | None:
        return f"{self.app_slug}[bot]" if self.app_slug else None

    def _retry(self, fn: Callable[[], R], what: str) -> R:
        return call_with_retries(
            fn, what=what, max_retries=self.max_retries, sleep=self.sleep, backoff=self.backoff
        )

    def installation_id(self, repo: str) -> int:
        """The installation covering repo (GET /repos/{o}/{r}/installation, cached)."""
        key = repo.lower()
        with self._lock:
            cached = self._installations.get(key)
        if cached is not None:
            return cached
        owner, name = _split(repo)

        def lookup() -> dict[str, Any]:
            try:
                _, data = self._integration.requester.requestJsonAndCheck(
                    "GET", f"/repos/{quote(owner)}/{quote(name)}/installation"
                )
            except GithubException as exc:
                if exc.status == 404:
                    raise GitHubError(404, f"the GitHub App is not installed on {repo}") from None
                raise
            return dict(data)

        data = self._retry(lookup, "installation lookup")
        if data.get("app_slug") and not self.app_slug:
            self.app_slug = str(data["app_slug"])
        with self._lock:
            self._installations[key] = int(data["id"])
        return int(data["id"])

    def forget_installation(self, repo: str) -> None:
        """Drop a cached lookup (e.g. after an `installation` deleted event), and what that
        installation's conditional GETs kept."""
        with self._lock:
            installation_id = self._installations.pop(repo.lower(), None)
        if installation_id is not None:
            self.etags.forget_scope(installation_scope(installation_id))

    def access_token(self, installation_id: int) -> InstallationAuthorization:
        """A fresh installation token (POST /app/installations/{id}/access_tokens)."""
        return self._retry(
            lambda: self._integration.get_access_token(installation_id), "installation token"
        )

    def client(self, installation_id: int) -> InstallationClient:
        with self._lock:
            client = self._clients.get(installation_id)
            if client is None:
                client = InstallationClient(self, installation_id)
                client.counter.listener = self.counter.listener  # same metrics sink as the app
                self._clients[installation_id] = client
            return client

    def client_for_repo(self, repo: str) -> InstallationClient:
        return self.client(self.installation_id(repo))


class InstallationClient(GitData, PullRequests, Comments, Checks, Deployments):
    """Everything the bot does in the repositories of one installation (installation token):
    implements bot.core.github_port.GitHubPort."""


def _implements_the_port(
    client: InstallationClient, app: GitHubApp
) -> tuple[GitHubPort, GitHubAppPort]:
    """Never called: mypy checks here that the gateway implements the port."""
    return client, app
