"""Semantic and unified diff of two renders of one overlay, with Secrets redacted first."""

from __future__ import annotations

import difflib
import functools
import hashlib
import hmac
import io
import json
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Literal

import dictdiffer
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bot.core.graph import MISSING_OVERLAY_ERROR
from bot.core.types import EnvironmentDiff, FieldChange, RenderResult, ResourceChange

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
WITHHELD = "# rendered output is not valid YAML; withheld so nothing secret can leak\n"

Doc = dict[str, object]


@functools.cache
def _process_key() -> bytes:
    # Random per process: markers compare equal within one run, never across runs, and a
    # low-entropy secret cannot be recovered by hashing guesses.
    return secrets.token_bytes(32)


def redaction_marker(value: object) -> str:
    """Keyed, irreversible marker for a secret value; equal values give equal markers."""
    raw = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    digest = hmac.new(_process_key(), raw.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"<redacted sha256:{digest[:12]}>"


def redact_resource(doc: object) -> object:
    """A copy of one resource with Secret values and last-applied annotations redacted."""
    if not isinstance(doc, dict):
        return doc
    out = dict(doc)
    if out.get("kind") == "Secret":
        for key in ("data", "stringData"):
            values = out.get(key)
            if isinstance(values, dict):
                out[key] = {k: redaction_marker(v) for k, v in values.items()}
            elif values is not None:
                out[key] = redaction_marker(values)
    metadata = out.get("metadata")
    if isinstance(metadata, dict):
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            out["metadata"] = {
                **metadata,
                "annotations": {
                    **annotations,
                    LAST_APPLIED: redaction_marker(annotations[LAST_APPLIED]),
                },
            }
    return out


def _load(text: str) -> list[object]:
    return [d for d in YAML(typ="safe").load_all(text) if d is not None]


def _dump(doc: object) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    stream = io.StringIO()
    yaml.dump(_sorted(doc), stream)
    return stream.getvalue()


def _sorted(value: object) -> object:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


# Kustomize's generated-name suffix: 10 characters of a content hash, in an alphabet without
# vowels (api/hasher: "bcdfghjklmnpqrstvwxz2456789").
_GENERATED_NAME = re.compile(r"^(.+)-([bcdfghjklmnpqrstvwxz2456789]{10})$")


def generated_secret_names(docs: list[object]) -> dict[str, str]:
    """{name: redacted name} of Secrets whose generated suffix hashes their content: the
    suffix is a fingerprint of the secret, so it gets the same keyed marker as a value."""
    names: dict[str, str] = {}
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != "Secret":
            continue
        metadata = doc.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        match = _GENERATED_NAME.match(name) if isinstance(name, str) else None
        if match:
            names[name] = f"{match.group(1)}-{redaction_marker(match.group(2))}"  # type: ignore[index]
    return names


def _rename(value: object, names: Mapping[str, str]) -> object:
    """Every string equal to a generated Secret name (its references too) replaced."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, dict):
        return {k: _rename(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_rename(v, names) for v in value]
    return value


def redact_rendered(text: str) -> str:
    """Rendered multi-document YAML, normalised, with every secret value redacted (and the
    content-hash suffixes of generated Secret names, wherever they are referenced)."""
    try:
        docs = _load(text)
    except (YAMLError, ValueError):
        return WITHHELD
    return "---\n".join(_dump(d) for d in redact_documents(docs))


def redact_documents(docs: list[object]) -> list[object]:
    """Every resource of a render redacted: Secret values, last-applied annotations, and
    generated Secret name suffixes wherever the name is referenced."""
    names = generated_secret_names(docs)
    if names:
        docs = [_rename(d, names) for d in docs]
    return [redact_resource(d) for d in docs]


def resource_key(doc: object) -> str:
    """`Kind/namespace/name`, or `Kind/name` for resources without a namespace."""
    if not isinstance(doc, dict):
        return f"?/{type(doc).__name__}"
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    kind, ns, name = (
        str(x) if x is not None else ""
        for x in (doc.get("kind", "?"), meta.get("namespace"), meta.get("name", "?"))
    )
    return f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"


def _sort_key(key: str) -> tuple[str, str, str, str]:
    parts = key.split(" ", 1)[0].split("/")
    kind = parts[0]
    ns, name = (parts[1], "/".join(parts[2:])) if len(parts) > 2 else ("", parts[-1])
    return (kind, ns, name, key)


def _index(docs: list[object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for doc in docs:
        key = resource_key(doc)
        if key in out:
            api = doc.get("apiVersion") if isinstance(doc, dict) else None
            key = f"{key} ({api})" if api else key
            n = 2
            base_key = key
            while key in out:
                key = f"{base_key} #{n}"
                n += 1
        out[key] = doc
    return out


def _by_name(value: object) -> object:
    """Lists of uniquely named mappings become mappings keyed `[name=x]` (order-insensitive)."""
    if isinstance(value, dict):
        return {k: _by_name(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_by_name(v) for v in value]
        names = [i.get("name") for i in items if isinstance(i, dict)]
        if (
            items
            and len(names) == len(items)
            and all(isinstance(n, str) for n in names)
            and len(set(names)) == len(names)
        ):
            return {f"[name={n}]": i for n, i in zip(names, items, strict=True)}
        return items
    return value


def _path(parts: list[object]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith("[name=") and part.endswith("]"):
            out += part
        else:
            text = str(part)
            if text and all(c.isalnum() or c in "_-" for c in text):
                out += f".{text}" if out else text
            else:
                out += f"[{json.dumps(text)}]"
    return out


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    return str(value)


def _leaves(parts: list[object], value: object) -> Iterator[tuple[list[object], object]]:
    if isinstance(value, dict) and value:
        for k in sorted(value, key=str):
            yield from _leaves([*parts, k], value[k])
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaves([*parts, i], v)
    else:
        yield parts, value


def field_changes(old: object, new: object) -> tuple[FieldChange, ...]:
    """Leaf-level changes between two resources, with dotted paths."""
    changes: list[FieldChange] = []
    for action, where, detail in dictdiffer.diff(_by_name(old), _by_name(new), dot_notation=False):
        base = list(where) if isinstance(where, list | tuple) else [where]
        if action == "change":
            before, after = detail
            if isinstance(before, dict | list) or isinstance(after, dict | list):
                # type change, e.g. scalar -> mapping: show both sides' leaves
                for p, v in _leaves(base, before):
                    changes.append(FieldChange(_path(p), _scalar(v), None))
                for p, v in _leaves(base, after):
                    changes.append(FieldChange(_path(p), None, _scalar(v)))
            else:
                changes.append(FieldChange(_path(base), _scalar(before), _scalar(after)))
        else:
            for key, value in detail:
                for p, v in _leaves([*base, key], value):
                    if action == "add":
                        changes.append(FieldChange(_path(p), None, _scalar(v)))
                    else:
                        changes.append(FieldChange(_path(p), _scalar(v), None))
    changes.sort(key=lambda c: c.path)
    return tuple(changes)


def _ok_empty(result: RenderResult) -> bool:
    return not result.ok and result.error == MISSING_OVERLAY_ERROR


def _redacted(result: RenderResult) -> tuple[RenderResult, dict[str, object] | None]:
    """The result with redacted output, and its resources (None when unusable)."""
    if _ok_empty(result):
        return result, {}
    if not result.ok:
        return replace(result, output=""), None
    try:
        docs = redact_documents(_load(result.output))
    except (YAMLError, ValueError) as exc:
        error = f"rendered output is not valid YAML: {' '.join(str(exc).split())}"
        return RenderResult(overlay=result.overlay, ok=False, error=error), None
    text = "---\n".join(_dump(d) for d in docs)
    return replace(result, output=text), _index(docs)


def _unified(overlay: str, base: Mapping[str, object], head: Mapping[str, object]) -> str:
    lines = [f"--- base/{overlay}\n", f"+++ head/{overlay}\n"]
    for key in sorted(set(base) | set(head), key=_sort_key):
        old = _dump(base[key]).splitlines(keepends=True) if key in base else []
        new = _dump(head[key]).splitlines(keepends=True) if key in head else []
        if old == new:
            continue
        for line in list(difflib.unified_diff(old, new, n=3))[2:]:
            if line.startswith("@@"):
                line = f"{line.rstrip()} {key}\n"
            lines.append(line if line.endswith("\n") else line + "\n")
    return "".join(lines) if len(lines) > 2 else ""


def diff_environment(
    environment: str, overlay: str, base: RenderResult, head: RenderResult
) -> EnvironmentDiff:
    """Compare two renders of an overlay. Secrets are redacted before anything else."""
    base_r, base_docs = _redacted(base)
    head_r, head_docs = _redacted(head)
    if head_docs is None:
        return EnvironmentDiff(environment, overlay, base_r, head_r)
    before = base_docs if base_docs is not None else {}
    changes: list[ResourceChange] = []
    for key in sorted(set(before) | set(head_docs), key=_sort_key):
        status: Literal["added", "removed", "changed"]
        fields: tuple[FieldChange, ...] = ()
        if key not in before:
            status = "added"
        elif key not in head_docs:
            status = "removed"
        else:
            fields = field_changes(before[key], head_docs[key])
            if not fields:
                continue
            status = "changed"
        changes.append(ResourceChange(resource=key, status=status, fields=fields))
    return EnvironmentDiff(
        environment=environment,
        overlay=overlay,
        base=base_r,
        head=head_r,
        changes=tuple(changes),
        unified_diff=_unified(overlay, before, head_docs),
    )


def resource_list(diff: EnvironmentDiff) -> list[str]:
    """One line per changed resource, for when the full diff is too large to show."""
    out = []
    for change in diff.changes:
        detail = f" ({len(change.fields)} fields)" if change.status == "changed" else ""
        out.append(f"{change.status} {change.resource}{detail}")
    return out
