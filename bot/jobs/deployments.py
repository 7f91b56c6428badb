"""After the merge: one GitHub deployment per merged promotion, its statuses following what
Argo CD reports, and the PR's "Merged" comment saying what is really live."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot.core.deployed import read_deployed
from bot.core.errors import BotError, TransientError
from bot.core.feedback import (
    ArgoNotification,
    EnvironmentHealth,
    deployment_state,
    format_duration,
    health_state,
    is_stale,
    next_health,
    unchanged,
)
from bot.core.github_port import GitHubError
from bot.core.types import Config, Environment
from bot.gateways.records import DeploymentRecord
from bot.jobs.deps import Deps
from bot.jobs.replies import upsert_reply

log = logging.getLogger(__name__)

MERGED_MARKER = "<!-- gitops-bot:merged -->"
QUEUED = "queued"


def deployment_payload(meta: Mapping[str, object], number: int) -> dict[str, object]:
    """What a deployment names: the model, its version and where it comes from."""
    return {
        "gitops_bot": 1,
        "model": str(meta.get("model") or ""),
        "registry_name": str(meta.get("registry_name") or ""),
        "version": str(meta.get("version") or ""),
        "source": str(meta.get("source_uri") or ""),
        "kind": str(meta.get("kind") or "promote"),
        "pull_request": int(number),
    }


def ensure_deployment(
    deps: Deps,
    repo: str,
    environment: Environment,
    sha: str,
    number: int,
    meta: Mapping[str, object],
    approvers: tuple[str, ...] = (),
) -> DeploymentRecord:
    """The deployment of merge commit `sha` to `environment`: created once, however often
    this runs (the bot's record first; a crash between GitHub's answer and the record is
    healed by looking on GitHub), with its first status."""
    records = deps.records
    record, new = records.reserve_deployment(
        repo, environment.name, sha, number=number, meta=meta, approvers=approvers,
        now=deps.clock(),
    )  # fmt: skip
    if not record.deployment_id:
        registry_name = str(meta.get("registry_name") or meta.get("model") or "model")
        deployment_id = deps.client.ensure_deployment(
            repo,
            sha=sha,
            environment=environment.name,
            payload=deployment_payload(meta, number),
            description=f"{registry_name} v{meta.get('version')} to {environment.name} (#{number})",
            production=environment.production,
            look_first=not new,
        )
        records.set_deployment_id(repo, environment.name, sha, deployment_id)
        record = _with(record, deployment_id=deployment_id)
    if not record.state:
        health = records.health(repo, environment.name)
        # Argo CD may have reported on the merge commit before the deployment existed
        state = health_state(health) if health and health.revision == sha else QUEUED
        if state == "success" and environment.flagger_canary is not None:
            state = "in_progress"  # synced; the canary decides when it is deployed
        _set_state(deps, repo, environment, record, state, health)
        record = _with(record, state=state)
    return record


ARGOCD_SYNC_FLAG = "argocd-sync"  # a PR flag: the sync of its merge commit was triggered


def trigger_sync(deps: Deps, repo: str, environment: Environment, record: DeploymentRecord) -> str:
    """For `argocd.sync: true`: ask Argo CD once to sync the merge commit; returns what
    happened, for the "Merged" comment ("" when not asked for)."""
    if not (environment.argocd_sync and environment.argocd_application):
        return ""
    if deps.records.has_flag(repo, record.number, ARGOCD_SYNC_FLAG):
        return "triggered"
    if deps.argocd is None:
        log.warning("%s: %s asks for an Argo CD sync but ARGOCD_SERVER is not configured",
                    repo, environment.name)  # fmt: skip
        return "unconfigured"
    try:
        deps.argocd.sync(environment.argocd_application, record.sha)
    except TransientError:
        raise
    except BotError as exc:
        log.warning("%s: Argo CD sync of %s refused: %s", repo, environment.name, exc)
        return "refused"
    deps.records.set_flag(repo, record.number, ARGOCD_SYNC_FLAG)
    return "triggered"


def _with(record: DeploymentRecord, **changes: Any) -> DeploymentRecord:
    return replace(record, **changes)


NO_DEPLOYMENTS = frozenset({403, 404})  # the App may not (yet) write deployments there


def post_status(deps: Deps, repo: str, deployment_id: int, state: str, **fields: Any) -> None:
    """A deployment status; an installation without the `deployments` permission (403/404)
    gets a warning in the log, not a failed job: the bot's own records go on."""
    try:
        deps.client.set_deployment_status(repo, deployment_id, state, **fields)
    except GitHubError as exc:
        if exc.status not in NO_DEPLOYMENTS:
            raise
        log.warning("%s: deployment %s not set %s: GitHub %s", repo, deployment_id, state,
                    exc.status)  # fmt: skip


def _log_url(deps: Deps, environment: Environment) -> str | None:
    if deps.argocd_url and environment.argocd_application:
        return f"{deps.argocd_url}/applications/{environment.argocd_application}"
    return None


def _set_state(
    deps: Deps,
    repo: str,
    environment: Environment,
    record: DeploymentRecord,
    state: str,
    health: EnvironmentHealth | None,
) -> None:
    description = {
        QUEUED: "merged; waiting for Argo CD to sync"
        if environment.argocd_application
        else "merged; no Argo CD application configured",
        "in_progress": "Argo CD is syncing",
        "success": "Argo CD: Synced and Healthy",
        "inactive": "replaced by a newer deployment",
    }.get(state, "")
    if state == "failure" and health is not None:
        phase = f", sync {health.operation_phase}" if health.operation_phase else ""
        description = f"Argo CD: {health.sync_status}/{health.health_status}{phase}"
    post_status(
        deps,
        repo,
        record.deployment_id,
        state,
        description=description,
        log_url=_log_url(deps, environment),
        # GitHub marks earlier successful non-production deployments inactive by itself;
        # production ones the bot retires explicitly (see `_retire_previous`)
        auto_inactive=None if state == "success" else False,
    )
    deps.records.set_deployment_state(repo, environment.name, record.sha, state, deps.clock())


def announce(
    deps: Deps,
    repo: str,
    record: DeploymentRecord | None,
    environment: Environment,
    config: Config,
    *,
    number: int,
    meta: Mapping[str, object],
    sha: str,
    approvers: tuple[str, ...] = (),
    sync: str = "",
    fresh: bool = False,
) -> None:
    """The PR's one "Merged" comment: what went where, what Argo CD says, what may follow.
    `sync`: what became of the Argo CD sync the bot was asked to trigger. `fresh`: the PR
    was opened by this job, so it holds no such comment yet."""
    health = deps.records.health(repo, environment.name)
    state = record.state if record is not None else ""
    superseded = state == "inactive"
    upsert_reply(
        deps.client,
        repo,
        number,
        MERGED_MARKER,
        "merged.md.j2",
        absent=fresh,
        meta=meta,
        environment=environment,
        merge_sha=sha,
        approvers=approvers,
        state=state if state in ("success", "failure") else "",
        health=health,
        superseded=superseded,
        deployment_id=record.deployment_id if record is not None else 0,
        sync=sync,
        next_environments=[
            e.name for e in config.environments if e.promote_from == environment.name
        ],
        soak_times={
            e.name: format_duration(e.healthy_for_s)
            for e in config.environments
            if e.promote_from == environment.name and e.healthy_for_s > 0
        },
    )


# --------------------------------------------------------------------------- Argo CD


def handle_argocd(deps: Deps, repo: str, config: Config, note: ArgoNotification) -> str:
    """Apply one Argo CD notification; returns what it did (for logs and tests):
    "unmapped", "stale", "duplicate" or "recorded"."""
    environment = config.environment_of_application(note.application)
    if environment is None:
        log.info("%s: no environment syncs through Argo CD application %s", repo, note.application)
        return "unmapped"
    records = deps.records
    current = records.health(repo, environment.name)
    record = records.deployment(repo, environment.name, note.revision) if note.commit else None
    older = False
    if current is not None and record is not None and current.revision != note.revision:
        live = records.deployment(repo, environment.name, current.revision)
        older = live is not None and live.created_at > record.created_at
    if is_stale(current, note, older_revision=older):
        log.info(
            "%s: ignoring Argo CD's %s/%s for %s: %s already runs a newer revision",
            repo, note.sync_status, note.health_status, note.revision[:12], environment.name,
        )  # fmt: skip
        return "stale"
    now = deps.clock()
    if record is not None:
        runs: tuple[str, str] | None = (record.model, record.version)
    elif current is not None and current.revision == note.revision:
        runs = (current.model, current.version) if current.version else None
    else:
        runs = _carried(deps, repo, config, environment, note.revision) if note.commit else None
    health = next_health(
        current, environment.name, note, ours=record is not None, now=now, runs=runs
    )
    if unchanged(current, health):
        return "duplicate"
    records.save_health(repo, health)
    if record is None:
        log.info(
            "%s: %s runs %s, which gitops-bot did not merge: recorded, never promoted from",
            repo, environment.name, note.revision[:12] or "no revision",
        )  # fmt: skip
        return "recorded"
    state = deployment_state(note)
    if environment.flagger_canary is not None:
        # a canary decides when the rollout succeeded: Argo CD's sync only starts it, and
        # the canary's verdict stands unless Argo CD sees the environment fail after it
        if state == "success":
            state = "in_progress"
        if record.state in ("success", "failure") and state != "failure":
            state = record.state
    if record.deployment_id and state != record.state and record.state != "inactive":
        _set_state(deps, repo, environment, record, state, health)
        record = _with(record, state=state)
        if state == "success":
            _retire_previous(deps, repo, environment, record)
    announce(
        deps, repo, record, environment, config, number=record.number, meta=record.meta,
        sha=record.sha, approvers=record.approvers,
    )  # fmt: skip
    return "recorded"


def _carried(
    deps: Deps, repo: str, config: Config, environment: Environment, revision: str
) -> tuple[str, str] | None:
    """(model, version) of the environment's newest bot deployment when `revision`, a
    commit the bot did not merge, still deploys that version there (a commit elsewhere in
    the repository: Argo CD reports the branch's newest commit); None otherwise."""
    newest = next(iter(deps.records.deployments(repo, environment.name, limit=1)), None)
    model = config.model(newest.model) if newest is not None else None
    if newest is None or model is None:
        return None
    files = sorted({f"{environment.path}/{rule.file}" for rule in model.set})
    snapshot: dict[str, bytes] = {}
    try:
        for path in files:
            content = deps.client.read_file(repo, path, revision)
            if content is not None:
                snapshot[path] = content
    except TransientError:
        raise
    except BotError as exc:  # not a commit of this repository, after all
        log.info("%s: cannot read %s at %s: %s", repo, environment.path, revision[:12], exc)
        return None
    deployed = read_deployed(snapshot, model, environment)
    return (model.name, newest.version) if deployed.version == newest.version else None


def _retire_previous(
    deps: Deps, repo: str, environment: Environment, live: DeploymentRecord
) -> None:
    """The deployments a healthy newer one replaces become `inactive` (GitHub does it for
    non-production environments through `auto_inactive`; production ones are told)."""
    for older in deps.records.deployments(repo, environment.name):
        if older.sha == live.sha or older.created_at > live.created_at:
            continue
        if older.state in ("inactive", ""):
            continue
        if environment.production or older.state != "success":
            post_status(
                deps,
                repo,
                older.deployment_id,
                "inactive",
                description=f"replaced by {live.sha[:7]}",
                auto_inactive=False,
            )
        deps.records.set_deployment_state(
            repo, environment.name, older.sha, "inactive", deps.clock()
        )
        announce(
            deps, repo, _with(older, state="inactive"), environment,
            _config_of(environment), number=older.number, meta=older.meta, sha=older.sha,
            approvers=older.approvers,
        )  # fmt: skip


def _config_of(environment: Environment) -> Config:
    """A config holding just `environment` (the "Merged" comment of a replaced deployment
    names no next step)."""
    return Config(version=1, environments=(environment,), models=())
