"""Semantic and unified diff of two renders of one overlay, with Secrets redacted first."""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Literal

import dictdiffer
from yaml import YAMLError

from bot.core.graph import MISSING_OVERLAY_ERROR
from bot.core.rendered import RenderedStream, Resource, dump_document
from bot.core.types import EnvironmentDiff, FieldChange, RenderResult, ResourceChange


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


def _index(resources: list[Resource]) -> dict[str, Resource]:
    out: dict[str, Resource] = {}
    for resource in resources:
        doc = resource.value
        key = resource_key(doc)
        if key in out:
            api = doc.get("apiVersion") if isinstance(doc, dict) else None
            key = f"{key} ({api})" if api else key
            n = 2
            base_key = key
            while key in out:
                key = f"{base_key} #{n}"
                n += 1
        out[key] = resource
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


TOO_LARGE = "too large to render"


class BudgetExceeded(Exception):
    """The job's render budget ran out while this environment was being diffed."""


Deadline = Callable[[], None]  # raises BudgetExceeded once the job's time is up


def _no_deadline() -> None:
    return None


def too_large(environment: str, overlay: str, base: RenderResult, why: str) -> EnvironmentDiff:
    """The result for an environment whose render or diff exceeded the job's budget: a
    failed head render with the reason, so nothing merges on a diff nobody could see."""
    head = RenderResult(overlay, ok=False, error=f"{TOO_LARGE}: {why}")
    return EnvironmentDiff(environment, overlay, replace(base, output=""), head)


def _stream(result: RenderResult) -> tuple[RenderResult, RenderedStream | None]:
    """The result with redacted output, and its documents (None when unusable)."""
    if _ok_empty(result):
        return result, RenderedStream("")
    if not result.ok:
        return replace(result, output=""), None
    try:
        stream = RenderedStream(result.output)
        return replace(result, output=stream.redacted_text()), stream
    except (YAMLError, ValueError, RecursionError) as exc:
        return _invalid(result, exc), None


def _invalid(result: RenderResult, exc: BaseException) -> RenderResult:
    error = f"rendered output is not valid YAML: {' '.join(str(exc).split())}"
    return RenderResult(overlay=result.overlay, ok=False, error=error[:2000])


def _differing(
    stream: RenderedStream, common: Counter[str], check: Deadline = _no_deadline
) -> dict[str, Resource]:
    """The resources of the chunks the other side does not have word for word: identical
    documents are the bulk of a promotion's render and never need parsing."""
    left = Counter(common)
    resources = []
    for chunk in stream.chunks:
        if left[chunk]:
            left[chunk] -= 1
        else:
            check()
            resources.extend(stream.resources(chunk))
    return _index(resources)


# Above this many differing lines (after the common head and tail) a resource's hunk is
# shown whole instead of line-matched: difflib is quadratic on such inputs.
LINE_MATCH_LIMIT = 5000


def _lines(resource: Resource | None, other: Resource | None) -> list[str]:
    if resource is None:
        return []
    if other is not None and other.rewritten and not resource.rewritten:
        # the other side was re-dumped (sorted keys): compare like with like
        return dump_document(resource.value).splitlines(keepends=True)
    return resource.text.splitlines(keepends=True)


def _hunks(old: list[str], new: list[str], key: str) -> list[str]:
    """Unified-diff hunks of one resource, in time linear in its size when it is large."""
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    if max(len(old), len(new)) - head - tail <= LINE_MATCH_LIMIT:
        body = list(difflib.unified_diff(old, new, n=3))[2:]
    else:
        start, old_end, new_end = (
            max(0, head - 3),
            len(old) - max(0, tail - 3),
            len(new) - max(0, tail - 3),
        )
        body = [
            f"@@ -{start + 1},{old_end - start} +{start + 1},{new_end - start} @@\n",
            *(" " + line for line in old[start:head]),
            *("-" + line for line in old[head : len(old) - tail]),
            *("+" + line for line in new[head : len(new) - tail]),
            *(" " + line for line in old[len(old) - tail : old_end]),
        ]
    out = []
    for line in body:
        if line.startswith("@@"):
            line = f"{line.rstrip()} {key}\n"
        out.append(line if line.endswith("\n") else line + "\n")
    return out


def _unified(
    overlay: str,
    base: Mapping[str, Resource],
    head: Mapping[str, Resource],
    check: Deadline = _no_deadline,
) -> str:
    lines = [f"--- base/{overlay}\n", f"+++ head/{overlay}\n"]
    for key in sorted(set(base) | set(head), key=_sort_key):
        check()
        old_r, new_r = base.get(key), head.get(key)
        old, new = _lines(old_r, new_r), _lines(new_r, old_r)
        if old != new:
            lines.extend(_hunks(old, new, key))
    return "".join(lines) if len(lines) > 2 else ""


def diff_environment(
    environment: str,
    overlay: str,
    base: RenderResult,
    head: RenderResult,
    check: Deadline = _no_deadline,
) -> EnvironmentDiff:
    """Compare two renders of an overlay. Secrets are redacted before anything else.
    `check` is called between units of work and may raise BudgetExceeded."""
    base_r, base_stream = _stream(base)
    head_r, head_stream = _stream(head)
    if head_stream is None:
        return EnvironmentDiff(environment, overlay, base_r, head_r)
    base_stream = base_stream or RenderedStream("")
    common = Counter(base_stream.chunks) & Counter(head_stream.chunks)
    try:
        head_docs = _differing(head_stream, common, check)
    except (YAMLError, ValueError, RecursionError) as exc:
        return EnvironmentDiff(environment, overlay, base_r, _invalid(head, exc))
    try:
        before = _differing(base_stream, common, check)
    except (YAMLError, ValueError, RecursionError) as exc:
        base_r, before = _invalid(base, exc), {}
    changes: list[ResourceChange] = []
    for key in sorted(set(before) | set(head_docs), key=_sort_key):
        status: Literal["added", "removed", "changed"]
        fields: tuple[FieldChange, ...] = ()
        if key not in before:
            status = "added"
        elif key not in head_docs:
            status = "removed"
        else:
            if before[key].text == head_docs[key].text:
                continue
            check()
            fields = field_changes(before[key].value, head_docs[key].value)
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
        unified_diff=_unified(overlay, before, head_docs, check),
    )


def resource_list(diff: EnvironmentDiff) -> list[str]:
    """One line per changed resource, for when the full diff is too large to show."""
    out = []
    for change in diff.changes:
        detail = f" ({len(change.fields)} fields)" if change.status == "changed" else ""
        out.append(f"{change.status} {change.resource}{detail}")
    return out
