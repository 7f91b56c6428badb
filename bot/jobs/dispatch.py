"""Route a claimed job to its handler: registry events, comments, PR and review events."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bot.core.canary import CanaryEvent, parse_flagger
from bot.core.events import (
    AliasCreated,
    CheckEvent,
    CommentCreated,
    InstallationEvent,
    ModelVersionCreated,
    Ping,
    PullRequestEvent,
    ReviewEvent,
    StageTransition,
    TagSet,
    event_from_payload,
)
from bot.core.feedback import ArgoNotification, parse_argocd
from bot.core.github_port import GitHubAppPort, GitHubPort
from bot.core.triggers import RegistryEvent
from bot.core.types import Config
from bot.gateways.records import PromotionRecords
from bot.jobs.canary import handle_flagger
from bot.jobs.chain import promote_next, promote_soaked
from bot.jobs.chatops import CommentContext, handle_comment
from bot.jobs.deployments import handle_argocd
from bot.jobs.deps import Deps, FreshPr, promotion_of
from bot.jobs.merge_gate import evaluate_pr, find_open_prs_for_sha
from bot.jobs.reconcile import reconcile_repo
from bot.jobs.registry import RegistryFacts, handle_registry_event
from bot.jobs.repo_state import load_repo_state

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What handlers need; built once per process by `bot.runtime`."""

    github: GitHubAppPort  # bot.gateways.github.GitHubApp
    render_pair: Callable[..., Any]  # trusted: the bot's own edits on the default branch
    untrusted_render_pair: Callable[..., Any]
    records: PromotionRecords
    mlflow: Any | None = None
    on_refused: Callable[[str], None] | None = None
    bot_login: str | None = None
    app_slug: str | None = None
    clock: Callable[[], float] = time.time
    argocd_url: str = ""
    argocd: Any | None = None  # bot.gateways.argocd.ArgoCDClient


def registry_event(event: Any) -> tuple[RegistryEvent, str, str] | None:
    """(trigger event, source, run id) for registry payloads; None for other events."""
    if isinstance(event, ModelVersionCreated):
        return RegistryEvent(event.KIND, event.name, event.version), event.source, event.run_id
    if isinstance(event, AliasCreated):
        return RegistryEvent(event.KIND, event.name, event.version, alias=event.alias), "", ""
    if isinstance(event, TagSet):
        registry = RegistryEvent(
            event.KIND, event.name, event.version, tag_key=event.key, tag_value=event.value
        )
        return registry, "", ""
    if isinstance(event, StageTransition):
        # Databricks stages map onto aliases: a trigger on alias "production" fires on
        # MODEL_VERSION_TRANSITIONED_TO_PRODUCTION.
        alias = event.to_stage.lower()
        return RegistryEvent(AliasCreated.KIND, event.name, event.version, alias=alias), "", ""
    return None


def _client(services: Services, repo: str, installation_id: int | None) -> GitHubPort:
    if installation_id:
        return services.github.client(installation_id)
    return services.github.client_for_repo(repo)


def job_deps(services: Services, client: GitHubPort) -> Deps:
    """The handlers' dependencies for one installation."""
    return Deps(
        client=client,
        records=services.records,
        render_pair=services.render_pair,
        untrusted_render_pair=services.untrusted_render_pair,
        mlflow=services.mlflow,
        bot_login=services.bot_login,
        on_refused=services.on_refused,
        clock=services.clock,
        argocd_url=services.argocd_url,
        argocd=services.argocd,
    )


def _gate(
    deps: Deps,
    repo: str,
    numbers: Sequence[int],
    config: Config | None = None,
    fresh: Mapping[int, FreshPr] | None = None,
) -> None:
    """Evaluate each PR; `config`: the default branch's, when the job already read it;
    `fresh`: the PRs this job just opened, with what it knows of them."""
    known = [config] if config is not None else []

    def load() -> Config:  # read once, and only if a PR needs it
        if not known:
            known.append(load_repo_state(deps.client, repo).config)
        return known[0]

    chained = replace(deps, on_merged=_on_merged(deps, repo, known))
    for number in numbers:
        evaluate_pr(chained, repo, number, load, fresh=(fresh or {}).get(number))


def _on_merged(
    deps: Deps, repo: str, known: Sequence[Config] = ()
) -> Callable[[Mapping[str, object], int], object]:
    def chain(meta: Mapping[str, object], number: int) -> object:
        if known and not _promotes_after(known[0], str(meta.get("env", ""))):
            return []  # nothing follows the merged environment: skip re-reading the repo
        return promote_next(deps, repo, meta, number)

    return chain


def _promotes_after(config: Config, env: str) -> bool:
    """Does any environment auto-promote from `env`? (what `promote_next` acts on)"""
    return any(e.promote_from == env and e.auto_promote for e in config.environments)


def handle_job(services: Services, kind: str, repo: str | None, payload: dict[str, Any]) -> None:
    """Run one job; raises TransientError to be retried, anything else fails it."""
    if kind == "reconcile":
        if repo:
            deps = job_deps(services, _client(services, repo, None))
            reconcile_repo(replace(deps, on_merged=_on_merged(deps, repo)), repo)
        return
    if kind == ArgoNotification.KIND:
        if not repo:
            raise ValueError("Argo CD job without a target repository")
        deps = job_deps(services, _client(services, repo, None))
        state = load_repo_state(deps.client, repo)
        outcome = handle_argocd(deps, repo, state.config, parse_argocd(payload))
        log.info("%s: Argo CD notification %s", repo, outcome)
        if outcome == "recorded":  # a soak time may be over already (a late report)
            chained = replace(deps, on_merged=_on_merged(deps, repo, [state.config]))
            promote_soaked(chained, repo, state.config, lambda: state)
        return
    if kind == CanaryEvent.KIND:
        if not repo:
            raise ValueError("Flagger job without a target repository")
        deps = job_deps(services, _client(services, repo, None))
        state = load_repo_state(deps.client, repo)
        chained = replace(deps, on_merged=_on_merged(deps, repo, [state.config]))
        outcome = handle_flagger(chained, repo, state.config, parse_flagger(payload), lambda: state)
        log.info("%s: Flagger event %s", repo, outcome)
        return
    event = event_from_payload(payload)
    registry = registry_event(event)
    if registry is not None:
        if not repo:
            raise ValueError("registry job without a target repository")
        deps = job_deps(services, _client(services, repo, None))
        trigger, source, run_id = registry
        state = load_repo_state(deps.client, repo)
        published = handle_registry_event(
            deps,
            repo,
            RegistryFacts(trigger, source=source, run_id=run_id),
            trigger=f"MLflow `{trigger.kind}` ({trigger.registry_name} v{trigger.version})",
            state=state,
        )
        # the PRs were planned on this default-branch state: gate them with its config
        fresh = {p.number: p.fresh for p in published if p.fresh is not None}
        _gate(deps, repo, [p.number for p in published], state.config, fresh)
        return
    if isinstance(event, (Ping, InstallationEvent)):
        if isinstance(event, InstallationEvent):
            for name in (*event.repositories, *event.repositories_removed):
                services.github.forget_installation(name)
        return
    if not isinstance(event, (CommentCreated, PullRequestEvent, ReviewEvent, CheckEvent)):
        log.info("no handler for %s", type(event).__name__)
        return
    deps = job_deps(services, _client(services, event.repo, event.installation_id))
    if isinstance(event, CommentCreated):
        ctx = CommentContext(
            event.repo, event.issue_number, event.is_pull_request, event.comment_id, event.author
        )
        handle_comment(replace(deps, on_merged=_on_merged(deps, event.repo)), ctx, event.body)
    elif isinstance(event, PullRequestEvent):
        _pull_request(deps, event)
    elif isinstance(event, ReviewEvent):
        _gate(deps, event.repo, [event.number])
    elif isinstance(event, CheckEvent):
        if services.app_slug and event.app_slug == services.app_slug:
            return  # our own checks: we already acted when we published them
        numbers = list(event.pull_numbers) or find_open_prs_for_sha(
            deps.client, event.repo, event.head_sha
        )
        _gate(deps, event.repo, numbers)


RENDER_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review", "edited"})


def _pull_request(deps: Deps, event: PullRequestEvent) -> None:
    """Every PR, the bot's or a human's: a push makes its author a pusher, every new head
    is rendered before the gate can pass, and the gate applies by effect."""
    repo, number = event.repo, event.number
    if event.action == "closed":
        promotion = promotion_of(deps, repo, event) if event.merged else None
        if promotion is not None:  # a human clicked "Merge" on a promotion PR
            _gate(deps, repo, [number])  # merged: its deployment and comment, once
            _on_merged(deps, repo)(promotion.meta, number)
        return
    if event.action not in RENDER_ACTIONS:
        return
    bot = (deps.bot_login or "").lower()
    if event.action == "synchronize" and event.sender and event.sender.lower() != bot:
        deps.records.add_pusher(repo, number, event.sender)
    # the gate renders any head it has no render record for, then decides
    _gate(deps, repo, [number])
