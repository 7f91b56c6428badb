"""Periodic self-healing: re-evaluate open promotion PRs, and open what lost registry
deliveries would have opened (newest versions, tagged versions, aliases)."""

from __future__ import annotations

import logging

from bot.core.deployed import read_deployed
from bot.core.errors import BotError, PlanError, TransientError
from bot.core.feedback import notification_from_application
from bot.core.ordering import downgrade
from bot.core.triggers import RegistryEvent
from bot.core.types import Config, Environment, Model, Trigger
from bot.jobs.chain import promote_soaked
from bot.jobs.deployments import handle_argocd
from bot.jobs.deps import Deps
from bot.jobs.merge_gate import evaluate_pr
from bot.jobs.publish import list_env_prs
from bot.jobs.registry import RegistryFacts, handle_registry_event, open_promotion_versions
from bot.jobs.repo_state import load_repo_state

log = logging.getLogger(__name__)

ALIAS_EVENT = "model_version_alias.created"
CREATED_EVENT = "model_version.created"
TAG_EVENT = "model_version_tag.set"


def reconcile_repo(deps: Deps, repo: str) -> dict[str, int]:
    """A missed review/check event must not leave an approved PR unmerged; a lost
    registry webhook must not leave an alias undeployed."""
    client = deps.client
    state = load_repo_state(client, repo)
    stats = {"evaluated": 0, "merged": 0, "alias_prs": 0, "version_prs": 0}
    opened = [p for p in client.list_open_prs(repo) if p.author == deps.bot_login]
    known = deps.records.promotions(repo, [p.number for p in opened])
    for pr in opened:
        if pr.number not in known:
            continue  # not opened by this bot's records: it never merges unasked
        result = evaluate_pr(deps, repo, pr.number, state.config)
        stats["evaluated"] += 1
        stats["merged"] += bool(result.merged_sha)
    # notifications that never came: ask Argo CD what each mapped application runs
    if deps.argocd is not None:
        stats["argocd_polled"] = poll_argocd(deps, repo, state.config)
    # soak times end without any event: open what `auto_promote` waited for
    stats["soaked_prs"] = len(promote_soaked(deps, repo, state.config, lambda: state))
    if deps.mlflow is None:
        return stats
    for trigger in state.config.triggers:
        env = state.config.environment(trigger.promote_to)
        if env is None:
            continue
        for model in [m for m in state.config.models if trigger.model in (None, m.name)]:
            found = _registry_target(deps, repo, trigger, model.registry_name)
            if found is None:
                continue
            event, why = found
            deployed = read_deployed(state.snapshot, model, env).version
            if event.version == deployed or _already_open(deps, repo, model, env, event.version):
                continue  # nothing was lost, or its PR is open already
            try:
                published = handle_registry_event(
                    deps, repo, RegistryFacts(event), trigger=f"reconcile: {why}"
                )
            except PlanError as exc:  # e.g. not live upstream yet: try again next round
                log.info("%s: reconcile cannot promote yet: %s", repo, exc)
                continue
            key = "alias_prs" if event.kind == ALIAS_EVENT else "version_prs"
            stats[key] = stats.get(key, 0) + len(published)
    return stats


def poll_argocd(deps: Deps, repo: str, config: Config) -> int:
    """Apply what Argo CD's API says about every mapped application as if it had been
    notified (the same ordering and duplicate rules hold); returns how many it read."""
    assert deps.argocd is not None
    read = 0
    for env in config.environments:
        if not env.argocd_application:
            continue
        try:
            app = deps.argocd.application(env.argocd_application)
            note = notification_from_application(app)
        except TransientError:
            raise
        except BotError as exc:  # unknown application, no permission, not an application
            log.warning("%s: cannot read Argo CD application %s: %s", repo,
                        env.argocd_application, exc)  # fmt: skip
            continue
        if note.application != env.argocd_application:
            log.warning("%s: Argo CD answered for %s with %s", repo, env.argocd_application,
                        note.application)  # fmt: skip
            continue
        handle_argocd(deps, repo, config, note)
        read += 1
    return read


def _registry_target(
    deps: Deps, repo: str, trigger: Trigger, registry_name: str
) -> tuple[RegistryEvent, str] | None:
    """The event a trigger would have fired for the registry's present state (the newest
    version, the version carrying the tag, the alias's version), and how to say so."""
    assert deps.mlflow is not None
    try:
        if trigger.on == ALIAS_EVENT and trigger.alias:
            version = deps.mlflow.alias_version(registry_name, trigger.alias)
            if not version:
                return None
            event = RegistryEvent(ALIAS_EVENT, registry_name, version, alias=trigger.alias)
            return event, f"MLflow alias @{trigger.alias} points at v{version}"
        if trigger.on == CREATED_EVENT:
            newest = deps.mlflow.latest_version(registry_name)
            if newest is None:
                return None
            event = RegistryEvent(CREATED_EVENT, registry_name, newest)
            return event, f"MLflow's newest version of {registry_name} is v{newest}"
        if trigger.on == TAG_EVENT and trigger.tag:
            tagged = deps.mlflow.latest_version(registry_name, tag=trigger.tag)
            if tagged is None:
                return None
            key, _, value = trigger.tag.partition("=")
            event = RegistryEvent(TAG_EVENT, registry_name, tagged, tag_key=key, tag_value=value)
            return event, f"v{tagged} of {registry_name} carries the tag `{trigger.tag}`"
    except TransientError:
        raise
    except BotError as exc:  # e.g. the alias is not set yet: nothing to heal
        log.info("%s: %s of %s: %s", repo, trigger.on, registry_name, exc)
    return None


def _already_open(deps: Deps, repo: str, model: Model, env: Environment, version: str) -> bool:
    """Does an open promotion PR of the bot take `env` to `version` (or beyond) already?"""
    open_prs = list_env_prs(deps.client, repo, env.name)
    pending = open_promotion_versions(deps, repo, model, env, open_prs)
    return (
        version in pending
        or downgrade(env.name, version, deployed=None, pending=pending) is not None
    )
