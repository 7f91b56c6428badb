"""Flagger's event webhook: the canary's phases, what they mean for a GitHub deployment.

The body is Flagger's `CanaryWebhookPayload` (pkg/apis/flagger/v1beta1: name, namespace,
phase, checksum, metadata) as its event webhook sends it (pkg/controller/webhook.go,
`CallEventWebhook`: metadata `eventMessage`, `eventType`, `timestamp` in Unix milliseconds).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from bot.core.events import PayloadError

# Flagger's CanaryPhase values (pkg/apis/flagger/v1beta1/status.go); "" before the first.
PHASES = (
    "Initializing",
    "Initialized",
    "Waiting",
    "Progressing",
    "WaitingPromotion",
    "Promoting",
    "Finalising",
    "Succeeded",
    "Failed",
    "Terminating",
    "Terminated",
)
ROLLING = frozenset({"Waiting", "Progressing", "WaitingPromotion", "Promoting", "Finalising"})
EVENT_TYPES = frozenset({"Normal", "Warning"})
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_CHECKSUM = re.compile(r"[0-9A-Za-z]{0,128}")
_MILLIS = re.compile(r"[0-9]{1,15}")
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class CanaryEvent:
    """One event Flagger sent about a canary, validated."""

    KIND: ClassVar[str] = "flagger.event"
    name: str
    namespace: str
    phase: str
    checksum: str
    message: str
    event_type: str
    timestamp_ms: int

    def to_payload(self) -> dict[str, Any]:
        return {
            "type": self.KIND,
            "name": self.name,
            "namespace": self.namespace,
            "phase": self.phase,
            "checksum": self.checksum,
            "metadata": {
                "eventMessage": self.message,
                "eventType": self.event_type,
                "timestamp": str(self.timestamp_ms),
            },
        }

    @property
    def when(self) -> str:
        """The event's time, UTC, to the second."""
        moment = datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S")


def _string(parent: Mapping[str, Any], key: str, where: str = "") -> str:
    value = parent.get(key)
    if not isinstance(value, str):
        what = "missing" if key not in parent else "expected a string"
        raise PayloadError(f"{where}{key}: {what}")
    return value


def parse_flagger(payload: Mapping[str, Any]) -> CanaryEvent:
    """The event in `payload` (PayloadError names the field that is wrong)."""
    if payload.get("type") not in (None, CanaryEvent.KIND):
        raise PayloadError("type: not a Flagger event")
    name = _string(payload, "name")
    if not _NAME.fullmatch(name):
        raise PayloadError("name: not a Kubernetes object name")
    namespace = _string(payload, "namespace")
    if not _NAMESPACE.fullmatch(namespace):
        raise PayloadError("namespace: not a Kubernetes namespace")
    phase = payload.get("phase", "")
    if not isinstance(phase, str) or phase not in ("", *PHASES):
        raise PayloadError(f"phase: one of {', '.join(PHASES)} expected")
    checksum = payload.get("checksum", "")
    if not isinstance(checksum, str) or not _CHECKSUM.fullmatch(checksum):
        raise PayloadError("checksum: expected Flagger's hash of the canary's spec")
    metadata = payload.get("metadata")
    if not isinstance(metadata, Mapping):
        raise PayloadError(
            "metadata: missing (point Flagger's event webhook here: it sends eventMessage, "
            "eventType and timestamp)"
        )
    message = _string(metadata, "eventMessage", "metadata.")
    event_type = _string(metadata, "eventType", "metadata.")
    if event_type not in EVENT_TYPES:
        raise PayloadError("metadata.eventType: Normal or Warning expected")
    raw_time = _string(metadata, "timestamp", "metadata.")
    if not _MILLIS.fullmatch(raw_time):  # ASCII digits: str.isdigit() takes "²" too
        raise PayloadError("metadata.timestamp: Unix milliseconds expected")
    return CanaryEvent(
        name=name,
        namespace=namespace,
        phase=phase or "Initializing",
        checksum=checksum,
        message=" ".join(message.split())[:MAX_MESSAGE],
        event_type=event_type,
        timestamp_ms=int(raw_time),
    )


def canary_state(phase: str) -> str | None:
    """The deployment state a canary phase means (None: it says nothing about it)."""
    if phase == "Succeeded":
        return "success"
    if phase == "Failed":
        return "failure"
    if phase in ROLLING:
        return "in_progress"
    return None


def confirm_promotion(
    *,
    environment: str,
    version: str,
    deployment_state: str,
    running_version: str,
    sync_status: str,
    health_status: str,
) -> tuple[bool, str]:
    """Flagger's confirm-promotion question for a canary rolling out the bot's deployment
    of `version` in `environment`: (yes?, why). Yes when that deployment is still current
    (not failed or replaced) and Argo CD reports the environment Synced on it and not
    Degraded (a canary under analysis is Progressing, never yet Healthy)."""
    if deployment_state in ("failure", "inactive"):
        return False, f"the deployment of v{version} to {environment} is {deployment_state}"
    if running_version != version:
        running = (
            f"v{running_version}" if running_version else "a revision gitops-bot did not merge"
        )
        return False, f"Argo CD reports {environment} running {running}, not v{version}"
    if sync_status != "Synced":
        return False, f"Argo CD reports {environment} {sync_status}, not Synced"
    if health_status == "Degraded":
        return False, f"Argo CD reports {environment} Degraded"
    return True, f"v{version} is merged and Argo CD reports {environment} Synced/{health_status}"


def latest(events: Iterable[CanaryEvent]) -> CanaryEvent | None:
    """The newest event by Flagger's own clock (deliveries may come in any order)."""
    return max(events, key=lambda e: (e.timestamp_ms, PHASES.index(e.phase)), default=None)
