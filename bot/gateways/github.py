"""The one module that talks to GitHub: app auth, git data, pull requests, comments, checks."""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import threading
import time
import urllib.parse
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

import github
import requests
from github.Auth import AppAuth, AppInstallationAuth
from github.GithubException import GithubException
from github.GithubIntegration import GithubIntegration
from github.InstallationAuthorization import InstallationAuthorization
from github.Requester import Requester

from bot.core.errors import BotError, TransientError
from bot.core.github_port import (
    BaseModifiedError,
    CheckInfo,
    CommentInfo,
    Comparison,
    GitHubError,
    MergeConflictError,
    MergeNotAllowedError,
    PullRequestInfo,
    ReviewInfo,
    login_of,
)
from bot.gateways.github_archive import (
    ArchiveError,
    SnapshotCache,
    SnapshotEntry,
    change_mode,
    extract_tarball,
)
from bot.gateways.github_http import (
    CallCounter,
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
    "Comparison",
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

    # ------------------------------------------------------------------ repository and git

    @_operation
    def default_branch(self, repo: str) -> tuple[str, str]:
        """(default branch name, its head sha): GET ref, plus GET repo when the name is not
        known from the last 10 minutes (or the known name no longer resolves)."""
        known = self.app.default_branches.get(repo.lower())
        if known is not None and time.monotonic() - known[1] < self.app.default_branch_ttl_s:
            sha = self.ref_sha(repo, known[0])
            if sha is not None:
                return known[0], sha
        branch = str(self.github.get_repo(repo).default_branch)
        sha = self.ref_sha(repo, branch)
        if sha is None:
            raise GitHubError(404, f"{repo}: default branch '{branch}' has no commits")
        self.app.default_branches[repo.lower()] = (branch, time.monotonic())
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
        look_first: bool = True,
    ) -> str:
        """Point heads/<branch> at one commit on base_sha changing exactly files (None: delete).

        `look_first`: read the branch before writing (a rerun, or a branch the bot pushed to
        before): when it already holds that content on that parent, it is returned without
        any write. Otherwise create first (tree, commit, ref) and read the ref only when it
        turns out to exist.
        """
        base_path = _repo_path(repo)
        files = {path.strip("/"): data for path, data in files.items()}
        base_entry = self.app.snapshots.get(repo, base_sha)
        attempt = _commit_key(repo, branch, base_sha, files)
        # an earlier try of this very operation made a commit (its ref's answer was lost?):
        # look at the branch rather than make another one
        look_first = look_first or attempt in self._made
        existing: tuple[str, str] | None = None  # (sha, tree) of a branch commit on base_sha
        if look_first:
            current = self.ref_sha(repo, branch)
            if current is not None and current != base_sha:
                data = self._git_commit(repo, current)
                if [p.get("sha") for p in data.get("parents") or ()] == [base_sha]:
                    existing = (current, str(data["tree"]["sha"]))
                    expected = base_entry.tree_sha(files) if base_entry is not None else None
                    if expected is not None and expected == existing[1]:
                        return current
        entries = [_tree_entry(base_entry, path, data) for path, data in sorted(files.items())]
        tree = self._create_tree(repo, base_sha, base_entry, entries)
        if existing is not None and existing[1] == tree:
            return existing[0]
        _, commit = self._request(
            "POST",
            f"{base_path}/git/commits",
            body={"message": message, "tree": tree, "parents": [base_sha]},
        )
        new_sha = str(commit["sha"])
        self._remember_commit(repo, commit)
        with self._commits_lock:
            self._made[attempt] = new_sha
            while len(self._made) > 256:
                self._made.popitem(last=False)
        for _attempt in range(REF_ATTEMPTS):
            if self._create_branch(repo, branch, new_sha):
                return new_sha
            current = self.ref_sha(repo, branch)
            if current is None:
                continue  # deleted since: create it again
            if current != base_sha:
                data = self._git_commit(repo, current)
                parents = [p.get("sha") for p in data.get("parents") or ()]
                if parents == [base_sha] and data["tree"]["sha"] == tree:
                    return current  # a run before this one made the same commit
            if self._move_branch(repo, branch, new_sha):
                return new_sha
        raise TransientError(f"{repo}: branch {branch} kept changing while it was being updated")

    def _create_tree(
        self,
        repo: str,
        base_sha: str,
        base_entry: SnapshotEntry | None,
        entries: list[dict[str, Any]],
    ) -> str:
        """POST git/trees on the base commit's tree: its id computed from the snapshot when
        it can be (no GET), read from the commit when not or when GitHub does not know it."""
        local = base_entry.root_tree() if base_entry is not None else None
        if local is not None:
            try:
                return self._post_tree(repo, local, entries)
            except GithubException as exc:
                if exc.status not in (404, 422):
                    raise
        return self._post_tree(repo, self._git_commit(repo, base_sha)["tree"]["sha"], entries)

    def _post_tree(self, repo: str, base_tree: str, entries: list[dict[str, Any]]) -> str:
        _, tree = self._request(
            "POST", f"{_repo_path(repo)}/git/trees", body={"base_tree": base_tree, "tree": entries}
        )
        return str(tree["sha"])

    def _create_branch(self, repo: str, branch: str, sha: str) -> bool:
        """POST git/refs; False when the branch exists already."""
        try:
            self._request(
                "POST",
                f"{_repo_path(repo)}/git/refs",
                body={"ref": f"refs/heads/{branch}", "sha": sha},
            )
            return True
        except GithubException as exc:
            if exc.status != 422 or "already exists" not in error_message(exc).lower():
                raise
            return False

    def _move_branch(self, repo: str, branch: str, sha: str) -> bool:
        """Force-move the ref; False when it was deleted meanwhile."""
        base_path = _repo_path(repo)
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
            login_of(item.get(role)).lower()
            for item in commits
            for role in ("author", "committer")
            if login_of(item.get(role))
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
                user=login_of(item.get("user")),
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
                author=login_of(item.get("user")),
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
    def upsert_comment(
        self, repo: str, number: int, marker: str, body: str, *, absent: bool = False
    ) -> int:
        """Update our comment holding marker (only if its body differs) or create it.
        `absent`: the caller knows there is none (a PR this job opened): no listing."""
        if marker not in body:
            body = f"{marker}\n{body}"  # the marker is how the next run finds this comment
        if absent and self._first_try("comment", repo.lower(), number, marker):
            _, data = self._request(
                "POST", f"{_repo_path(repo)}/issues/{int(number)}/comments", body={"body": body}
            )
            return int(data["id"])
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
        if known is not None and (known or self._first_try("check", repo.lower(), head_sha, name)):
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


def _commit_key(
    repo: str, branch: str, base_sha: str, files: Mapping[str, bytes | None]
) -> tuple[str, str, str, str]:
    """What a commit_files call asks for, as a key: equal keys make equal commits."""
    digest = hashlib.sha256()
    for path, data in sorted(files.items()):
        digest.update(f"{len(path)}:{path}:".encode())
        digest.update(b"-" if data is None else b"%d:" % len(data) + data)
    return (repo.lower(), branch, base_sha, digest.hexdigest())


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
