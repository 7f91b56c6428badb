"""What job handlers share: the installation's GitHub client, the bot's records, renderers."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.approval import Check
from bot.core.github_port import GitHubPort, PullRequestIdentity, PullRequestInfo
from bot.gateways.records import PromotionRecord, PromotionRecords


@dataclass
class Deps:
    client: GitHubPort  # bot.gateways.github.InstallationClient (or the test fake's client)
    records: PromotionRecords
    render_pair: Any  # the bot's own edits of default-branch content
    untrusted_render_pair: Any  # anything a human pushed
    mlflow: Any | None = None
    bot_login: str | None = None
    # after the bot merged a promotion PR: (its metadata, number) -> whatever follows
    on_merged: Callable[[Mapping[str, object], int], object] | None = None
    # a registry event refused (kind, e.g. "stale_version"): counted in the metrics
    on_refused: Callable[[str], None] | None = None
    clock: Callable[[], float] = time.time  # injected in tests: soak times, deployment ages
    argocd_url: str = ""  # Argo CD's web UI, for the deployments' log links
    argocd: Any | None = None  # bot.gateways.argocd.ArgoCDClient: the reconcile loop asks it


def promotion_of(deps: Deps, repo: str, pr: PullRequestIdentity) -> PromotionRecord | None:
    """The bot's record of `pr` if it is a promotion PR: the bot recorded opening it, GitHub
    says the App authored it, and its head branch lives in the repository itself."""
    if not deps.bot_login or pr.author != deps.bot_login:
        return None
    if str(pr.head_repo or "").lower() != repo.lower():
        return None
    return deps.records.promotion(repo, pr.number)


@dataclass(frozen=True)
class FreshPr:
    """A PR this job opened on a commit it made just now: what GitHub answered, and the
    checks the bot itself put on that commit."""

    pr: PullRequestInfo  # GitHub's answer to the create request
    checks: tuple[Check, ...]
