"""Why a registry event is not promoted. Deliveries arrive late and out of order, and
environments must not go backwards because of it: versions of one registered model order
by their number, aliases by the registry's present assignment."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

STALE_VERSION = "stale_version"  # older than what the environment runs or is promoted to
STALE_ALIAS = "stale_alias"  # the alias has moved on since this assignment
UNSERVABLE = "unservable_location"  # a location the environment's serving cannot load
INVALID_VERSION = "invalid_version"  # not what the model's version_pattern allows
INVALID_SOURCE = "invalid_source"  # a location the bot never uses (script, local, control)
REFUSAL_KINDS = (STALE_VERSION, STALE_ALIAS, UNSERVABLE, INVALID_VERSION, INVALID_SOURCE)


def version_number(version: str) -> int | None:
    """MLflow's version as a number; None when it is not plain ASCII digits."""
    if not version or not version.isascii() or not version.isdigit():
        return None
    return int(version)


@dataclass(frozen=True)
class Refusal:
    """Why a registry event is not promoted: recorded and explained, never merged."""

    kind: str  # one of REFUSAL_KINDS
    reason: str


def downgrade(
    environment: str,
    version: str,
    *,
    deployed: str | None,
    pending: Iterable[str] = (),
) -> Refusal | None:
    """A refusal when `version` is older than what `environment` deploys or an open
    promotion already takes it to; None when it moves the environment forward (or sideways:
    the same version again is an idempotent re-delivery)."""
    wanted = version_number(version)
    if wanted is None:
        return None
    current = version_number(deployed) if deployed is not None else None
    if current is not None and wanted < current:
        return Refusal(
            STALE_VERSION,
            f"v{version} is older than v{deployed}, which {environment} already deploys",
        )
    newer = [v for v in pending if (n := version_number(v)) is not None and n > wanted]
    if newer:
        highest = max(newer, key=lambda v: version_number(v) or 0)
        return Refusal(
            STALE_VERSION,
            f"v{version} is older than v{highest}, which an open promotion already takes "
            f"to {environment}",
        )
    return None


def stale_alias(alias: str, version: str, current: str | None) -> Refusal | None:
    """The registry's alias now points elsewhere: this delivery is an older assignment."""
    if current is None or current == version:
        return None
    return Refusal(
        STALE_ALIAS,
        f"@{alias} was assigned to v{version}, but the registry now points it at v{current}",
    )
