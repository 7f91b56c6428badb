"""What the jobs need from GitHub: the operations (a Protocol), their plain data and errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.errors import BotError


class GitHubError(BotError):
    """GitHub refused a request for a reason retrying will not fix (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"GitHub {status}: {message}")


class MergeConflictError(GitHubError):
    """409: the head moved since it was evaluated; re-evaluate before merging."""


class BaseModifiedError(GitHubError):
    """405 "Base branch was modified": retry the merge after a short wait."""


class MergeNotAllowedError(GitHubError):
    """405 for any other reason (not mergeable, method not allowed...): report GitHub's message."""


# --------------------------------------------------------------------------- plain data


def login_of(user: object) -> str:
    """The `login` of a GitHub user object, or ""."""
    return str(user.get("login") or "") if isinstance(user, dict) else ""


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
            author=login_of(data.get("user")),
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


# --------------------------------------------------------------------------- the port


class PeoplePort(Protocol):
    """Who may do what: the identity questions the gate asks."""

    def permission(self, repo: str, user: str) -> str: ...
    def is_team_member(self, org: str, team_slug: str, user: str) -> bool: ...


class PullRequestIdentity(Protocol):
    """What tells a promotion PR apart (a PR from the API or from a webhook event)."""

    @property
    def number(self) -> int: ...
    @property
    def author(self) -> str: ...
    @property
    def head_repo(self) -> str: ...


class GitHubPort(PeoplePort, Protocol):
    """One installation's view of GitHub, as the jobs use it. Every operation is idempotent
    and retries transient failures itself; permanent ones raise GitHubError."""

    # git data
    def default_branch(self, repo: str) -> tuple[str, str]: ...
    def ref_sha(self, repo: str, branch: str) -> str | None: ...
    def snapshot(self, repo: str, sha: str) -> dict[str, bytes]: ...
    def read_file(self, repo: str, path: str, ref: str) -> bytes | None: ...
    def commit_files(
        self,
        repo: str,
        *,
        branch: str,
        base_sha: str,
        files: Mapping[str, bytes | None],
        message: str,
        look_first: bool = True,
    ) -> str: ...
    def path_history(self, repo: str, path: str, *, ref: str, limit: int = 30) -> list[str]: ...
    def compare(self, repo: str, base: str, head: str) -> Comparison: ...

    # pull requests and reviews
    def find_open_pr(self, repo: str, branch: str) -> PullRequestInfo | None: ...
    def latest_pr(self, repo: str, branch: str) -> PullRequestInfo | None: ...
    def create_pr(
        self, repo: str, *, branch: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequestInfo: ...
    def get_pr(self, repo: str, number: int) -> PullRequestInfo: ...
    def update_pr(
        self,
        repo: str,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        current: PullRequestInfo | None = None,
    ) -> PullRequestInfo: ...
    def close_pr(self, repo: str, number: int) -> None: ...
    def list_open_prs(
        self, repo: str, head_prefix: str = "gitops-bot/", *, include_forks: bool = False
    ) -> list[PullRequestInfo]: ...
    def pr_files(self, repo: str, number: int) -> list[str]: ...
    def reviews(self, repo: str, number: int) -> list[ReviewInfo]: ...
    def merge_pr(
        self,
        repo: str,
        number: int,
        *,
        sha: str,
        method: str,
        title: str | None = None,
        message: str | None = None,
    ) -> str: ...
    def add_labels(self, repo: str, number: int, labels: list[str] | tuple[str, ...]) -> None: ...

    # comments and reactions
    def list_comments(self, repo: str, number: int) -> list[CommentInfo]: ...
    def upsert_comment(
        self, repo: str, number: int, marker: str, body: str, *, absent: bool = False
    ) -> int: ...
    def delete_comments(
        self, repo: str, number: int, marker_prefix: str, keep: set[int]
    ) -> list[int]: ...
    def add_reaction(self, repo: str, comment_id: int, content: str = "eyes") -> None: ...

    # checks and statuses
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
    ) -> int: ...
    def check_runs(self, repo: str, sha: str) -> list[CheckInfo]: ...
    def combined_status(self, repo: str, sha: str) -> list[tuple[str, str]]: ...

    # deployments
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
    ) -> int: ...
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
    ) -> None: ...
    def deployment_states(self, repo: str, deployment_id: int) -> list[str]: ...


class GitHubAppPort(Protocol):
    """The App: a client per installation (tokens are its business)."""

    def client(self, installation_id: int) -> GitHubPort: ...
    def client_for_repo(self, repo: str) -> GitHubPort: ...
    def forget_installation(self, repo: str) -> None: ...
