"""Flagger event webhook bodies, shaped as Flagger sends them.

Source: fluxcd/flagger, pkg/apis/flagger/v1beta1 (`CanaryWebhookPayload`: `name`,
`namespace`, `phase`, `checksum`, `metadata`; the CanaryPhase values) and
pkg/controller/webhook.go (`CallEventWebhook`: metadata `eventMessage`, `eventType`
(Normal/Warning) and `timestamp`, Unix milliseconds as a string). The messages are those of
Flagger's scheduler (pkg/controller/scheduler.go) for a canary `fraud-detector`.
"""

from __future__ import annotations

import json
from typing import Any

TOKEN = "flagger-webhook-token-for-tests"
CANARY = "fraud-detector"
NAMESPACE = "fraud-detection"

# (phase, eventType, eventMessage) as Flagger emits them during one canary run
PROGRESSING = (
    "Progressing",
    "Normal",
    "New revision detected! Scaling up fraud-detector.fraud-detection",
)
ANALYSIS = ("Progressing", "Normal", "Starting canary analysis for fraud-detector.fraud-detection")
ADVANCE = ("Progressing", "Normal", "Advance fraud-detector.fraud-detection canary weight 10")
HALT = (
    "Progressing",
    "Warning",
    "Halt advancement no values found for metric request-success-rate probably "
    "fraud-detector.fraud-detection is not receiving traffic",
)
ROLLING_BACK = (
    "Failed",
    "Warning",
    "Rolling back fraud-detector.fraud-detection failed checks threshold reached 5",
)
FAILED = ("Failed", "Warning", "Canary failed! Scaling down fraud-detector.fraud-detection")
PROMOTING = (
    "Promoting",
    "Normal",
    "Copying fraud-detector.fraud-detection template spec to "
    "fraud-detector-primary.fraud-detection",
)
SUCCEEDED = (
    "Succeeded",
    "Normal",
    "Promotion completed! Scaling down fraud-detector.fraud-detection",
)


def event(
    step: tuple[str, str, str],
    timestamp_ms: int,
    *,
    name: str = CANARY,
    namespace: str = NAMESPACE,
    checksum: str = "7c9d5b8f6d",
) -> dict[str, Any]:
    phase, event_type, message = step
    return {
        "name": name,
        "namespace": namespace,
        "phase": phase,
        "checksum": checksum,
        "metadata": {
            "eventMessage": message,
            "eventType": event_type,
            "timestamp": str(timestamp_ms),
        },
    }


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()  # Go's json.Marshal: compact, fields in struct order
