"""After the merge: Argo CD's word on what runs where, deployment states and soak times.

Pure: parses the Argo CD Notifications body the README's template sends, decides a GitHub
deployment state from it, keeps per environment the revision Argo CD runs (ignoring what
arrives out of order), and says how long a version still has to soak upstream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from bot.core.events import PayloadError

# Argo CD's own vocabularies (gitops-engine health and sync codes, operation phases).
SYNC_STATUSES = frozenset({"Synced", "OutOfSync", "Unknown"})
HEALTH_STATUSES = frozenset(
    {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
)
OPERATION_PHASES = frozenset({"", "Running", "Terminating", "Failed", "Error", "Succeeded"})
FAILED_PHASES = frozenset({"Failed", "Error"})

_APPLICATION = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_REVISION = re.compile(r"[0-9a-f]{40}")  # a git commit: what the bot's deployments name
_FOREIGN_REVISION = re.compile(r"[0-9A-Za-z._/+-]{1,255}")  # Helm chart versions and the like
MAX_MESSAGE = 2000


@dataclass(frozen=True)
class ArgoNotification:
    """One Argo CD Notifications delivery (the README's template), validated."""

    KIND: ClassVar[str] = "argocd.notification"
    application: str
    revision: str
    sync_status: str
    health_status: str
    operation_phase: str = ""
    operation_message: str = ""
    finished_at: str = ""  # RFC 3339, "" when Argo CD has run no operation yet
    repo_url: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {
            "type": self.KIND,
            "application": self.application,
            "revision": self.revision,
            "sync_status": self.sync_status,
            "health_status": self.health_status,
            "operation_phase": self.operation_phase,
            "operation_message": self.operation_message,
            "finished_at": self.finished_at,
            "repo_url": self.repo_url,
        }

    @property
    def commit(self) -> bool:
        """Is the revision a git commit sha (the only kind the bot deploys)?"""
        return bool(_REVISION.fullmatch(self.revision))


NO_VALUE = "<no value>"  # what a Go template prints for a missing map key


def _field(payload: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = payload.get(key)
    if value is None:
        if not required:
            return ""
        raise PayloadError(f"{key}: missing")
    if not isinstance(value, str):
        raise PayloadError(f"{key}: expected a string")
    return "" if value == NO_VALUE else value


def parse_argocd(payload: Mapping[str, Any]) -> ArgoNotification:
    """The notification in `payload`, every field checked (PayloadError names the field)."""
    if payload.get("type") not in (None, ArgoNotification.KIND):
        raise PayloadError("type: not an Argo CD notification")
    application = _field(payload, "application")
    if not _APPLICATION.fullmatch(application):
        raise PayloadError("application: not an Argo CD application name")
    revision = _field(payload, "revision").strip().lower()
    if revision and not _FOREIGN_REVISION.fullmatch(revision):
        raise PayloadError("revision: not a git revision")
    sync_status = _field(payload, "sync_status")
    if sync_status not in SYNC_STATUSES:
        raise PayloadError(f"sync_status: one of {', '.join(sorted(SYNC_STATUSES))} expected")
    health_status = _field(payload, "health_status")
    if health_status not in HEALTH_STATUSES:
        raise PayloadError(f"health_status: one of {', '.join(sorted(HEALTH_STATUSES))} expected")
    phase = _field(payload, "operation_phase", required=False)
    if phase not in OPERATION_PHASES:
        raise PayloadError(
            f"operation_phase: one of {', '.join(sorted(p for p in OPERATION_PHASES if p))} "
            "or empty expected"
        )
    finished_at = _field(payload, "finished_at", required=False)
    if finished_at and parse_time(finished_at) is None:
        raise PayloadError("finished_at: not an RFC 3339 time")
    message = _field(payload, "operation_message", required=False)
    repo_url = _field(payload, "repo_url", required=False)
    return ArgoNotification(
        application=application,
        revision=revision,
        sync_status=sync_status,
        health_status=health_status,
        operation_phase=phase,
        operation_message=" ".join(message.split())[:MAX_MESSAGE],
        finished_at=finished_at,
        repo_url=repo_url[:500],
    )


def _at(node: Any, *path: str) -> Any:
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def notification_from_application(app: Mapping[str, Any]) -> ArgoNotification:
    """What the README's template would have sent for `app`, an Argo CD Application as
    `GET /api/v1/applications/{name}` returns it (PayloadError when it is not one)."""
    operation = _at(app, "status", "operationState")
    payload = {
        "application": _at(app, "metadata", "name"),
        "revision": _at(app, "status", "sync", "revision") or "",
        "sync_status": _at(app, "status", "sync", "status"),
        "health_status": _at(app, "status", "health", "status"),
        "operation_phase": _at(operation, "phase") or "",
        "operation_message": _at(operation, "message") or "",
        "finished_at": _at(operation, "finishedAt") or "",
        "repo_url": _at(app, "spec", "source", "repoURL") or "",
    }
    return parse_argocd(payload)


def parse_time(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (`2026-12-02T09:30:00Z`), or None."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def deployment_state(note: ArgoNotification) -> str:
    """The GitHub deployment state a notification puts the deployment of its revision in."""
    if note.operation_phase in FAILED_PHASES or note.health_status == "Degraded":
        return "failure"
    if note.sync_status == "Synced" and note.health_status == "Healthy":
        return "success"
    return "in_progress"


@dataclass(frozen=True)
class EnvironmentHealth:
    """What Argo CD last said about an environment (as the bot recorded it)."""

    environment: str
    application: str
    revision: str
    sync_status: str
    health_status: str
    operation_phase: str = ""
    message: str = ""
    finished_at: str = ""
    ours: bool = False  # the revision is a merge commit of a promotion the bot merged
    healthy_since: float | None = None  # Synced+Healthy on this content since (bot clock)
    observed_at: float = 0.0
    # the model version of the bot's deployment this revision runs: its merge commit, or a
    # later commit that leaves the environment deploying it ("" when neither)
    model: str = ""
    version: str = ""

    @property
    def healthy(self) -> bool:
        return self.healthy_since is not None


def is_stale(
    current: EnvironmentHealth | None, note: ArgoNotification, *, older_revision: bool
) -> bool:
    """Does `note` come after what it describes was overtaken? (`older_revision`: the bot
    knows the note's revision as a deployment older than the current revision's.)"""
    if current is None:
        return False
    if note.revision != current.revision and older_revision:
        return True
    new, old = parse_time(note.finished_at), parse_time(current.finished_at)
    return new is not None and old is not None and new < old


def next_health(
    current: EnvironmentHealth | None,
    environment: str,
    note: ArgoNotification,
    *,
    ours: bool,
    now: float,
    runs: tuple[str, str] | None = None,
) -> EnvironmentHealth:
    """The environment's record after `note` (already known not to be stale). `runs`:
    (model, version) of the bot's deployment the revision runs. A new revision that runs
    the same deployment (a commit elsewhere in the repository) keeps the healthy time."""
    healthy = deployment_state(note) == "success"
    same = current is not None and (
        current.revision == note.revision
        or (runs is not None and (current.model, current.version) == runs)
    )
    since: float | None = None
    if healthy:
        kept = current.healthy_since if same and current is not None else None
        since = kept if kept is not None else now
    record = EnvironmentHealth(
        environment=environment,
        application=note.application,
        revision=note.revision,
        sync_status=note.sync_status,
        health_status=note.health_status,
        operation_phase=note.operation_phase,
        message=note.operation_message,
        finished_at=note.finished_at or (current.finished_at if same and current else ""),
        ours=ours,
        healthy_since=since,
        observed_at=now,
        model=runs[0] if runs else "",
        version=runs[1] if runs else "",
    )
    return record


def unchanged(current: EnvironmentHealth | None, new: EnvironmentHealth) -> bool:
    """A duplicate: nothing but the time it was observed differs."""
    return current is not None and replace(current, observed_at=new.observed_at) == new


def health_state(health: EnvironmentHealth) -> str:
    """The deployment state of the revision `health` describes (as `deployment_state`)."""
    note = ArgoNotification(
        health.application,
        health.revision,
        health.sync_status,
        health.health_status,
        operation_phase=health.operation_phase,
    )
    return deployment_state(note)


def format_duration(seconds: float) -> str:
    """`1h 5m`, `12m 30s`, `45s`: how long, for people."""
    total = max(0, int(seconds + 0.999))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


@dataclass(frozen=True)
class Soak:
    """Whether `version` soaked long enough upstream, and if not, why and for how long."""

    done: bool
    reason: str = ""
    remaining_s: float | None = None  # None: the clock has not started


def soak_status(
    health: EnvironmentHealth | None,
    *,
    upstream: str,
    model: str,
    version: str,
    revision_version: tuple[str, str] | None,
    healthy_for_s: float,
    now: float,
) -> Soak:
    """Has `upstream` run `model` v`version` Synced and Healthy for `healthy_for_s`?

    `revision_version`: (model, version) of the bot's deployment the revision Argo CD runs
    carries, None when it carries none."""
    if healthy_for_s <= 0:
        return Soak(True)
    wanted = format_duration(healthy_for_s)
    if health is None:
        return Soak(False, f"Argo CD has not reported on {upstream} yet (it must run "
                           f"v{version} Synced and Healthy for {wanted})")  # fmt: skip
    if revision_version is None:
        return Soak(
            False,
            f"{upstream} runs {health.revision[:12] or 'no revision'}, which gitops-bot did not "
            "merge and which does not deploy a version it merged there: only the bot's own "
            "deployments count towards the soak time",
        )
    if revision_version != (model, version):
        live_model, live_version = revision_version
        shown = f"v{live_version}" if live_model == model else f"{live_model} v{live_version}"
        return Soak(False, f"{upstream} runs {shown}, not v{version}")
    if health.healthy_since is None:
        return Soak(
            False,
            f"{upstream} runs v{version} but Argo CD reports it {health.sync_status}/"
            f"{health.health_status}, not Synced/Healthy",
        )
    remaining = health.healthy_since + healthy_for_s - now
    if remaining > 0:
        return Soak(
            False,
            f"v{version} has been healthy in {upstream} for "
            f"{format_duration(now - health.healthy_since)}; the soak time is {wanted}, "
            f"{format_duration(remaining)} remain",
            remaining_s=remaining,
        )
    return Soak(True)
