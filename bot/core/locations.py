"""Model locations a serving system can load: schemes per environment, and MLflow's own
`mlflow-artifacts:` indirection mapped onto the store behind it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from bot.core.ordering import UNSERVABLE, Refusal
from bot.core.types import Environment, Model

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def scheme_of(uri: str) -> str:
    """`s3://b/k` -> "s3"; "" for a bare path (a Windows drive letter is a path too)."""
    match = _SCHEME.match(uri)
    if match is None or re.match(r"^[A-Za-z]:[\\/]", uri):
        return ""
    return match.group(1).lower()


def writes_location(model: Model) -> bool:
    """Does a promotion of `model` write the storage location into the overlays?"""
    return any("{storage_uri}" in rule.value for rule in model.set)


def unservable(environment: Environment, model: Model, uri: str) -> Refusal | None:
    """A refusal when `uri` would be written where the environment cannot load it."""
    if not writes_location(model):
        return None
    scheme = scheme_of(uri)
    if scheme in environment.storage_schemes:
        return None
    allowed = ", ".join(f"{s}://" for s in environment.storage_schemes)
    what = f"`{scheme}:` location" if scheme else "local path"
    shown = uri if len(uri) <= 200 else uri[:200] + "…"
    return Refusal(
        UNSERVABLE,
        f"the model's location `{shown}` is a {what}, which {environment.name} cannot serve "
        f"(storage_schemes: {allowed})",
    )


def map_artifacts_uri(uri: str, destination: str) -> str:
    """`mlflow-artifacts:/1/models/m-x/artifacts` served by a tracking server whose
    `--artifacts-destination` is `destination` -> the same object in that store. Other
    URIs are returned unchanged; without a destination the URI stays as it is."""
    if scheme_of(uri) != "mlflow-artifacts" or not destination:
        return uri
    path = urlsplit(uri).path.lstrip("/")
    return f"{destination.rstrip('/')}/{path}"
