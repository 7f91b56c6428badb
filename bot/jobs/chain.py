"""After a promotion merges: open the next environment's PR where `auto_promote` asks for it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

from bot.core.deployed import read_deployed
from bot.core.errors import PlanError
from bot.core.planner import branch_name, request_from_meta
from bot.core.promotion import build_plan
from bot.core.types import Config
from bot.jobs.deps import Deps
from bot.jobs.merge_gate import evaluate_pr
from bot.jobs.publish import Published, list_env_prs, publish_on_default_branch
from bot.jobs.registry import (
    open_promotion_versions,
    record_refusal,
    refuse_backwards,
    soak_of,
)
from bot.jobs.repo_state import RepoState, load_repo_state

log = logging.getLogger(__name__)


def promote_next(
    deps: Deps,
    repo: str,
    meta: Mapping[str, object],
    number: int,
    *,
    state: RepoState | None = None,
    only: str | None = None,
) -> list[Published]:
    """Same model version, to every `auto_promote` environment that follows the merged one
    (`only`: to that one), once its soak time upstream, if it asks for one, is over.

    `meta`: the bot's record of the merged promotion."""
    if meta.get("kind") != "promote":
        return []  # rollbacks do not cascade
    client = deps.client
    state = state or load_repo_state(client, repo)  # the default branch includes the merge
    merged_env = str(meta.get("env", ""))
    published = []
    chained = replace(deps)  # a PR this opens that merges at once chains further
    chained.on_merged = lambda m, n: promote_next(chained, repo, m, n)
    for env in state.config.environments:
        if env.promote_from != merged_env or not env.auto_promote:
            continue
        if only is not None and env.name != only:
            continue
        model = state.config.model(str(meta.get("model", "")))
        version = str(meta.get("version", ""))
        if model is not None and env.healthy_for_s > 0:
            soak = soak_of(deps, repo, state.config, model, env, version)
            if not soak.done:  # the reconcile loop (or Argo CD's next report) comes back
                log.info("%s: auto_promote to %s waits: %s", repo, env.name, soak.reason)
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


def promote_soaked(
    deps: Deps, repo: str, config: Config, load_state: Callable[[], RepoState]
) -> list[Published]:
    """Open the PR of every `auto_promote` environment whose upstream has now run the bot's
    latest deployment healthy for the soak time, unless it deploys or awaits it already.
    Cheap when nothing is due: the bot's own records decide before GitHub is asked."""
    due = []
    for env in config.environments:
        if not (env.auto_promote and env.promote_from and env.healthy_for_s > 0):
            continue
        health = deps.records.health(repo, env.promote_from)
        if health is None or not health.version or not health.healthy:
            continue
        record = next(
            (
                d
                for d in deps.records.deployments(repo, env.promote_from)
                if (d.model, d.version) == (health.model, health.version)
            ),
            None,
        )  # the newest deployment of the version the upstream runs
        if record is None or record.meta.get("kind") != "promote":
            continue
        model = config.model(record.model)
        if model is None or not soak_of(deps, repo, config, model, env, record.version).done:
            continue
        due.append((env, model, record))
    if not due:
        return []
    state = load_state()
    published = []
    for env, model, record in due:
        if read_deployed(state.snapshot, model, env).version == record.version:
            continue  # promoted already
        open_prs = list_env_prs(deps.client, repo, env.name)
        if record.version in open_promotion_versions(deps, repo, model, env, open_prs):
            continue  # its PR is open
        request = request_from_meta(record.meta, environment=env.name, traffic=None)
        closed = deps.client.latest_pr(repo, branch_name(request))
        if closed is not None and not closed.merged:
            continue  # someone closed this promotion's PR: not reopened behind their back
        published += promote_next(
            deps, repo, record.meta, record.number, state=state, only=env.name
        )
    return published
