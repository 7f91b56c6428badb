"""Render the overlays a change affects, before and after, and diff them per environment."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from bot.core.diff import BudgetExceeded, diff_environment, too_large
from bot.core.graph import KustomizationGraph, affected_overlays, shared_parse_cache
from bot.core.types import Config, EnvironmentDiff, FileChange, RenderResult, Snapshot

# (base snapshot, head snapshot, overlays) -> {overlay: (base render, head render)}
RenderPair = Callable[
    [Snapshot, Snapshot, Sequence[str]], Mapping[str, tuple[RenderResult, RenderResult]]
]


class LayeredSnapshot(Mapping[str, bytes]):
    """A snapshot with some files replaced (None deletes), without copying the base."""

    def __init__(self, base: Snapshot, layer: Mapping[str, bytes | None]) -> None:
        self._base = base
        self._layer = layer

    def __getitem__(self, path: str) -> bytes:
        if path in self._layer:
            content = self._layer[path]
            if content is None:
                raise KeyError(path)
            return content
        return self._base[path]

    def __iter__(self) -> Iterator[str]:
        yield from (p for p, c in self._layer.items() if c is not None)
        yield from (p for p in self._base if p not in self._layer)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def head_snapshot(base: Snapshot, changes: Sequence[FileChange]) -> Snapshot:
    """The base snapshot with the planned file contents laid over it."""
    return LayeredSnapshot(base, {c.path: c.after for c in changes})


@dataclass(frozen=True)
class DiffBudget:
    """What one job may spend on rendering and diffing, Kustomize included: past either
    limit an environment ends as "too large to render" instead of hours of CPU."""

    seconds: float = 120.0
    max_bytes: int = 64 * 1024 * 1024  # rendered text, base and head, all environments
    clock: Callable[[], float] = time.monotonic


def environment_diffs(
    config: Config,
    base: Snapshot,
    head: Snapshot,
    changed_paths: Collection[str],
    render_pair: RenderPair,
    budget: DiffBudget | None = None,
) -> tuple[EnvironmentDiff, ...]:
    """Diff every configured environment whose overlay the changed paths reach."""
    budget = budget or DiffBudget()
    deadline = budget.clock() + budget.seconds
    overlays = [env.path for env in config.environments]
    affected = affected_overlays(base, head, overlays, changed_paths)
    if not affected:
        return ()
    rendered = render_pair(base, head, affected)
    names = {env.path: env.name for env in config.environments}

    def check() -> None:
        if budget.clock() > deadline:
            raise BudgetExceeded

    out = []
    used = 0
    for overlay in affected:
        name = names.get(overlay, overlay)
        base_r, head_r = rendered[overlay]
        used += len(base_r.output) + len(head_r.output)
        mib = budget.max_bytes / 2**20
        if used > budget.max_bytes:
            why = f"the renders of this change exceed the {mib:g} MiB a job may diff"
            out.append(too_large(name, overlay, base_r, why))
            continue
        try:
            check()
            out.append(diff_environment(name, overlay, base_r, head_r, check))
        except BudgetExceeded:
            why = f"rendering and diffing took longer than the {budget.seconds:g} s a job may spend"
            out.append(too_large(name, overlay, base_r, why))
    return tuple(with_missing_files(base, head, out))


def with_missing_files(
    base: Snapshot, head: Snapshot, diffs: Sequence[EnvironmentDiff]
) -> list[EnvironmentDiff]:
    """Each diff whose build fails, with every missing file its graph references named."""
    cache = shared_parse_cache()
    graphs = (KustomizationGraph(base, cache), KustomizationGraph(head, cache))
    out: list[EnvironmentDiff] = []
    for diff in diffs:
        missing = [
            tuple(sorted(graph.closure(diff.overlay).missing)) if not result.ok else ()
            for graph, result in zip(graphs, (diff.base, diff.head), strict=True)
        ]
        if any(missing):
            diff = replace(diff, base_missing=missing[0], head_missing=missing[1])
        out.append(diff)
    return out


def changed_paths(base: Snapshot, head: Snapshot) -> frozenset[str]:
    """Every path added, removed or modified between two snapshots: complete, unlike
    GitHub's file list of a pull request (at most 3000 files)."""
    changed = {path for path, content in head.items() if base.get(path) != content}
    changed.update(path for path in base if path not in head)
    return frozenset(changed)


def render_changed(diff: EnvironmentDiff) -> bool:
    """Does this environment's rendered output change (or fail to build on either side)?"""
    if not (diff.base.ok and diff.head.ok):
        return True
    return bool(diff.changes) or bool(diff.unified_diff) or diff.base.output != diff.head.output


def affected_environments(
    config: Config, diffs: Sequence[EnvironmentDiff], *, config_changed: bool = False
) -> tuple[str, ...]:
    """The environments whose policies a change must satisfy: those whose render changes,
    and all of them when the change edits the bot's own config (it governs every one)."""
    if config_changed:
        return tuple(env.name for env in config.environments)
    names = {env.name for env in config.environments}
    return tuple(d.environment for d in diffs if d.environment in names and render_changed(d))
