"""Route a claimed job to its handler: registry events, comments, PR and review events."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
from bot.core.report import parse_meta
from bot.core.triggers import RegistryEvent
from bot.core.types import Config
from bot.jobs.chain import promote_next
from bot.jobs.chatops import CommentContext, Deps, handle_comment
from bot.jobs.merge_gate import evaluate_pr, find_promotion_prs_for_sha
from bot.jobs.pr_diff import handle_pr_diff
from bot.jobs.reconcile import reconcile_repo
from bot.jobs.registry import RegistryFacts, handle_registry_event
from bot.jobs.repo_state import load_repo_state

log = logging.getLogger(__name__)

BOT_BRANCH_PREFIX = "gitops-bot/"


@dataclass
class Services:
    """What handlers need; built once per process by `bot.runtime`."""

    github: Any  # bot.gateways.github.GitHubApp
    render_pair: Callable[..., Any]  # trusted: the bot's own edits on the default branch
    untrusted_render_pair: Callable[..., Any]
    mlflow: Any | None = None
    bot_login: str | None = None
    app_slug: str | None = None


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


def _client(services: Services, repo: str, installation_id: int | None) -> Any:
    if installation_id:
        return services.github.client(installation_id)
    return services.github.client_for_repo(repo)


def _gate(
    services: Services,
    client: Any,
    repo: str,
    numbers: Sequence[int],
    config: Config | None = None,
) -> None:
    """Evaluate each PR; `config`: the default branch's, when the job already read it."""
    known = [config] if config is not None else []

    def load() -> Config:  # read once, and only if one of the PRs is a promotion PR
        if not known:
            known.append(load_repo_state(client, repo).config)
        return known[0]

    for number in numbers:
        evaluate_pr(
            client,
            repo,
            number,
            load,
            bot_login=services.bot_login,
            on_merged=_on_merged(services, client, repo, known),
        )


def _on_merged(
    services: Services, client: Any, repo: str, known: Sequence[Config] = ()
) -> Callable[..., object]:
    def chain(meta: Mapping[str, object], number: int) -> object:
        if known and not _promotes_after(known[0], str(meta.get("env", ""))):
            return []  # nothing follows the merged environment: skip re-reading the repo
        return promote_next(
            client,
            repo,
            meta,
            number,
            render_pair=services.render_pair,
            bot_login=services.bot_login,
        )

    return chain


def _promotes_after(config: Config, env: str) -> bool:
    """Does any environment auto-promote from `env`? (what `promote_next` acts on)"""
    return any(e.promote_from == env and e.auto_promote for e in config.environments)


def handle_job(services: Services, kind: str, repo: str | None, payload: dict[str, Any]) -> None:
    """Run one job; raises TransientError to be retried, anything else fails it."""
    if kind == "reconcile":
        if repo:
            reconcile_repo(services, _client(services, repo, None), repo)
        return
    event = event_from_payload(payload)
    registry = registry_event(event)
    if registry is not None:
        if not repo:
            raise ValueError("registry job without a target repository")
        client = _client(services, repo, None)
        trigger, source, run_id = registry
        state = load_repo_state(client, repo)
        published = handle_registry_event(
            client,
            repo,
            RegistryFacts(trigger, source=source, run_id=run_id),
            mlflow=services.mlflow,
            render_pair=services.render_pair,
            trigger=f"MLflow `{trigger.kind}` ({trigger.registry_name} v{trigger.version})",
            state=state,
            bot_login=services.bot_login,
        )
        # the PRs were planned on this default-branch state: gate them with its config
        _gate(services, client, repo, [p.number for p in published], state.config)
        return
    if isinstance(event, (Ping, InstallationEvent)):
        if isinstance(event, InstallationEvent):
            for name in (*event.repositories, *event.repositories_removed):
                services.github.forget_installation(name)
        return
    if not isinstance(event, (CommentCreated, PullRequestEvent, ReviewEvent, CheckEvent)):
        log.info("no handler for %s", type(event).__name__)
        return
    client = _client(services, event.repo, event.installation_id)
    if isinstance(event, CommentCreated):
        deps = Deps(
            client=client,
            render_pair=services.render_pair,
            untrusted_render_pair=services.untrusted_render_pair,
            mlflow=services.mlflow,
            bot_login=services.bot_login,
            on_merged=_on_merged(services, client, event.repo),
        )
        ctx = CommentContext(
            event.repo, event.issue_number, event.is_pull_request, event.comment_id, event.author
        )
        handle_comment(deps, ctx, event.body)
    elif isinstance(event, PullRequestEvent):
        _pull_request(services, client, event)
    elif isinstance(event, ReviewEvent):
        _gate(services, client, event.repo, [event.number])
    elif isinstance(event, CheckEvent):
        if services.app_slug and event.app_slug == services.app_slug:
            return  # our own checks: we already acted when we published them
        numbers = list(event.pull_numbers) or find_promotion_prs_for_sha(
            client, event.repo, event.head_sha
        )
        _gate(services, client, event.repo, numbers)


def _pull_request(services: Services, client: Any, event: PullRequestEvent) -> None:
    if event.head_ref.startswith(BOT_BRANCH_PREFIX):
        if event.action == "closed" and event.merged:  # a human clicked "Merge"
            meta = parse_meta(event.body)
            if meta:
                _on_merged(services, client, event.repo)(meta, event.number)
        elif event.action in ("synchronize", "reopened", "ready_for_review"):
            # a push to a promotion branch makes earlier approvals stale: re-evaluate
            _gate(services, client, event.repo, [event.number])
        return
    if event.action == "closed":
        return
    handle_pr_diff(client, event.repo, event.number, render_pair=services.untrusted_render_pair)
