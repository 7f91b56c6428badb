"""Why a promotion leaves its target environment's render unchanged, and the duplicate keys
in kustomizations that silently shadow entries.

Kustomize keeps the last of duplicate mapping keys in a kustomization, so a file referenced
only under an earlier ``patches:`` is never loaded; the graph (which reads YAML the same way)
does not see it either. This module composes the kustomization files an environment builds
to find those duplicates with their lines, and says which of the reasons applies:

- ``already-set``: no file changes, every configured value is already there;
- ``shadowed``: an edited file is referenced only under a duplicate key a later one replaces;
- ``not-loaded``: the environment's build does not load an edited file at all;
- ``no-effect``: the build loads the edited files, yet the rendered manifests are the same.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import yaml

from bot.core.graph import KUSTOMIZATION_FILES, Closure, KustomizationGraph, references
from bot.core.types import (
    DuplicateKey,
    Environment,
    EnvironmentDiff,
    FieldEdit,
    FileChange,
    Snapshot,
    Unchanged,
)

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def target_render_unchanged(environment: Environment, diffs: Sequence[EnvironmentDiff]) -> bool:
    """True when the target's build succeeds and its output is the same before and after
    (or the change does not reach the target at all). A failed build is not "unchanged"."""
    diff = next((d for d in diffs if d.environment == environment.name), None)
    if diff is None:
        return True
    if not (diff.base.ok and diff.head.ok):
        return False
    return not diff.changes and not diff.unified_diff and diff.base.output == diff.head.output


def explain_unchanged(
    environment: Environment,
    head: Snapshot,
    changes: Sequence[FileChange],
    edits: Sequence[FieldEdit],
) -> tuple[Unchanged, ...]:
    """Why ``environment``'s render stays the same although it was promoted."""
    if not changes:
        return tuple(
            Unchanged("already-set", e.path, field=e.field, value=str(e.value)) for e in edits
        )
    graph = KustomizationGraph(head)
    closure = graph.closure(environment.path)
    reasons: list[Unchanged] = []
    for change in changes:
        if change.path in closure.files:
            continue
        found = _shadowing(graph, closure, change.path)
        if found is not None:
            duplicate, line = found
            reasons.append(Unchanged("shadowed", change.path, duplicate=duplicate, line=line))
        else:
            reasons.append(Unchanged("not-loaded", change.path))
    if not reasons:  # every edited file is loaded: Kustomize's output just does not move
        reasons = [Unchanged("no-effect", c.path) for c in changes]
    return tuple(reasons)


def duplicate_keys_in_build(
    snapshot: Snapshot, overlays: Sequence[str]
) -> tuple[DuplicateKey, ...]:
    """Duplicate keys in every kustomization file the overlays' builds read (each once)."""
    graph = KustomizationGraph(snapshot)
    files: list[str] = []
    for overlay in overlays:
        for path in sorted(graph.closure(overlay).files):
            if path.rsplit("/", 1)[-1] in KUSTOMIZATION_FILES and path not in files:
                files.append(path)
    return tuple(d for path in files for d in duplicate_keys(path, snapshot[path]))


def duplicate_keys(path: str, content: bytes) -> tuple[DuplicateKey, ...]:
    """Keys written more than once in any mapping of the file's first document."""
    return tuple(d for d, _occurrences in _duplicates(path, content))


# --------------------------------------------------------------------------- internals

_Occurrences = tuple[tuple[int, yaml.Node], ...]  # (line, value node) per occurrence


@functools.lru_cache(maxsize=1024)
def _duplicates(path: str, content: bytes) -> tuple[tuple[DuplicateKey, _Occurrences], ...]:
    try:
        root = yaml.compose(content, Loader=_LOADER)
    except (yaml.YAMLError, ValueError, RecursionError):
        return ()  # the graph and the build report unreadable files
    found: list[tuple[DuplicateKey, _Occurrences]] = []
    for where, node in _mappings(root, ()):
        seen: dict[str, list[tuple[int, yaml.Node]]] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                seen.setdefault(str(key.value), []).append((key.start_mark.line + 1, value))
        for name, occurrences in seen.items():
            if len(occurrences) > 1:
                dotted = ".".join((*where, name))
                lines = tuple(line for line, _ in occurrences)
                found.append((DuplicateKey(path, dotted, lines), tuple(occurrences)))
    return tuple(found)


def _mappings(
    node: yaml.Node | None, where: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], yaml.MappingNode]]:
    if isinstance(node, yaml.MappingNode):
        yield where, node
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            yield from _mappings(value, (*where, name))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _mappings(item, (*where, str(i)))


def _shadowing(
    graph: KustomizationGraph, closure: Closure, target: str
) -> tuple[DuplicateKey, int] | None:
    """The duplicate top-level key (and the line of its shadowed occurrence) under which a
    kustomization of the build references ``target``, directly or through a directory."""
    snapshot = graph.snapshot
    for directory in sorted(closure.directories):
        node = graph.kustomization(directory)
        if node.file is None:
            continue
        for duplicate, occurrences in _duplicates(node.file, snapshot[node.file]):
            if "." in duplicate.key:
                continue  # nested duplicates do not decide what the build loads
            for line, value in occurrences[:-1]:
                fragment: dict[object, object] = {duplicate.key: _construct(value)}
                refs = references(snapshot, directory, node.file, fragment)
                if target in refs or any(
                    r not in snapshot and target in graph.closure(r).files for r in refs
                ):
                    return duplicate, line
    return None


def _construct(node: yaml.Node) -> object:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError):
        return None
