"""The one module that talks to GitHub: app auth, git data, pull requests, comments, checks."""

from __future__ import annotations

import base64
import functools
import math
import threading
import time
import urllib.parse
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

import github
import requests
from github.Auth import AppAuth, AppInstallationAuth
from github.GithubException import GithubException
from github.GithubIntegration import GithubIntegration
from github.InstallationAuthorization import InstallationAuthorization
from github.Requester import Requester

from bot.core.errors import BotError, TransientError
from bot.gateways.github_archive import (
    ArchiveError,
    SnapshotCache,
    SnapshotEntry,
    change_mode,
    extract_tarball,
)
from bot.gateways.github_http import (
    CallCounter,
    GitHubError,
    call_with_retries,
    counting_session,
    error_message,
    instrument,
    quote,
)

__all__ = [
    "BaseModifiedError",
    "CheckInfo",
    "CommentInfo",
    "GitHubApp",
    "GitHubError",
    "InstallationClient",
    "MergeConflictError",
    "MergeNotAllowedError",
    "PullRequestInfo",
    "ReviewInfo",
    "TransientError",
]

P = ParamSpec("P")
R = TypeVar("R")

PERMISSIONS = ("admin", "maintain", "write", "triage", "read")
TITLE_LIMIT = 255
DEPLOY_TASK = "deploy"
TEXT_LIMIT = 65535
REF_ATTEMPTS = 3


class MergeConflictError(GitHubError):
    """409: the head moved since it was evaluated; re-evaluate before merging."""


class BaseModifiedError(GitHubError):
    """405 "Base branch was modified": retry the merge after a short wait."""


class MergeNotAllowedError(GitHubError):
    """405 for any other reason (not mergeable, method not allowed...): report GitHub's message."""


# --------------------------------------------------------------------------- plain data


@dataclass(frozen=True)
class PullRequestInfo:
    number: int
    title: str
    body: str
    state: str  # "open" | "closed"
    merged: bool
    draft: bool
    mergeable: bool | None  # None: unknown (list responses, or GitHub still computing)
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    author: str
    html_url: str
    merge_commit_sha: str | None
    labels: tuple[str, ...] = ()
    head_repo: str = ""  # "owner/name" of the head branch's repository ("" if deleted)
    mergeable_state: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> PullRequestInfo:
        head, base = data.get("head") or {}, data.get("base") or {}
        merged = data.get("merged")
        return cls(
            number=int(data["number"]),
            title=str(data.get("title") or ""),
            body=str(data.get("body") or ""),
            state=str(data.get("state") or ""),
            merged=bool(merged) if merged is not None else data.get("merged_at") is not None,
            draft=bool(data.get("draft")),
            mergeable=data.get("mergeable"),
            head_ref=str(head.get("ref") or ""),
            head_sha=str(head.get("sha") or ""),
            base_ref=str(base.get("ref") or ""),
            base_sha=str(base.get("sha") or ""),
            author=_login(data.get("user")),
            html_url=str(data.get("html_url") or ""),
            merge_commit_sha=data.get("merge_commit_sha"),
            labels=tuple(str(label.get("name")) for label in data.get("labels") or ()),
            head_repo=str((head.get("repo") or {}).get("full_name") or ""),
            mergeable_state=str(data.get("mergeable_state") or ""),
        )


@dataclass(frozen=True)
class Comparison:
    """`base...head` as GitHub compares it: where the branch left base, and who made its
    commits (GitHub lists at most 250 of them)."""

    merge_base: str
    people: frozenset[str]  # lower-case logins of the listed commits' authors and committers


@dataclass(frozen=True)
class CommentInfo:
    id: int
    author: str
    body: str
    html_url: str = ""


@dataclass(frozen=True)
class CheckInfo:
    name: str
    status: str
    conclusion: str | None
    app_slug: str
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ReviewInfo:
    id: int
    user: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    commit_id: str
    submitted_at: str | None  # ISO 8601 as GitHub sent it


def _login(user: Any) -> str:
    return str(user.get("login") or "") if isinstance(user, dict) else ""


def _short(text: str, limit: int) -> str:
    """One line of at most `limit` characters (deployment descriptions allow 140)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def _operation(
    fn: Callable[Concatenate[InstallationClient, P], R],
) -> Callable[Concatenate[InstallationClient, P], R]:
    """Public operations retry transient failures as a whole (each one is idempotent)."""

    @functools.wraps(fn)
    def wrapper(self: InstallationClient, *args: P.args, **kwargs: P.kwargs) -> R:
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


# --------------------------------------------------------------------------- the app


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
        """Drop a cached lookup (e.g. after an `installation` deleted event)."""
        with self._lock:
            self._installations.pop(repo.lower(), None)

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


# --------------------------------------------------------------------------- one installation


class InstallationClient:
    """Everything the bot does in the repositories of one installation (installation token)."""

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
        instrument(self.requester, self.counter, app.timeout)
        self._archive_session = counting_session(self.counter, "GET {archive}")
        self._commits: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._commits_lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing

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

    # ------------------------------------------------------------------ repository and git

    @_operation
    def default_branch(self, repo: str) -> tuple[str, str]:
        """(default branch name, its head sha): GET repo + GET ref."""
        branch = str(self.github.get_repo(repo).default_branch)
        sha = self.ref_sha(repo, branch)
        if sha is None:
            raise GitHubError(404, f"{repo}: default branch '{branch}' has no commits")
        return branch, sha

    @_operation
    def ref_sha(self, repo: str, branch: str) -> str | None:
        ref = urllib.parse.quote(f"heads/{branch}")
        try:
            data = self._get(f"{_repo_path(repo)}/git/ref/{ref}")
        except GithubException as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(data, dict):  # a prefix match list: no exact ref
            return None
        return str(data["object"]["sha"])

    @_operation
    def snapshot(self, repo: str, sha: str) -> dict[str, bytes]:
        """All regular files at sha (repo-relative path -> bytes), from the tarball; cached."""
        return dict(self._snapshot_entry(repo, sha).files)

    def _snapshot_entry(self, repo: str, sha: str) -> SnapshotEntry:
        cached = self.app.snapshots.get(repo, sha)
        if cached is not None:
            return cached
        link = self.github.get_repo(repo).get_archive_link("tarball", sha)
        data = self._download(link)
        try:
            entry = extract_tarball(data, max_bytes=self.app.max_snapshot_bytes)
        except ArchiveError as exc:
            raise GitHubError(422, f"{repo}@{sha[:12]}: {exc}") from None
        self.app.snapshots.put(repo, sha, entry)
        return entry

    def _download(self, url: str) -> bytes:
        """GET the archive link; send the token only to the API host itself (GHE codeload)."""
        api_host = urllib.parse.urlparse(self.app.api_url).netloc
        headers = {"User-Agent": self.app.user_agent}
        if urllib.parse.urlparse(url).netloc == api_host:
            headers["Authorization"] = f"token {self._auth.token}"
        limit = self.app.max_snapshot_bytes
        with self._archive_session.get(
            url, headers=headers, timeout=self.app.timeout, stream=True, allow_redirects=True
        ) as response:
            response.raise_for_status()
            chunks, size = [], 0
            for chunk in response.iter_content(chunk_size=1 << 16):
                size += len(chunk)
                if size > limit:
                    raise GitHubError(413, f"repository archive exceeds {limit} bytes")
                chunks.append(chunk)
        return b"".join(chunks)

    @_operation
    def read_file(self, repo: str, path: str, ref: str) -> bytes | None:
        """One file at ref (contents API); None if absent or not a regular file."""
        try:
            data = self._get(
                f"{_repo_path(repo)}/contents/{urllib.parse.quote(path.strip('/'))}", ref=ref
            )
        except GithubException as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        if data.get("encoding") != "base64":
            raise GitHubError(413, f"{path} is too large for the contents API")
        return base64.b64decode(data.get("content") or "")

    @_operation
    def commit_files(
        self,
        repo: str,
        *,
        branch: str,
        base_sha: str,
        files: Mapping[str, bytes | None],
        message: str,
    ) -> str:
        """Point heads/<branch> at one commit on base_sha changing exactly files (None: delete).

        Idempotent: when the branch already holds that commit's content on that parent, it is
        returned without any write.
        """
        base_path = _repo_path(repo)
        files = {path.strip("/"): data for path, data in files.items()}
        base_entry = self.app.snapshots.get(repo, base_sha)
        for _attempt in range(REF_ATTEMPTS):
            current = self.ref_sha(repo, branch)
            existing: dict[str, Any] | None = None
            if current is not None and current != base_sha:
                existing = self._git_commit(repo, current)
                parents = [p.get("sha") for p in existing.get("parents") or ()]
                if parents != [base_sha]:
                    existing = None
                elif base_entry is not None:
                    expected = base_entry.tree_sha(files)
                    if expected is not None and expected == existing["tree"]["sha"]:
                        return current
            base_tree = self._git_commit(repo, base_sha)["tree"]["sha"]
            entries = [_tree_entry(base_entry, path, data) for path, data in sorted(files.items())]
            _, tree = self._request(
                "POST", f"{base_path}/git/trees", body={"base_tree": base_tree, "tree": entries}
            )
            if existing is not None and existing["tree"]["sha"] == tree["sha"]:
                return str(current)
            _, commit = self._request(
                "POST",
                f"{base_path}/git/commits",
                body={"message": message, "tree": tree["sha"], "parents": [base_sha]},
            )
            new_sha = str(commit["sha"])
            self._remember_commit(repo, commit)
            if self._set_branch(repo, branch, new_sha, exists=current is not None):
                return new_sha
        raise TransientError(f"{repo}: branch {branch} kept changing while it was being updated")

    def _set_branch(self, repo: str, branch: str, sha: str, *, exists: bool) -> bool:
        """Create or force-move the ref; False when it raced with another writer."""
        base_path = _repo_path(repo)
        if not exists:
            try:
                self._request(
                    "POST",
                    f"{base_path}/git/refs",
                    body={"ref": f"refs/heads/{branch}", "sha": sha},
                )
                return True
            except GithubException as exc:
                if exc.status != 422 or "already exists" not in error_message(exc).lower():
                    raise
        try:
            self._request(
                "PATCH",
                f"{base_path}/git/refs/{urllib.parse.quote(f'heads/{branch}')}",
                body={"sha": sha, "force": True},
            )
            return True
        except GithubException as exc:
            # with force, only a ref deleted since it was read is a race worth another
            # round; any other 422 (a rule, a bad sha or name) is GitHub's final answer
            if exc.status == 422 and "does not exist" in error_message(exc).lower():
                return False
            raise

    @_operation
    def path_history(self, repo: str, path: str, *, ref: str, limit: int = 30) -> list[str]:
        """Shas of commits touching path reachable from ref, newest first."""
        out: list[str] = []
        params = {"sha": ref, "path": path, "per_page": min(max(limit, 1), 100)}
        for commit in self._paginate(f"{_repo_path(repo)}/commits", params):
            out.append(str(commit["sha"]))
            if len(out) >= limit:
                break
        return out

    # ------------------------------------------------------------------ pull requests

    @_operation
    def find_open_pr(self, repo: str, branch: str) -> PullRequestInfo | None:
        owner, _ = _split(repo)
        data = self._get(
            f"{_repo_path(repo)}/pulls", state="open", head=f"{owner}:{branch}", per_page=1
        )
        return PullRequestInfo.from_api(data[0]) if data else None

    @_operation
    def latest_pr(self, repo: str, branch: str) -> PullRequestInfo | None:
        """The newest PR from `branch` in any state (was our promotion merged already?)."""
        owner, _ = _split(repo)
        data = self._get(
            f"{_repo_path(repo)}/pulls", state="all", head=f"{owner}:{branch}", per_page=1
        )
        return PullRequestInfo.from_api(data[0]) if data else None

    @_operation
    def create_pr(
        self, repo: str, *, branch: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequestInfo:
        payload = {"title": title, "head": branch, "base": base, "body": body, "draft": draft}
        try:
            _, data = self._request("POST", f"{_repo_path(repo)}/pulls", body=payload)
        except GithubException as exc:
            if exc.status == 422 and "pull request already exists" in error_message(exc).lower():
                existing = self.find_open_pr(repo, branch)
                if existing is not None:
                    return existing
            raise
        return PullRequestInfo.from_api(data)

    @_operation
    def get_pr(self, repo: str, number: int) -> PullRequestInfo:
        return PullRequestInfo.from_api(self._get(f"{_repo_path(repo)}/pulls/{int(number)}"))

    @_operation
    def update_pr(
        self,
        repo: str,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        current: PullRequestInfo | None = None,
    ) -> PullRequestInfo:
        """Change title/body; no write when they already match (pass current to save a GET)."""
        if current is None or current.number != number:
            current = self.get_pr(repo, number)
        patch: dict[str, str] = {}
        if title is not None and title != current.title:
            patch["title"] = title
        if body is not None and body != current.body:
            patch["body"] = body
        if not patch:
            return current
        _, data = self._request("PATCH", f"{_repo_path(repo)}/pulls/{int(number)}", body=patch)
        return PullRequestInfo.from_api(data)

    @_operation
    def close_pr(self, repo: str, number: int) -> None:
        self._request("PATCH", f"{_repo_path(repo)}/pulls/{int(number)}", body={"state": "closed"})

    @_operation
    def list_open_prs(
        self, repo: str, head_prefix: str = "gitops-bot/", *, include_forks: bool = False
    ) -> list[PullRequestInfo]:
        """Open PRs whose head branch name starts with head_prefix, from branches of repo
        itself unless include_forks."""
        out = []
        for data in self._paginate(f"{_repo_path(repo)}/pulls", {"state": "open"}):
            pr = PullRequestInfo.from_api(data)
            own = pr.head_repo.lower() == repo.lower()
            if pr.head_ref.startswith(head_prefix) and (own or include_forks):
                out.append(pr)
        return out

    @_operation
    def pr_files(self, repo: str, number: int) -> list[str]:
        """Paths the PR touches, including the old path of renamed files."""
        out: dict[str, None] = {}
        for item in self._paginate(f"{_repo_path(repo)}/pulls/{int(number)}/files"):
            out[str(item["filename"])] = None
            if item.get("previous_filename"):
                out[str(item["previous_filename"])] = None
        return list(out)

    @_operation
    def compare(self, repo: str, base: str, head: str) -> Comparison:
        """Merge base of base and head, and the commits head adds (GitHub's account of who
        authored and committed them; `web-flow` stands for commits GitHub itself made)."""
        data = self._get(f"{_repo_path(repo)}/compare/{quote(base)}...{quote(head)}")
        commits = data.get("commits") or []
        people = {
            _login(item.get(role)).lower()
            for item in commits
            for role in ("author", "committer")
            if _login(item.get(role))
        }
        return Comparison(
            merge_base=str((data.get("merge_base_commit") or {}).get("sha") or base),
            people=frozenset(people - {"web-flow"}),
        )

    @_operation
    def reviews(self, repo: str, number: int) -> list[ReviewInfo]:
        return [
            ReviewInfo(
                id=int(item["id"]),
                user=_login(item.get("user")),
                state=str(item.get("state") or ""),
                commit_id=str(item.get("commit_id") or ""),
                submitted_at=item.get("submitted_at"),
            )
            for item in self._paginate(f"{_repo_path(repo)}/pulls/{int(number)}/reviews")
        ]

    @_operation
    def merge_pr(
        self,
        repo: str,
        number: int,
        *,
        sha: str,
        method: str,
        title: str | None = None,
        message: str | None = None,
    ) -> str:
        """Merge only if the head is still sha; returns the merge commit sha."""
        payload: dict[str, str] = {"sha": sha, "merge_method": method}
        if title is not None:
            payload["commit_title"] = title
        if message is not None:
            payload["commit_message"] = message
        try:
            _, data = self._request(
                "PUT", f"{_repo_path(repo)}/pulls/{int(number)}/merge", body=payload
            )
        except GithubException as exc:
            text = error_message(exc)
            if exc.status == 409:
                raise MergeConflictError(409, text) from None
            if exc.status == 405 and "base branch was modified" in text.lower():
                raise BaseModifiedError(405, text) from None
            if exc.status == 405:
                raise MergeNotAllowedError(405, text) from None
            raise
        return str(data["sha"])

    # ------------------------------------------------------------------ comments and labels

    def _comments(self, repo: str, number: int) -> Iterator[CommentInfo]:
        for item in self._paginate(f"{_repo_path(repo)}/issues/{int(number)}/comments"):
            yield CommentInfo(
                id=int(item["id"]),
                author=_login(item.get("user")),
                body=str(item.get("body") or ""),
                html_url=str(item.get("html_url") or ""),
            )

    def _ours(self, comment: CommentInfo) -> bool:
        """Written by this app; without a known slug, by some app (never a human)."""
        login = self.app.bot_login
        if login is None:
            return comment.author.endswith("[bot]")
        return comment.author.lower() == login.lower()

    @_operation
    def list_comments(self, repo: str, number: int) -> list[CommentInfo]:
        return list(self._comments(repo, number))

    @_operation
    def upsert_comment(self, repo: str, number: int, marker: str, body: str) -> int:
        """Update our comment holding marker (only if its body differs) or create it."""
        if marker not in body:
            body = f"{marker}\n{body}"  # the marker is how the next run finds this comment
        for comment in self._comments(repo, number):
            if marker in comment.body and self._ours(comment):
                if comment.body != body:
                    self._request(
                        "PATCH",
                        f"{_repo_path(repo)}/issues/comments/{comment.id}",
                        body={"body": body},
                    )
                return comment.id
        _, data = self._request(
            "POST", f"{_repo_path(repo)}/issues/{int(number)}/comments", body={"body": body}
        )
        return int(data["id"])

    @_operation
    def delete_comments(
        self, repo: str, number: int, marker_prefix: str, keep: set[int]
    ) -> list[int]:
        """Delete our comments containing marker_prefix except those in keep; returns ids."""
        doomed = [
            c.id
            for c in self._comments(repo, number)
            if marker_prefix in c.body and c.id not in keep and self._ours(c)
        ]
        for comment_id in doomed:
            try:
                self._request("DELETE", f"{_repo_path(repo)}/issues/comments/{comment_id}")
            except GithubException as exc:
                if exc.status != 404:
                    raise
        return doomed

    @_operation
    def add_reaction(self, repo: str, comment_id: int, content: str = "eyes") -> None:
        self._request(
            "POST",
            f"{_repo_path(repo)}/issues/comments/{int(comment_id)}/reactions",
            body={"content": content},
        )

    @_operation
    def add_labels(self, repo: str, number: int, labels: list[str] | tuple[str, ...]) -> None:
        if labels:
            self._request(
                "POST",
                f"{_repo_path(repo)}/issues/{int(number)}/labels",
                body={"labels": list(labels)},
            )

    # ------------------------------------------------------------------ checks and statuses

    @_operation
    def upsert_check_run(
        self,
        repo: str,
        head_sha: str,
        name: str,
        *,
        status: str,
        conclusion: str | None = None,
        title: str,
        summary: str,
        text: str | None = None,
        details_url: str | None = None,
        known: list[CheckInfo] | None = None,
    ) -> int:
        """Update this app's check run `name` on head_sha (no write if unchanged) or create it.

        `known`: every check run on head_sha as `check_runs` just listed them (saves the lookup).
        """
        output: dict[str, str] = {
            "title": truncate(title, TITLE_LIMIT),
            "summary": truncate(summary, TEXT_LIMIT),
        }
        if text is not None:
            output["text"] = truncate(text, TEXT_LIMIT)
        payload: dict[str, Any] = {"name": name, "status": status, "output": output}
        if conclusion is not None:
            payload["conclusion"] = conclusion
        if details_url is not None:
            payload["details_url"] = details_url
        base_path = _repo_path(repo)
        if known is not None:
            existing = self._our_check_run((c.raw for c in known), name, by_app_id=True)
        else:
            existing = self._find_check_run(repo, head_sha, name)
        # GitHub keeps a completed run's conclusion when its status is set back: a verdict
        # that is no longer true gets a new run (the newest of a name is the one that counts)
        reopened = existing is not None and existing.get("status") == "completed"
        if existing is None or (reopened and status != "completed"):
            _, data = self._request(
                "POST", f"{base_path}/check-runs", body={**payload, "head_sha": head_sha}
            )
            self._learn_slug(data)
            return int(data["id"])
        if not _check_run_differs(existing, payload):
            return int(existing["id"])
        _, data = self._request(
            "PATCH", f"{base_path}/check-runs/{int(existing['id'])}", body=payload
        )
        return int(data["id"])

    def _find_check_run(self, repo: str, sha: str, name: str) -> dict[str, Any] | None:
        runs = self._paginate(
            f"{_repo_path(repo)}/commits/{quote(sha)}/check-runs",
            {"check_name": name, "filter": "all", "app_id": self.app.auth.app_id},
            key="check_runs",
        )
        return self._our_check_run(runs, name, by_app_id=False)

    def _our_check_run(
        self, runs: Iterable[Mapping[str, Any]], name: str, *, by_app_id: bool
    ) -> dict[str, Any] | None:
        """This app's run called name (by_app_id: the list holds every app's runs)."""
        slug = self.app.app_slug
        ours = []
        for run in runs:
            app = run.get("app") or {}
            if by_app_id and str(app.get("id")) != str(self.app.auth.app_id):
                continue
            if run.get("name") == name and (slug is None or app.get("slug") in (None, slug)):
                ours.append(dict(run))
        return max(ours, key=lambda run: int(run.get("id") or 0), default=None)  # the newest

    def _learn_slug(self, check_run: Mapping[str, Any]) -> None:
        slug = (check_run.get("app") or {}).get("slug")
        if slug and not self.app.app_slug:
            self.app.app_slug = str(slug)

    @_operation
    def check_runs(self, repo: str, sha: str) -> list[CheckInfo]:
        return [
            CheckInfo(
                name=str(run.get("name") or ""),
                status=str(run.get("status") or ""),
                conclusion=run.get("conclusion"),
                app_slug=str((run.get("app") or {}).get("slug") or ""),
                raw=run,
            )
            for run in self._paginate(
                f"{_repo_path(repo)}/commits/{quote(sha)}/check-runs", key="check_runs"
            )
        ]

    @_operation
    def combined_status(self, repo: str, sha: str) -> list[tuple[str, str]]:
        return [
            (str(s.get("context") or ""), str(s.get("state") or ""))
            for s in self._paginate(
                f"{_repo_path(repo)}/commits/{quote(sha)}/status", key="statuses"
            )
        ]

    # ------------------------------------------------------------------ deployments

    def ensure_deployment(
        self,
        repo: str,
        *,
        sha: str,
        environment: str,
        payload: Mapping[str, Any],
        description: str,
        production: bool,
        look_first: bool,
    ) -> int:
        """The id of this app's deployment of `sha` to `environment`, created if needed.

        `look_first`: an earlier attempt may have created it (its id was never recorded), so
        list before creating. A retried attempt always looks first: the POST that failed
        in transit may have landed."""
        looked = {"first": look_first}

        def attempt() -> int:
            if looked["first"]:
                found = self._our_deployment(repo, sha, environment)
                if found is not None:
                    return found
            looked["first"] = True
            body = {
                "ref": sha,
                "task": DEPLOY_TASK,
                "environment": environment,
                "auto_merge": False,  # the merge commit is what was approved: deploy it as is
                "required_contexts": [],  # the approval gate already judged the checks
                "payload": dict(payload),
                "description": _short(description, 140),
                "production_environment": production,
                "transient_environment": False,
            }
            _, data = self._request("POST", f"{_repo_path(repo)}/deployments", body=body)
            return int(data["id"])

        return call_with_retries(
            attempt,
            what="ensure_deployment",
            max_retries=self.max_retries,
            sleep=self._sleep,
            backoff=self.backoff,
            on_unauthorized=self._auth.invalidate,
        )

    def _our_deployment(self, repo: str, sha: str, environment: str) -> int | None:
        for item in self._paginate(
            f"{_repo_path(repo)}/deployments",
            {"sha": sha, "environment": environment, "task": DEPLOY_TASK},
        ):
            app = item.get("performed_via_github_app") or {}
            creator = _login(item.get("creator"))
            if str(app.get("id")) == str(self.app.auth.app_id) or (
                self.app.bot_login and creator.lower() == self.app.bot_login.lower()
            ):
                return int(item["id"])
        return None

    @_operation
    def set_deployment_status(
        self,
        repo: str,
        deployment_id: int,
        state: str,
        *,
        description: str = "",
        log_url: str | None = None,
        environment_url: str | None = None,
        auto_inactive: bool | None = None,
    ) -> None:
        body: dict[str, Any] = {"state": state, "description": _short(description, 140)}
        if log_url:
            body["log_url"] = log_url
        if environment_url:
            body["environment_url"] = environment_url
        if auto_inactive is not None:
            body["auto_inactive"] = auto_inactive
        self._request(
            "POST", f"{_repo_path(repo)}/deployments/{int(deployment_id)}/statuses", body=body
        )

    @_operation
    def deployment_states(self, repo: str, deployment_id: int) -> list[str]:
        """The deployment's statuses, newest first."""
        return [
            str(item.get("state") or "")
            for item in self._paginate(
                f"{_repo_path(repo)}/deployments/{int(deployment_id)}/statuses"
            )
        ]

    # ------------------------------------------------------------------ authorisation

    @_operation
    def permission(self, repo: str, user: str) -> str:
        """admin | maintain | write | triage | read | none."""
        try:
            data = self._get(f"{_repo_path(repo)}/collaborators/{quote(user)}/permission")
        except GithubException as exc:
            if exc.status == 404:
                return "none"
            raise
        role = str(data.get("role_name") or "").lower()
        if role in PERMISSIONS:
            return role
        legacy = str(data.get("permission") or "none").lower()  # custom roles: their base
        return legacy if legacy in PERMISSIONS else "none"

    @_operation
    def is_team_member(self, org: str, team_slug: str, user: str) -> bool:
        try:
            data = self._get(
                f"/orgs/{quote(org)}/teams/{quote(team_slug)}/memberships/{quote(user)}"
            )
        except GithubException as exc:
            if exc.status == 404:
                return False
            raise
        return bool(isinstance(data, dict) and data.get("state") == "active")


def _tree_entry(base: SnapshotEntry | None, path: str, data: bytes | None) -> dict[str, Any]:
    path = path.strip("/")
    if data is None:
        return {"path": path, "mode": "100644", "type": "blob", "sha": None}
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError:
        raise GitHubError(422, f"{path}: only UTF-8 text files can be committed") from None
    return {"path": path, "mode": change_mode(base, path), "type": "blob", "content": content}


def _check_run_differs(existing: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    if existing.get("status") != payload["status"]:
        return True
    if (
        payload.get("conclusion") is not None
        and existing.get("conclusion") != payload["conclusion"]
    ):
        return True
    if "details_url" in payload and existing.get("details_url") != payload["details_url"]:
        return True
    have = existing.get("output") or {}
    return any((have.get(k) or "") != v for k, v in payload["output"].items())


def _next_link(link: str | None) -> str | None:
    if not link:
        return None
    for item in requests.utils.parse_header_links(link):
        if item.get("rel") == "next":
            return item.get("url")
    return None
