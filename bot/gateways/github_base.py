"""Plumbing shared by the GitHub gateway's parts: requests, retries, installation auth."""

from __future__ import annotations

import functools
import threading
import urllib.parse
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import github
import requests
from github.Auth import AppInstallationAuth
from github.InstallationAuthorization import InstallationAuthorization
from github.Requester import Requester

from bot.gateways.github_etags import ConditionalGets
from bot.gateways.github_http import (
    CallCounter,
    call_with_retries,
    counting_session,
    instrument,
    quote,
)

if TYPE_CHECKING:
    from bot.gateways.github import GitHubApp

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="ClientBase")

PERMISSIONS = ("admin", "maintain", "write", "triage", "read")
TITLE_LIMIT = 255
TEXT_LIMIT = 65535
REF_ATTEMPTS = 3


def truncate(text: str, limit: int) -> str:
    """Cut text to at most limit characters without leaving a Markdown code fence open."""
    if len(text) <= limit:
        return text
    note = f"\n\n… truncated ({len(text)} characters in full)"
    cut = text[: max(0, limit - len(note) - 4)]
    newline = cut.rfind("\n")
    if newline > len(cut) - 2000:
        cut = cut[:newline]
    fences = sum(1 for line in cut.split("\n") if line.lstrip().startswith("```"))
    if fences % 2:
        cut += "\n```"
    return (cut + note)[:limit]


def _split(repo: str) -> tuple[str, str]:
    owner, sep, name = repo.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ValueError(f"repository must be 'owner/name', got {repo!r}")
    return owner, name


def _repo_path(repo: str) -> str:
    owner, name = _split(repo)
    return f"/repos/{quote(owner)}/{quote(name)}"


def installation_scope(installation_id: int) -> str:
    """The scope of an installation's cached GET answers: never shared with another."""
    return f"installation:{int(installation_id)}"


def _operation(
    fn: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], R]:
    """Public operations retry transient failures as a whole (each one is idempotent)."""

    @functools.wraps(fn)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        local = self._local
        if getattr(local, "depth", 0):
            return fn(self, *args, **kwargs)
        local.depth = 1
        try:
            return call_with_retries(
                lambda: fn(self, *args, **kwargs),
                what=fn.__name__,
                max_retries=self.max_retries,
                sleep=self._sleep,
                backoff=self.backoff,
                on_unauthorized=self._auth.invalidate,
            )
        finally:
            local.depth = 0

    return wrapper  # type: ignore[return-value]


class _InstallationAuth(AppInstallationAuth):
    """PyGithub's installation auth (token cached, refreshed before expiry), fetched by the app."""

    def __init__(self, app: GitHubApp, installation_id: int) -> None:
        super().__init__(app.auth, int(installation_id))
        self._app = app

    def _get_installation_authorization(self) -> InstallationAuthorization:
        return self._app.access_token(self.installation_id)

    def invalidate(self) -> None:
        """Forget the cached token (GitHub said 401: revoked or expired early)."""
        self._AppInstallationAuth__installation_authorization = None


class ClientBase:
    """One installation's token, retries, call counting and request plumbing."""

    def __init__(self, app: GitHubApp, installation_id: int) -> None:
        self.app = app
        self.installation_id = installation_id
        self.max_retries = app.max_retries
        self.backoff = app.backoff
        self._sleep = app.sleep
        self._local = threading.local()
        self._auth = _InstallationAuth(app, installation_id)
        self.github = github.Github(auth=self._auth, lazy=True, **app.pygithub_kwargs())
        self.requester: Requester = self.github.requester
        self.counter = CallCounter(urllib.parse.urlparse(app.api_url).path)
        conditional = ConditionalGets(app.etags, installation_scope(installation_id))
        instrument(self.requester, self.counter, app.timeout, conditional)
        self._archive_session = counting_session(self.counter, "GET {archive}")
        self._commits: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._commits_lock = threading.Lock()
        # commit_files requests -> the commit each made (a retried operation looks first)
        self._made: OrderedDict[tuple[str, str, str, str], str] = OrderedDict()
        self._tried: OrderedDict[tuple[object, ...], None] = OrderedDict()

    # ------------------------------------------------------------------ plumbing

    def _first_try(self, *key: object) -> bool:
        """True the first time this client is asked to create `key` blind; a retry of an
        operation whose answer was lost (the write may have landed) then looks first."""
        with self._commits_lock:
            if key in self._tried:
                return False
            self._tried[key] = None
            while len(self._tried) > 1024:
                self._tried.popitem(last=False)
            return True

    @property
    def calls(self) -> Counter[str]:
        return self.counter.calls

    @property
    def rate_limit_remaining(self) -> int | None:
        return self.counter.rate_limit_remaining

    def _request(
        self,
        verb: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> tuple[dict[str, Any], Any]:
        return self.requester.requestJsonAndCheck(
            verb, path, parameters=dict(params) if params else None, input=body
        )

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=params or None)[1]

    def _paginate(
        self, path: str, params: Mapping[str, Any] | None = None, key: str | None = None
    ) -> Iterator[dict[str, Any]]:
        url: str | None = path
        query: dict[str, Any] | None = {"per_page": 100, **(params or {})}
        while url:
            headers, data = self._request("GET", url, params=query)
            items = data.get(key, []) if key and isinstance(data, dict) else data
            yield from items or ()
            url = _next_link(headers.get("link"))
            query = None  # the next link carries the query

    def _git_commit(self, repo: str, sha: str) -> dict[str, Any]:
        """GET git/commits/{sha}, cached: commits are immutable."""
        key = (repo.lower(), sha)
        with self._commits_lock:
            cached = self._commits.get(key)
        if cached is not None:
            return cached
        data = dict(self._get(f"{_repo_path(repo)}/git/commits/{quote(sha)}"))
        self._remember_commit(repo, data)
        return data

    def _remember_commit(self, repo: str, data: Mapping[str, Any]) -> None:
        with self._commits_lock:
            self._commits[(repo.lower(), str(data["sha"]))] = dict(data)
            while len(self._commits) > 512:
                self._commits.popitem(last=False)


def _next_link(link: str | None) -> str | None:
    if not link:
        return None
    for item in requests.utils.parse_header_links(link):
        if item.get("rel") == "next":
            return item.get("url")
    return None
