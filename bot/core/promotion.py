"""Assemble a complete promotion plan: edits, rendered diffs and PR text."""

from __future__ import annotations

from dataclasses import replace

from bot.core.planner import REDACTED, field_edits, is_secret_material, plan_change
from bot.core.rendering import (
    DiffBudget,
    RenderPair,
    affected_environments,
    environment_diffs,
    head_snapshot,
)
from bot.core.types import Config, Plan, PromotionRequest, Snapshot, Unchanged
from bot.core.unchanged import (
    duplicate_keys_in_build,
    explain_unchanged,
    target_render_unchanged,
)


def build_plan(
    config: Config,
    snapshot: Snapshot,
    request: PromotionRequest,
    render_pair: RenderPair,
    budget: DiffBudget | None = None,
) -> Plan:
    """Plan the edits for `request` on `snapshot`, then render and diff what they affect."""
    planned = plan_change(config, snapshot, request)
    head = head_snapshot(snapshot, planned.changes)
    diffs = environment_diffs(
        config, snapshot, head, [c.path for c in planned.changes], render_pair, budget
    )
    names = {planned.environment.name, *affected_environments(config, diffs)}
    others = [e for e in config.environments if e.name in names and e != planned.environment]
    affected = (planned.environment, *others)
    unchanged: tuple[Unchanged, ...] = ()
    if target_render_unchanged(planned.environment, diffs):
        edits = field_edits(planned.request, planned.model, planned.environment)
        unchanged = tuple(
            replace(u, value=REDACTED)
            if u.kind == "already-set" and is_secret_material(snapshot.get(u.file, b""), [u.field])
            else u
            for u in explain_unchanged(planned.environment, head, planned.changes, edits)
        )
    duplicates = duplicate_keys_in_build(head, [e.path for e in affected])
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
        unchanged=unchanged,
        duplicates=duplicates,
    )
