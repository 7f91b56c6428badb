"""Assemble a complete promotion plan: edits, rendered diffs and PR text."""

from __future__ import annotations

from bot.core.planner import plan_change
from bot.core.rendering import (
    RenderPair,
    affected_environments,
    environment_diffs,
    head_snapshot,
)
from bot.core.types import Config, Plan, PromotionRequest, Snapshot


def build_plan(
    config: Config, snapshot: Snapshot, request: PromotionRequest, render_pair: RenderPair
) -> Plan:
    """Plan the edits for `request` on `snapshot`, then render and diff what they affect."""
    planned = plan_change(config, snapshot, request)
    head = head_snapshot(snapshot, planned.changes)
    diffs = environment_diffs(
        config, snapshot, head, [c.path for c in planned.changes], render_pair
    )
    names = {planned.environment.name, *affected_environments(config, diffs)}
    others = [e for e in config.environments if e.name in names and e != planned.environment]
    affected = (planned.environment, *others)
    return Plan(
        request=planned.request,
        branch=planned.branch,
        title=planned.title,
        changes=planned.changes,
        diffs=diffs,
        environment=planned.environment,
        model=planned.model,
        meta=planned.meta,
        affected=affected,
    )
