"""The fake GitHub's in-memory state (everything except git objects, which live in git)."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .gitrepo import GitRepo


def now() -> int:
    return int(time.time())


def iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0:{kind}{ident}".encode()).decode().rstrip("=")


@dataclass
class Urls:
    """Where the API and the web UI of one GitHub instance live (per request)."""

    api: str  # https://api.github.com | https://ghe.example/api/v3 | http://127.0.0.1:PORT
    codeload: str

    @property
    def web(self) -> str:
        if self.api == "https://api.github.com":
            return "https://github.com"
        if self.api.endswith("/api/v3"):
            return self.api[: -len("/api/v3")]
        return self.api


@dataclass
class Review:
    id: int
    user: str
    state: str
    body: str
    commit_id: str
    submitted_at: int


@dataclass
class Pull:
    id: int
    head_ref: str
    base_ref: str
    head_sha: str
    base_sha: str
    draft: bool = False
    merged: bool = False
    merged_at: int | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    mergeable_override: bool | str | None = "auto"  # "auto" = compute with git
    maintainer_can_modify: bool = False
    reviews: list[Review] = field(default_factory=list)


@dataclass
class Issue:
    number: int
    id: int
    title: str
    body: str | None
    user: str
    created_at: int
    updated_at: int
    state: str = "open"
    closed_at: int | None = None
    labels: list[str] = field(default_factory=list)
    pull: Pull | None = None


@dataclass
class Reaction:
    id: int
    user: str
    content: str
    created_at: int


@dataclass
class Comment:
    id: int
    issue_number: int
    body: str
    user: str
    created_at: int
    updated_at: int
    via_app: bool = False
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class CheckRun:
    id: int
    suite_id: int
    head_sha: str
    name: str
    status: str
    conclusion: str | None
    app: dict[str, Any]
    started_at: int | None
    completed_at: int | None
    output: dict[str, Any] = field(default_factory=dict)
    details_url: str | None = None
    external_id: str | None = None


@dataclass
class Status:
    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: int


@dataclass
class DeploymentStatus:
    id: int
    state: str
    description: str
    environment: str
    log_url: str
    environment_url: str
    creator: str
    created_at: int


@dataclass
class Deployment:
    id: int
    sha: str
    ref: str
    task: str
    environment: str
    payload: Any
    description: str | None
    creator: str
    created_at: int
    transient_environment: bool = False
    production_environment: bool = False
    statuses: list[DeploymentStatus] = field(default_factory=list)


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    git: GitRepo
    default_branch: str
    installation_id: int
    owner_type: str = "Organization"
    private: bool = True
    created_at: int = field(default_factory=now)
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)  # name -> id
    check_runs: dict[int, CheckRun] = field(default_factory=dict)
    statuses: list[Status] = field(default_factory=list)
    deployments: dict[int, Deployment] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)
    logins_by_email: dict[str, str] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def next_number(self) -> int:
        return max(self.issues, default=0) + 1
