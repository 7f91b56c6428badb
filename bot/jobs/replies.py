"""Post bot comments that are found again by a hidden marker and updated, never duplicated."""

from __future__ import annotations

from bot.core.github_port import GitHubPort
from bot.core.templating import render_template


def upsert_reply(
    client: GitHubPort,
    repo: str,
    number: int,
    marker: str,
    template: str,
    *,
    absent: bool = False,
    **context: object,
) -> int:
    """Create or update the one comment carrying `marker`; returns its id. `absent`: the
    caller knows there is none yet (the listing is skipped)."""
    body = f"{marker}\n{render_template(template, **context)}"
    if absent:
        return int(client.upsert_comment(repo, number, marker, body, absent=True))
    return int(client.upsert_comment(repo, number, marker, body))
