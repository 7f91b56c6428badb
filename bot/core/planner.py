"""Turn a promotion request into the exact file edits, branch, title and metadata of a PR."""

from __future__ import annotations

import difflib
import re
import string
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.core.errors import EditError, PlanError
from bot.core.overlays import apply_edits, safe_repo_path
from bot.core.report import pr_title
from bot.core.types import (
    Config,
    Environment,
    FieldEdit,
    FileChange,
    Model,
    PromotionRequest,
    Snapshot,
)

BRANCH_PREFIX = "gitops-bot/"
PLACEHOLDERS = frozenset({"storage_uri", "version", "model", "registry_name", "run_id"})


@dataclass(frozen=True)
class PlannedChange:
    """Everything about a promotion that can be decided without rendering."""

    request: PromotionRequest
    environment: Environment
    model: Model
    branch: str
    title: str
    changes: tuple[FileChange, ...]
    meta: Mapping[str, object]


def did_you_mean(word: str, choices: list[str]) -> str:
    prefixed = [c for c in choices if c.lower().startswith(word.lower())] if word else []
    close = prefixed[:1] or difflib.get_close_matches(word, choices, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{hint} Known: {', '.join(sorted(choices)) or 'none'}."


def resolve_target(config: Config, model_name: str, env_name: str) -> tuple[Model, Environment]:
    """Find the configured model and environment, or explain what exists."""
    model = config.model(model_name) or config.model_by_registry_name(model_name)
    if model is None:
        raise PlanError(
            f"Unknown model '{model_name}'."
            + did_you_mean(model_name, [m.name for m in config.models])
        )
    environment = config.environment(env_name)
    if environment is None:
        raise PlanError(
            f"Unknown environment '{env_name}'."
            + did_you_mean(env_name, [e.name for e in config.environments])
        )
    return model, environment


def validate_traffic(
    traffic: tuple[int, int] | None, model: Model, environment: Environment | None = None
) -> None:
    if traffic is None:
        return
    if model.traffic is None:
        raise PlanError(f"Model '{model.name}' has no `traffic` rule in .gitops-bot.yaml.")
    if environment is not None and not model.traffic.applies_to(environment.name):
        raise PlanError(
            f"Model '{model.name}' has no `traffic` rule for environment '{environment.name}' "
            f"(it applies to {', '.join(model.traffic.environments)})."
        )
    baseline, candidate = traffic
    if min(baseline, candidate) < 0 or baseline + candidate != 100:
        raise PlanError(
            f"Traffic weights must be two non-negative integers summing to 100, "
            f"got {baseline}/{candidate}."
        )


def branch_name(request: PromotionRequest) -> str:
    """Deterministic branch: a redelivered event finds and updates the same PR."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{request.model}-{request.version}").strip("-.")
    kind = "rollback/" if request.kind == "rollback" else ""
    return f"{BRANCH_PREFIX}{request.environment}/{kind}{slug}"


def _render_value(template: str, values: Mapping[str, str], where: str) -> str:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = fields - PLACEHOLDERS
    if unknown:
        raise PlanError(f"{where}: unknown placeholder(s) {sorted(unknown)} in '{template}'.")
    missing = sorted(f for f in fields if not values.get(f))
    if missing:
        raise PlanError(f"{where}: no value for {', '.join('{' + m + '}' for m in missing)}.")
    return template.format_map(values)


def field_edits(
    request: PromotionRequest, model: Model, environment: Environment
) -> list[FieldEdit]:
    """The configured `set` and `traffic` rules, made concrete for this request."""
    values = {
        "storage_uri": request.source_uri,
        "version": request.version,
        "model": model.name,
        "registry_name": model.registry_name,
        "run_id": request.run_id,
    }
    edits: list[FieldEdit] = []
    rules = [rule for rule in model.set if rule.applies_to(environment.name)]
    if not rules:
        scoped = sorted({name for rule in model.set for name in rule.environments})
        raise PlanError(
            f"Model '{model.name}' has no `set` rule for environment '{environment.name}' in "
            f".gitops-bot.yaml (its rules apply to {', '.join(scoped) or 'no environment'})."
        )
    for rule in rules:
        if "{storage_uri}" in rule.value and not request.source_uri:
            raise PlanError(
                f"Model '{model.name}' sets {rule.file} {rule.field} from {{storage_uri}}, "
                "but no source URI was given."
            )
        path = safe_repo_path(environment.path, rule.file)
        value = _render_value(rule.value, values, f"models[{model.name}].set {rule.field}")
        edits.append(FieldEdit(path=path, field=rule.field, value=value))
    if (
        request.traffic is not None
        and model.traffic is not None
        and model.traffic.applies_to(environment.name)
    ):
        path = safe_repo_path(environment.path, model.traffic.file)
        edits.append(FieldEdit(path, model.traffic.baseline, request.traffic[0]))
        edits.append(FieldEdit(path, model.traffic.candidate, request.traffic[1]))
    return edits


def apply_field_edits(snapshot: Snapshot, edits: list[FieldEdit]) -> tuple[FileChange, ...]:
    """Apply edits file by file; files whose bytes do not change are left out."""
    by_file: dict[str, list[tuple[str, str | int]]] = defaultdict(list)
    for edit in edits:
        by_file[edit.path].append((edit.field, edit.value))
    changes = []
    for path in sorted(by_file):
        before = snapshot.get(path)
        if before is None:
            raise EditError(path, "file does not exist in the repository")
        after, applied = apply_edits(path, before, by_file[path])
        if after == before:
            continue
        secret = is_secret_material(before, [field for field, _ in by_file[path]])
        if secret:
            applied = tuple(
                (field, None if old is None else REDACTED, REDACTED) for field, old, _ in applied
            )
        changes.append(FileChange(path, before, after, edits=applied, secret=secret))
    return tuple(changes)


REDACTED = "<redacted>"
_SECRET_KIND = re.compile(rb"^kind:[ \t]*[\"']?Secret[\"']?[ \t]*(#.*)?\r?$", re.MULTILINE)


def is_secret_material(content: bytes, fields: list[str]) -> bool:
    """Edits of a Secret manifest or of a secretGenerator must never be shown."""
    return any(f.startswith("secretGenerator") for f in fields) or bool(
        _SECRET_KIND.search(content)
    )


def plan_change(config: Config, snapshot: Snapshot, request: PromotionRequest) -> PlannedChange:
    """Validate the request against the config and compute the edits of its PR."""
    model, environment = resolve_target(config, request.model, request.environment)
    request = _canonical(request, model)
    validate_traffic(request.traffic, model, environment)
    changes = apply_field_edits(snapshot, field_edits(request, model, environment))
    meta: dict[str, object] = {
        "v": 1,
        "kind": request.kind,
        "model": model.name,
        "registry_name": model.registry_name,
        "version": request.version,
        "env": environment.name,
        "source_uri": request.source_uri,
        "run_id": request.run_id,
        "requester": request.requester,
        "trigger": request.trigger,
        "traffic": list(request.traffic) if request.traffic else None,
    }
    return PlannedChange(
        request=request,
        environment=environment,
        model=model,
        branch=branch_name(request),
        title=pr_title(request, model.registry_name),
        changes=changes,
        meta=meta,
    )


def _canonical(request: PromotionRequest, model: Model) -> PromotionRequest:
    """Requests may name the registry model; PRs always use the config name."""
    if request.model == model.name:
        return request
    return replace(request, model=model.name)


def source_diff(changes: tuple[FileChange, ...]) -> str:
    """A git-style unified diff of the edited source files."""
    out: list[str] = []
    for change in changes:
        before = change.before.decode("utf-8-sig", errors="replace").splitlines(keepends=True)
        after = change.after.decode("utf-8-sig", errors="replace").splitlines(keepends=True)
        out.append(f"diff --git a/{change.path} b/{change.path}\n")
        for line in difflib.unified_diff(before, after, f"a/{change.path}", f"b/{change.path}"):
            if change.secret and line[:1] in "+- " and not line.startswith(("+++", "---")):
                line = f"{line[0]}{REDACTED} (Secret material)\n"  # context lines too
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def request_from_meta(meta: Mapping[str, object], **overrides: Any) -> PromotionRequest:
    """The request a promotion PR was opened for (its hidden metadata), with `overrides`."""
    traffic = meta.get("traffic")
    pair = (
        (int(traffic[0]), int(traffic[1]))
        if isinstance(traffic, list) and len(traffic) == 2
        else None
    )
    request = PromotionRequest(
        model=str(meta.get("model") or ""),
        version=str(meta.get("version") or ""),
        environment=str(meta.get("env") or ""),
        source_uri=str(meta.get("source_uri") or ""),
        run_id=str(meta.get("run_id") or ""),
        traffic=pair,
        requester=str(meta.get("requester") or ""),
        trigger=str(meta.get("trigger") or ""),
        kind="rollback" if meta.get("kind") == "rollback" else "promote",
    )
    return replace(request, **overrides)
