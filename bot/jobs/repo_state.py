"""Load what a job needs to know about a repository: default branch, snapshot, config."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.config import load_config_bytes
from bot.core.errors import BotError
from bot.core.github_port import GitHubPort
from bot.core.types import Config, Snapshot

CONFIG_FILE = ".gitops-bot.yaml"


class MissingConfigError(BotError):
    """The repository has no .gitops-bot.yaml on its default branch."""


@dataclass(frozen=True)
class RepoState:
    repo: str
    default_branch: str
    sha: str
    snapshot: Snapshot
    config: Config


def load_repo_state(client: GitHubPort, repo: str) -> RepoState:
    """The default branch head, its files and its config (never a PR branch's config)."""
    branch, sha = client.default_branch(repo)
    snapshot = client.snapshot(repo, sha)
    raw = snapshot.get(CONFIG_FILE)
    if raw is None:
        raise MissingConfigError(f"{repo}: no {CONFIG_FILE} on the default branch '{branch}'")
    config = load_config_bytes(raw, CONFIG_FILE)
    return RepoState(repo=repo, default_branch=branch, sha=sha, snapshot=snapshot, config=config)
