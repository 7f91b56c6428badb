"""Flagger's canary events: one timeline comment on the promotion PR, the deployment's status,
and, where the environment asks for it, a rollback PR when Flagger rolled the canary back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from bot.core.canary import CanaryEvent, canary_state, latest
from bot.core.deployed import read_deployed
from bot.core.errors import PlanError
from bot.core.promotion import build_plan
from bot.core.types import Config, Environment, PromotionRequest
from bot.gateways.records import DeploymentRecord
from bot.jobs.chatops import version_from_history
from bot.jobs.deployments import announce, post_status
from bot.jobs.deps import Deps
from bot.jobs.merge_gate import evaluate_pr
from bot.jobs.publish import Published, publish_on_default_branch
from bot.jobs.replies import upsert_reply
from bot.jobs.repo_state import RepoState

log = logging.getLogger(__name__)

CANARY_MARKER = "<!-- gitops-bot:canary -->"
ROLLBACK_REQUESTER = "flagger"


def handle_flagger(
    deps: Deps,
    repo: str,
    config: Config,
    event: CanaryEvent,
    load_state: Callable[[], RepoState],
) -> str:
    """Apply one Flagger event; returns what it did: "unmapped", "no-deployment",
    "duplicate" or "recorded"."""
    environment = config.environment_of_canary(event.namespace, event.name)
    if environment is None:
        log.info("%s: no environment rolls out canary %s/%s", repo, event.namespace, event.name)
        return "unmapped"
    records = deps.records
    newest = [d for d in records.deployments(repo, environment.name, limit=5) if d.deployment_id]
    if not newest:
        log.info("%s: canary event for %s before any deployment of it", repo, environment.name)
        return "no-deployment"
    # the rollout an earlier event of the same checksum belonged to (a late delivery);
    # a new checksum is a new rollout: of what the bot merged last
    known = records.canary_sha(repo, environment.name, event.checksum) if event.checksum else None
    record = next((d for d in newest if d.sha == known), newest[0])
    if not records.add_canary_event(repo, environment.name, record.sha, event):
        return "duplicate"
    events = records.canary_events(repo, environment.name, record.sha)
    now = latest(events)
    assert now is not None
    state = canary_state(now.phase)
    if state is not None and state != record.state and record.state != "inactive":
        description = f"Flagger: {now.phase}" + (f": {now.message}" if now.message else "")
        post_status(
            deps,
            repo,
            record.deployment_id,
            state,
            description=description,
            auto_inactive=None if state == "success" else False,
        )
        records.set_deployment_state(repo, environment.name, record.sha, state, deps.clock())
        record = replace(record, state=state)
        announce(
            deps, repo, record, environment, config, number=record.number, meta=record.meta,
            sha=record.sha, approvers=record.approvers,
        )  # fmt: skip
    rollback = record.rollback_number  # once per failed deployment, however many events
    failed = now.phase == "Failed"
    if failed and environment.on_canary_failure == "rollback" and not rollback:
        published = _roll_back(deps, repo, environment, record, now, load_state)
        if published is not None:
            rollback = published.number
            records.set_rollback(repo, environment.name, record.sha, rollback)
    upsert_reply(
        deps.client,
        repo,
        record.number,
        CANARY_MARKER,
        "canary.md.j2",
        events=events,
        latest=now,
        environment=environment,
        failed=failed,
        rollback_number=rollback,
        short_sha=record.sha[:7],
    )
    return "recorded"


def _roll_back(
    deps: Deps,
    repo: str,
    environment: Environment,
    record: DeploymentRecord,
    failed: CanaryEvent,
    load_state: Callable[[], RepoState],
) -> Published | None:
    """The PR that restores the version before the one whose canary failed (opened once:
    its branch is deterministic), unless the environment moved on since."""
    state = load_state()
    model = state.config.model(record.model)
    if model is None:
        return None
    current = read_deployed(state.snapshot, model, environment)
    if current.version != record.version:
        log.info(
            "%s: not rolling %s back: it deploys v%s now, not the failed v%s",
            repo, environment.name, current.version, record.version,
        )  # fmt: skip
        return None
    try:
        version, source = version_from_history(
            deps, state, model, environment, current.version, None
        )
    except PlanError as exc:
        log.warning("%s: no rollback for %s: %s", repo, environment.name, exc)
        return None
    request = PromotionRequest(
        model=model.name,
        version=version,
        environment=environment.name,
        source_uri=source,
        requester=ROLLBACK_REQUESTER,
        trigger=(
            f"Flagger canary `{failed.namespace}/{failed.name}` failed after #{record.number} "
            f"(on_canary_failure: rollback)"
        ),
        kind="rollback",
        source_note=f"Values restored from the git history of {environment.path}.",
    )
    plan = build_plan(state.config, state.snapshot, request, deps.render_pair)
    published = publish_on_default_branch(deps, state, plan)
    if published is not None:  # through the approval gate like any promotion
        evaluate_pr(deps, repo, published.number, state.config)
    return published
