"""MLflow/Databricks registry events -> promotion PRs for the triggers they match."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.core.deployed import read_deployed
from bot.core.errors import BotError, PlanError
from bot.core.feedback import Soak, soak_status
from bot.core.github_port import PullRequestInfo
from bot.core.grammar import source_problem, version_problem
from bot.core.locations import map_artifacts_uri, scheme_of, unservable
from bot.core.ordering import INVALID_SOURCE, INVALID_VERSION, Refusal, downgrade, stale_alias
from bot.core.promotion import build_plan
from bot.core.triggers import RegistryEvent, match_triggers
from bot.core.types import Config, Environment, Model, PromotionRequest
from bot.jobs.deps import Deps
from bot.jobs.merge_gate import evaluate_pr
from bot.jobs.publish import Published, list_env_prs, publish_on_default_branch
from bot.jobs.repo_state import RepoState, load_repo_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryFacts:
    """What the registry event (and MLflow, when reachable) tell about the version."""

    event: RegistryEvent
    source: str = ""
    run_id: str = ""


INDIRECT_SCHEMES = ("models", "runs", "mlflow-artifacts")  # MLflow's names, not locations


def resolve_source(facts: RegistryFacts, mlflow: Any | None) -> tuple[str, str, str]:
    """(storage uri, run id, note). MLflow's indirections (`models:/`, `runs:/`,
    `mlflow-artifacts:`) become the underlying store location where MLflow can tell it:
    its download URI, then `mlflow-artifacts:` mapped through the server's artifacts
    destination when the operator configured it (`MLFLOW_ARTIFACTS_DESTINATION`)."""
    source, run_id = facts.source, facts.run_id
    name, version = facts.event.registry_name, facts.event.version
    if mlflow is None:
        if scheme_of(source) in INDIRECT_SCHEMES:
            return (
                source,
                run_id,
                (
                    "Source not resolved: no MLflow tracking URI configured, "
                    f"so the registry's `{scheme_of(source)}:` URI is used as given."
                ),
            )
        return source, run_id, ""
    if not source or not run_id:
        info = mlflow.model_version(name, version)
        source, run_id = source or info.source, run_id or info.run_id
    resolved, note = source, ""
    if scheme_of(source) in INDIRECT_SCHEMES or not source:
        resolved = mlflow.download_uri(name, version)
        note = f"Storage location resolved through MLflow from `{source}`."
    mapped = map_artifacts_uri(resolved, getattr(mlflow, "artifacts_destination", ""))
    if mapped != resolved:
        note = f"Storage location resolved through MLflow from `{source}` (via `{resolved}`)."
    return mapped, run_id, note


def _source_from_upstream(state: RepoState, model: Model, env: Environment, version: str) -> str:
    """For an alias event without MLflow access: take the URI the upstream env deploys."""
    upstream = state.config.environment(env.promote_from) if env.promote_from else None
    if upstream is None:
        return ""
    deployed = read_deployed(state.snapshot, model, upstream)
    return deployed.storage_uri or "" if deployed.version == version else ""


def check_promote_from(state: RepoState, model: Model, env: Environment, version: str) -> None:
    """With `promote_from`, the version must already be live upstream on the default branch."""
    if not env.promote_from:
        return
    upstream = state.config.environment(env.promote_from)
    if upstream is None:
        return
    deployed = read_deployed(state.snapshot, model, upstream)
    if deployed.version != version:
        live = f"v{deployed.version}" if deployed.version else "no recognisable version"
        raise PlanError(
            f"{model.name} v{version} is not live in {upstream.name} yet "
            f"({upstream.name} deploys {live} on {state.default_branch}); "
            f"{env.name} only takes versions promoted from {upstream.name}."
        )


def soak_of(
    deps: Deps, repo: str, config: Config, model: Model, env: Environment, version: str
) -> Soak:
    """Has `env`'s upstream run `model` v`version` healthy for `env`'s soak time (per the
    bot's record of Argo CD's notifications and of its own deployments)?"""
    upstream = config.environment(env.promote_from) if env.promote_from else None
    if upstream is None or env.healthy_for_s <= 0:
        return Soak(True)
    health = deps.records.health(repo, upstream.name)
    live = (health.model, health.version) if health is not None and health.version else None
    return soak_status(
        health,
        upstream=upstream.name,
        model=model.name,
        version=version,
        revision_version=live,
        healthy_for_s=env.healthy_for_s,
        now=deps.clock(),
    )


def check_soak(
    deps: Deps, repo: str, config: Config, model: Model, env: Environment, version: str
) -> None:
    """With `promote_from: {env, healthy_for}`, refuse until the soak time is over."""
    soak = soak_of(deps, repo, config, model, env, version)
    if not soak.done:
        raise PlanError(f"Not promoting {model.name} v{version} to {env.name} yet: {soak.reason}.")


def open_promotion_versions(
    deps: Deps, repo: str, model: Model, env: Environment, open_prs: list[PullRequestInfo]
) -> list[str]:
    """Versions the bot's open promotion PRs take `model` to in `env` (by its records)."""
    ours = [p.number for p in open_prs if p.author == deps.bot_login]
    return [
        record.version
        for record in deps.records.promotions(repo, ours).values()
        if record.model == model.name and record.environment == env.name
    ]


def refuse_backwards(
    deps: Deps,
    repo: str,
    state: RepoState,
    model: Model,
    env: Environment,
    version: str,
    open_prs: list[PullRequestInfo],
) -> Refusal | None:
    """Would promoting `version` move `env` backwards? Then say why (None: go ahead)."""
    deployed = read_deployed(state.snapshot, model, env).version
    pending = open_promotion_versions(deps, repo, model, env, open_prs)
    return downgrade(env.name, version, deployed=deployed, pending=pending)


def record_refusal(
    deps: Deps, repo: str, model: Model, env: Environment, version: str, refusal: Refusal
) -> None:
    """A refused event is remembered (operator page) and counted (metrics), once."""
    log.info("%s: not promoting %s v%s to %s: %s", repo, model.name, version, env.name,
             refusal.reason)  # fmt: skip
    new = deps.records.save_refusal(
        repo, model.name, env.name, version, refusal.kind, refusal.reason
    )
    if new and deps.on_refused is not None:
        deps.on_refused(refusal.kind)


def _invalid(model: Model, facts: RegistryFacts) -> Refusal | None:
    """A version the model's pattern does not allow, or a source the bot never uses."""
    problem = version_problem(facts.event.version, model.version_pattern)
    if problem is not None:
        return Refusal(INVALID_VERSION, problem)
    problem = source_problem(facts.source) if facts.source else None
    return Refusal(INVALID_SOURCE, problem) if problem is not None else None


def handle_registry_event(
    deps: Deps,
    repo: str,
    facts: RegistryFacts,
    *,
    trigger: str,
    state: RepoState | None = None,
) -> list[Published]:
    """Open or update one promotion PR per matching trigger; skip what is already deployed.

    `state`: the default branch as the caller just loaded it (saves reading it again)."""
    client = deps.client
    state = state or load_repo_state(client, repo)
    matches = match_triggers(state.config, facts.event)
    if not matches:
        log.info(
            "%s: no trigger matches %s for %s", repo, facts.event.kind, facts.event.registry_name
        )
        return []
    invalid = {m.model.name: _invalid(m.model, facts) for m in matches}
    if any(refusal is None for refusal in invalid.values()):
        source, run_id, note = resolve_source(facts, deps.mlflow)
    else:  # nothing to resolve for: each match is refused below
        source, run_id, note = facts.source, facts.run_id, ""
    results = []
    for match in matches:
        env = state.config.environment(match.trigger.promote_to)
        if env is None:  # config validation prevents this
            raise BotError(f"trigger promotes to unknown environment {match.trigger.promote_to}")
        refused = invalid[match.model.name]
        if refused is not None:
            record_refusal(deps, repo, match.model, env, facts.event.version[:64], refused)
            continue
        check_promote_from(state, match.model, env, facts.event.version)
        check_soak(deps, repo, state.config, match.model, env, facts.event.version)
        open_prs = list_env_prs(client, repo, env.name)
        version = facts.event.version
        refusal = refuse_backwards(deps, repo, state, match.model, env, version, open_prs)
        if refusal is None and facts.event.alias and deps.mlflow is not None:
            # the newest assignment wins, whatever order the deliveries came in
            current = deps.mlflow.alias_version(match.model.registry_name, facts.event.alias)
            refusal = stale_alias(facts.event.alias, version, current or None)
        if refusal is not None:
            record_refusal(deps, repo, match.model, env, version, refusal)
            continue
        uri = source or _source_from_upstream(state, match.model, env, facts.event.version)
        refusal = unservable(env, match.model, uri)
        if refusal is not None:
            record_refusal(deps, repo, match.model, env, version, refusal)
            continue
        request = PromotionRequest(
            model=match.model.name,
            version=facts.event.version,
            environment=env.name,
            source_uri=uri,
            run_id=run_id,
            requester="mlflow",
            trigger=trigger,
            source_note=note if uri == source else f"Storage URI taken from {env.promote_from}.",
        )
        plan = build_plan(state.config, state.snapshot, request, deps.render_pair)
        published = publish_on_default_branch(deps, state, plan, open_prs)
        if published is not None:
            results.append(published)
        elif not plan.changes:
            _finish_merged_promotion(deps, repo, plan.branch, state)
    return results


def _finish_merged_promotion(deps: Deps, repo: str, branch: str, state: RepoState) -> None:
    """Already deployed: if our PR for it merged, make sure its outcome was announced."""
    pr = deps.client.latest_pr(repo, branch)
    if pr is not None and pr.merged:
        evaluate_pr(deps, repo, pr.number, state.config)
