"""Render what a pull request's head changes (merge base vs head, as untrusted content),
publish the diff comment and render check, and record which environments it reaches."""

from __future__ import annotations

import logging
import re

from bot.core.github_port import GitHubPort, PullRequestInfo
from bot.core.rendering import affected_environments, changed_paths, environment_diffs
from bot.core.report import (
    DIFF_MARKER,
    DIFF_PART_MARKER,
    render_diff_check_summary,
    render_diff_comment,
)
from bot.core.templating import render_template
from bot.core.types import Config
from bot.gateways.records import PromotionRecord, RenderRecord
from bot.jobs.deps import Deps, promotion_of
from bot.jobs.publish import publish_render_check
from bot.jobs.repo_state import CONFIG_FILE

log = logging.getLogger(__name__)

DIFF_MARKER_PREFIX = "<!-- gitops-bot:diff"
FOREIGN_PUSH_START = "<!-- gitops-bot:foreign-push -->"
FOREIGN_PUSH_END = "<!-- /gitops-bot:foreign-push -->"
_FOREIGN_BLOCK = re.compile(
    re.escape(FOREIGN_PUSH_START) + r".*?" + re.escape(FOREIGN_PUSH_END) + r"\n*", re.S
)


def diff_comment_key(index: int) -> str:
    """Find comment i by its position, whatever the current total N is."""
    return DIFF_MARKER if index == 1 else f"<!-- {DIFF_PART_MARKER} {index}/"


def handle_pr_diff(deps: Deps, repo: str, number: int, config: Config) -> int:
    """Render an open PR's head with the default branch's `config`; returns how many
    environments it reaches (-1: closed)."""
    pr = deps.client.get_pr(repo, number)
    if pr.state != "open":
        return -1
    record = render_pull_request(deps, repo, pr, config, promotion_of(deps, repo, pr))
    return len(record.environments)


def render_pull_request(
    deps: Deps, repo: str, pr: PullRequestInfo, config: Config, promotion: PromotionRecord | None
) -> RenderRecord:
    """Base = the merge base GitHub computes; changed paths = every file that differs
    between the two trees (GitHub's file list stops at 3000). Everyone who authored or
    committed the head's commits is recorded as an author of the change."""
    client = deps.client
    comparison = client.compare(repo, pr.base_sha, pr.head_sha)
    base = client.snapshot(repo, comparison.merge_base)
    head = client.snapshot(repo, pr.head_sha)
    changed = changed_paths(base, head)
    diffs = environment_diffs(config, base, head, changed, deps.untrusted_render_pair)
    keep: set[int] = set()
    if diffs:
        for index, body in enumerate(render_diff_comment(diffs, head_sha=pr.head_sha), start=1):
            keep.add(client.upsert_comment(repo, pr.number, diff_comment_key(index), body))
    client.delete_comments(repo, pr.number, DIFF_MARKER_PREFIX, keep)
    summary = (
        render_diff_check_summary(diffs, head_sha=pr.head_sha)
        if diffs
        else "No configured overlay is affected by this pull request."
    )
    publish_render_check(client, repo, pr.head_sha, diffs, summary)
    if promotion is not None and not deps.records.is_bot_commit(repo, pr.head_sha):
        _mark_foreign_push(client, repo, pr)
    bot = (deps.bot_login or "").lower()
    for person in comparison.people:
        if person != bot:
            deps.records.add_pusher(repo, pr.number, person)
    environments = affected_environments(config, diffs, config_changed=CONFIG_FILE in changed)
    return deps.records.save_render(
        repo,
        pr.number,
        head_sha=pr.head_sha,
        base_ref=pr.base_ref,
        merge_base=comparison.merge_base,
        environments=environments,
    )


def _mark_foreign_push(client: GitHubPort, repo: str, pr: PullRequestInfo) -> None:
    """A promotion PR someone else pushed to: its description no longer tells the truth."""
    banner = render_template("foreign_push.md.j2", head_sha=pr.head_sha)
    rest = _FOREIGN_BLOCK.sub("", pr.body or "", count=1)
    body = f"{FOREIGN_PUSH_START}\n{banner.strip()}\n{FOREIGN_PUSH_END}\n\n{rest}"
    client.update_pr(repo, pr.number, body=body, current=pr)
