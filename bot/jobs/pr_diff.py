"""Rendered-diff comment and render check for pull requests that touch overlays."""

from __future__ import annotations

import logging
from typing import Any

from bot.core.config import load_config
from bot.core.rendering import environment_diffs
from bot.core.report import (
    DIFF_MARKER,
    DIFF_PART_MARKER,
    render_diff_check_summary,
    render_diff_comment,
)
from bot.jobs.publish import publish_render_check
from bot.jobs.repo_state import CONFIG_FILE, MissingConfigError

log = logging.getLogger(__name__)

DIFF_MARKER_PREFIX = "<!-- gitops-bot:diff"


def diff_comment_key(index: int) -> str:
    """Find comment i by its position, whatever the current total N is."""
    return DIFF_MARKER if index == 1 else f"<!-- {DIFF_PART_MARKER} {index}/"


def handle_pr_diff(client: Any, repo: str, number: int, *, render_pair: Any) -> int:
    """Render base vs head for the overlays the PR reaches; returns comments written."""
    pr = client.get_pr(repo, number)
    if pr.state != "open":
        return 0
    branch, default_sha = client.default_branch(repo)
    raw = client.read_file(repo, CONFIG_FILE, default_sha)
    if raw is None:
        raise MissingConfigError(f"{repo}: no {CONFIG_FILE} on the default branch '{branch}'")
    config = load_config(raw.decode("utf-8-sig"), CONFIG_FILE)  # never the PR's own config
    changed = client.pr_files(repo, number)
    base = client.snapshot(repo, pr.base_sha)
    head = client.snapshot(repo, pr.head_sha)
    diffs = environment_diffs(config, base, head, changed, render_pair)
    written = 0
    keep: set[int] = set()
    if diffs:
        bodies = render_diff_comment(diffs, head_sha=pr.head_sha)
        for index, body in enumerate(bodies, start=1):
            keep.add(client.upsert_comment(repo, number, diff_comment_key(index), body))
            written += 1
    client.delete_comments(repo, number, DIFF_MARKER_PREFIX, keep)
    summary = (
        render_diff_check_summary(diffs, head_sha=pr.head_sha)
        if diffs
        else "No configured overlay is affected by this pull request."
    )
    publish_render_check(client, repo, pr.head_sha, diffs, summary)
    return written
