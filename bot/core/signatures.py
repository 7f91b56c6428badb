"""Webhook signature checks for GitHub, MLflow (3.3+) and Databricks registry deliveries."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Literal

from bot.core.errors import BotError

SignatureProblem = Literal["missing", "malformed", "mismatch", "expired", "future"]

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")

GITHUB_HEADER = "X-Hub-Signature-256"
MLFLOW_SIGNATURE_HEADER = "X-MLflow-Signature"
MLFLOW_TIMESTAMP_HEADER = "X-MLflow-Timestamp"
MLFLOW_DELIVERY_HEADER = "X-MLflow-Delivery-Id"
DATABRICKS_HEADER = "X-Databricks-Signature"


class SignatureError(BotError):
    """A delivery failed authentication. The message never contains a secret or a digest."""

    def __init__(self, problem: SignatureProblem, reason: str) -> None:
        self.problem: SignatureProblem = problem
        self.reason = reason
        super().__init__(reason)


def _require_secret(secret: bytes) -> None:
    if not secret:
        # A programming/configuration error, not a bad delivery: never accept with an empty key.
        raise ValueError("webhook secret must not be empty")


def _hex_matches(secret: bytes, message: bytes, given_hex: str) -> bool:
    expected = hmac.new(secret, message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given_hex.lower())


def verify_github(secret: bytes, body: bytes, header: str | None) -> None:
    """Check `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`."""
    _require_secret(secret)
    if header is None or not header.strip():
        raise SignatureError("missing", f"missing {GITHUB_HEADER} header")
    algorithm, sep, digest = header.strip().partition("=")
    if not sep or algorithm != "sha256":
        raise SignatureError(
            "malformed", f"malformed {GITHUB_HEADER} header: expected sha256=<hex>"
        )
    if not _HEX64.fullmatch(digest):
        raise SignatureError(
            "malformed", f"malformed {GITHUB_HEADER} header: digest is not 64 hex characters"
        )
    if not _hex_matches(secret, body, digest):
        raise SignatureError("mismatch", f"{GITHUB_HEADER} does not match the request body")


def verify_databricks(secret: bytes, body: bytes, header: str | None) -> None:
    """Check `X-Databricks-Signature: <hex HMAC-SHA256 of the raw body>`."""
    _require_secret(secret)
    if header is None or not header.strip():
        raise SignatureError("missing", f"missing {DATABRICKS_HEADER} header")
    digest = header.strip()
    if not _HEX64.fullmatch(digest):
        raise SignatureError(
            "malformed", f"malformed {DATABRICKS_HEADER} header: expected 64 hex characters"
        )
    if not _hex_matches(secret, body, digest):
        raise SignatureError("mismatch", f"{DATABRICKS_HEADER} does not match the request body")


def _mlflow_candidates(header: str) -> list[bytes]:
    """Decode every `v1,<base64>` entry; MLflow sends one, Standard Webhooks allows several."""
    candidates: list[bytes] = []
    for entry in header.split():
        version, sep, encoded = entry.partition(",")
        if not sep or version != "v1":
            continue  # unknown signature schemes are skipped, as Standard Webhooks specifies
        try:
            candidates.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return candidates


def verify_mlflow(
    secret: bytes,
    delivery_id: str | None,
    timestamp: str | None,
    body: bytes,
    signature_header: str | None,
    *,
    now: float,
    tolerance_s: float = 300,
) -> None:
    """Check an MLflow webhook delivery.

    MLflow (mlflow/webhooks/delivery.py) signs `f"{delivery_id}.{timestamp}.{payload}"` with
    HMAC-SHA256 keyed by the webhook secret and sends `X-MLflow-Signature: v1,<base64>`;
    the timestamp header is unix seconds. The signature is checked before the time window so
    that only authentic deliveries learn that they are stale.
    """
    _require_secret(secret)
    if signature_header is None or not signature_header.strip():
        raise SignatureError("missing", f"missing {MLFLOW_SIGNATURE_HEADER} header")
    if delivery_id is None or not delivery_id.strip():
        raise SignatureError("missing", f"missing {MLFLOW_DELIVERY_HEADER} header")
    if timestamp is None or not timestamp.strip():
        raise SignatureError("missing", f"missing {MLFLOW_TIMESTAMP_HEADER} header")
    if not _UNIX_SECONDS.fullmatch(timestamp):
        raise SignatureError(
            "malformed", f"malformed {MLFLOW_TIMESTAMP_HEADER} header: expected unix seconds"
        )
    candidates = _mlflow_candidates(signature_header)
    if not candidates:
        raise SignatureError(
            "malformed", f"malformed {MLFLOW_SIGNATURE_HEADER} header: expected v1,<base64>"
        )
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    expected = hmac.new(secret, signed, hashlib.sha256).digest()
    # Compare against every candidate (no early exit) so timing reveals nothing about which.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError(
            "mismatch",
            f"{MLFLOW_SIGNATURE_HEADER} does not match the delivery id, timestamp and body",
        )
    age = now - int(timestamp)
    if age > tolerance_s:
        raise SignatureError(
            "expired",
            f"{MLFLOW_TIMESTAMP_HEADER} is {int(age)} s old, "
            f"outside the {int(tolerance_s)} s window",
        )
    if -age > tolerance_s:
        raise SignatureError(
            "future",
            f"{MLFLOW_TIMESTAMP_HEADER} is {int(-age)} s in the future, "
            f"outside the {int(tolerance_s)} s window",
        )
