"""Periodic self-healing: re-evaluate open promotion PRs and catch up on missed aliases."""

from __future__ import annotations

import logging

from bot.core.deployed import read_deployed
from bot.core.errors import BotError, PlanError, TransientError
from bot.core.triggers import RegistryEvent
from bot.jobs.deps import Deps
from bot.jobs.merge_gate import evaluate_pr
from bot.jobs.registry import RegistryFacts, handle_registry_event
from bot.jobs.repo_state import load_repo_state

log = logging.getLogger(__name__)

ALIAS_EVENT = "model_version_alias.created"


def reconcile_repo(deps: Deps, repo: str) -> dict[str, int]:
    """A missed review/check event must not leave an approved PR unmerged; a lost
    registry webhook must not leave an alias undeployed."""
    client = deps.client
    state = load_repo_state(client, repo)
    stats = {"evaluated": 0, "merged": 0, "alias_prs": 0}
    opened = [p for p in client.list_open_prs(repo) if p.author == deps.bot_login]
    known = deps.records.promotions(repo, [p.number for p in opened])
    for pr in opened:
        if pr.number not in known:
            continue  # not opened by this bot's records: it never merges unasked
        result = evaluate_pr(deps, repo, pr.number, state.config)
        stats["evaluated"] += 1
        stats["merged"] += bool(result.merged_sha)
    if deps.mlflow is None:
        return stats
    for trigger in state.config.triggers:
        if trigger.on != ALIAS_EVENT or not trigger.alias:
            continue
        env = state.config.environment(trigger.promote_to)
        models = [m for m in state.config.models if trigger.model in (None, m.name)]
        for model in models:
            try:
                version = deps.mlflow.alias_version(model.registry_name, trigger.alias)
            except TransientError:
                raise
            except BotError as exc:  # alias not set yet: nothing to heal
                log.info("%s: alias %s of %s: %s", repo, trigger.alias, model.registry_name, exc)
                continue
            if env is None or not version:
                continue
            if read_deployed(state.snapshot, model, env).version == version:
                continue
            event = RegistryEvent(ALIAS_EVENT, model.registry_name, version, alias=trigger.alias)
            try:
                published = handle_registry_event(
                    deps,
                    repo,
                    RegistryFacts(event),
                    trigger=f"reconcile: MLflow alias @{trigger.alias} points at v{version}",
                )
            except PlanError as exc:  # e.g. not live upstream yet: try again next round
                log.info("%s: reconcile cannot promote yet: %s", repo, exc)
                continue
            stats["alias_prs"] += len(published)
    return stats
