"""After a promotion merges: open the next environment's PR where `auto_promote` asks for it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from bot.core.errors import PlanError
from bot.core.planner import request_from_meta
from bot.core.promotion import build_plan
from bot.jobs.deps import Deps
from bot.jobs.merge_gate import evaluate_pr
from bot.jobs.publish import Published, list_env_prs, publish_on_default_branch
from bot.jobs.registry import record_refusal, refuse_backwards
from bot.jobs.repo_state import load_repo_state

log = logging.getLogger(__name__)


def promote_next(deps: Deps, repo: str, meta: Mapping[str, object], number: int) -> list[Published]:
    """Same model version, to every `auto_promote` environment that follows the merged one.

    `meta`: the bot's record of the merged promotion."""
    if meta.get("kind") != "promote":
        return []  # rollbacks do not cascade
    client = deps.client
    state = load_repo_state(client, repo)  # the default branch now includes the merge
    merged_env = str(meta.get("env", ""))
    published = []
    chained = replace(deps)  # a PR this opens that merges at once chains further
    chained.on_merged = lambda m, n: promote_next(chained, repo, m, n)
    for env in state.config.environments:
        if env.promote_from != merged_env or not env.auto_promote:
            continue
        request = request_from_meta(
            meta,
            environment=env.name,
            traffic=None,
            trigger=f"auto_promote after #{number} merged into {merged_env}",
        )
        open_prs = list_env_prs(client, repo, env.name)
        model = state.config.model(request.model)
        if model is not None:
            refusal = refuse_backwards(deps, repo, state, model, env, request.version, open_prs)
            if refusal is not None:
                record_refusal(deps, repo, model, env, request.version, refusal)
                continue
        try:
            plan = build_plan(state.config, state.snapshot, request, deps.render_pair)
        except PlanError as exc:
            log.warning("%s: auto_promote to %s skipped: %s", repo, env.name, exc)
            continue
        result = publish_on_default_branch(deps, state, plan, open_prs)
        if result is not None:
            evaluate_pr(chained, repo, result.number, state.config, fresh=result.fresh)
            published.append(result)
    return published
