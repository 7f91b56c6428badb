"""The kustomization graph of a snapshot: which repo files each overlay's build loads."""

from __future__ import annotations

import functools
import posixpath
import re
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import yaml

from bot.core.types import Snapshot

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MISSING_OVERLAY_ERROR = "overlay does not exist at this commit"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HOST = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:\d+)?$")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")  # user@host:path, as git reads it
_GIT_HOSTS = frozenset({"github.com", "gitlab.com", "bitbucket.org", "dev.azure.com"})


@dataclass(frozen=True)
class Kustomization:
    """What one directory's kustomization file references, resolved against the snapshot."""

    directory: str  # repo-relative, "" for the repo root
    file: str | None  # the kustomization file; None when the directory has none
    files: tuple[str, ...] = ()  # referenced repo files that exist
    directories: tuple[str, ...] = ()  # referenced kustomization directories that exist
    missing: tuple[str, ...] = ()  # referenced repo paths that do not exist
    remote: tuple[str, ...] = ()  # remote references (URLs), never fetched
    remote_resources: tuple[str, ...] = ()  # remote entries of resources/bases/components
    problems: tuple[str, ...] = ()  # parse errors, paths leaving the repository
    uses_helm: bool = False


@dataclass(frozen=True)
class Closure:
    """Everything an overlay's build loads, transitively."""

    overlay: str
    exists: bool
    files: frozenset[str] = frozenset()  # existing repo files, kustomization files included
    directories: frozenset[str] = frozenset()  # kustomization directories visited
    missing: frozenset[str] = frozenset()
    remote: tuple[str, ...] = ()  # "<kustomization file>: <url>" for every remote reference
    remote_resources: tuple[str, ...] = ()  # the subset in resources/bases/components
    problems: tuple[str, ...] = ()
    uses_helm: bool = False

    @property
    def broken(self) -> bool:
        """True when the graph alone already shows the build cannot succeed."""
        return not self.exists or bool(self.missing or self.problems)


def normalize_dir(path: str) -> str:
    """Repo-relative directory in canonical form ("" for the root)."""
    norm = posixpath.normpath(path.strip().lstrip("/")) if path.strip() else "."
    return "" if norm == "." else norm


def kustomization_file(snapshot: Snapshot, directory: str) -> str | None:
    """The kustomization file of a directory, or None when it has none."""
    for name in KUSTOMIZATION_FILES:
        path = _join(directory, name)
        if path in snapshot:
            return path
    return None


def fetched_even_if_local(ref: str) -> bool:
    """References Kustomize fetches whatever local file shares their name: URL schemes,
    `//host`, `git@host:` and other scp-like forms, queries (`?ref=`), well-known git hosts."""
    if _SCHEME.match(ref) or ref.startswith(("//", "git@", "git::", "gh:")):
        return True
    if "?" in ref or _SCP_LIKE.match(ref):
        return True
    return ref.split("/", 1)[0].lower() in _GIT_HOSTS


def looks_remote(ref: str) -> bool:
    """Whether Kustomize might fetch this (non-local) reference: the forms above, a `.git`
    suffix, or a `host.name/...` shorthand."""
    if fetched_even_if_local(ref) or ref.rstrip("/").endswith(".git"):
        return True
    first, sep, _rest = ref.partition("/")
    return bool(sep) and _HOST.match(first) is not None and "." in first


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _resolve(directory: str, ref: str) -> str | None:
    """Repo path of a reference relative to a directory, None when it leaves the repo."""
    if ref.startswith("/"):
        return None
    joined = posixpath.normpath(_join(directory, ref))
    if joined == ".." or joined.startswith("../"):
        return None
    return "" if joined == "." else joined


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                yield item


def _mappings(value: object) -> Iterator[dict[object, object]]:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield item


class _Collector:
    """Accumulates the references of one kustomization file."""

    def __init__(self, snapshot: Snapshot, directory: str, file: str) -> None:
        self.snapshot = snapshot
        self.directory = directory
        self.file = file
        self.files: list[str] = []
        self.directories: list[str] = []
        self.missing: list[str] = []
        self.remote: list[str] = []
        self.remote_resources: list[str] = []
        self.problems: list[str] = []

    def _path(self, ref: str, key: str) -> str | None:
        path = _resolve(self.directory, ref)
        if path is None:
            self.problems.append(f"{self.file}: {key} entry {ref!r} is outside the repository")
        return path

    def file_ref(self, ref: str, key: str) -> None:
        """A reference that must be a file (patch, generator input, ...)."""
        ref = ref.strip()
        if not ref:
            return
        if looks_remote(ref):  # patches and generator inputs are files: never fetched
            self.remote.append(ref)
            return
        path = self._path(ref, key)
        if path is None:
            return
        if path in self.snapshot:
            self.files.append(path)
        else:
            self.missing.append(path)

    def resource_ref(self, ref: str, key: str) -> None:
        """A reference that may be a file, a kustomization directory or a remote target."""
        ref = ref.strip()
        if not ref:
            return
        path = _resolve(self.directory, ref)
        is_file = path is not None and path in self.snapshot
        is_dir = path is not None and not is_file and kustomization_file(self.snapshot, path)
        # first: a local file of the same name does not stop Kustomize fetching these
        if fetched_even_if_local(ref) or (looks_remote(ref) and not (is_file or is_dir)):
            self.remote.append(ref)
            if key in ("resources", "bases", "components"):
                self.remote_resources.append(ref)
        elif is_file:
            self.files.append(str(path))
        elif is_dir:
            self.directories.append(str(path))
        elif path is None:
            self.problems.append(f"{self.file}: {key} entry {ref!r} is outside the repository")
        else:
            self.missing.append(path)


class ParseCache:
    """YAML parses keyed by file content, so identical kustomizations (base and head of
    the same file, most of the time) are parsed once. `shared_parse_cache()` lives across
    jobs and makes repeat runs on a repository nearly free. Safe to share between threads:
    the parsed documents are only ever read."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self.parses = 0  # YAML parses actually run (for cost tests and metrics)
        self.max_entries = max_entries
        self._docs: dict[bytes, tuple[object, str]] = {}
        self._lock = threading.Lock()

    def load(self, content: bytes) -> tuple[object, str]:
        """(document, "") or (None, problem description)."""
        found = self._docs.get(content)
        if found is None:
            try:
                # libyaml's C parser: kustomization parsing dominates graph cost on big repos
                found = (yaml.load(content, Loader=_LOADER), "")
            except yaml.YAMLError as exc:
                found = (None, f"invalid YAML: {_one_line(str(exc))}")
            except ValueError as exc:  # undecodable bytes
                found = (None, f"unreadable: {_one_line(str(exc))}")
            with self._lock:
                self.parses += 1
                while len(self._docs) >= self.max_entries:
                    del self._docs[next(iter(self._docs))]  # oldest first
                self._docs[content] = found
        return found


@functools.cache
def shared_parse_cache() -> ParseCache:
    """The process-wide parse cache (bounded; content-keyed, so never stale)."""
    return ParseCache()


def parse_kustomization(
    snapshot: Snapshot, directory: str, cache: ParseCache | None = None
) -> Kustomization:
    """Parse one directory's kustomization file and resolve its references."""
    file = kustomization_file(snapshot, directory)
    if file is None:
        return Kustomization(directory=directory, file=None)
    col = _Collector(snapshot, directory, file)
    others = [
        n
        for n in KUSTOMIZATION_FILES
        if _join(directory, n) in snapshot and _join(directory, n) != file
    ]
    if others:
        col.problems.append(f"{directory or '.'}: more than one kustomization file")
        col.files.extend(_join(directory, n) for n in others)
    doc, problem = (cache or ParseCache()).load(snapshot[file])
    if problem:
        col.problems.append(f"{file}: {problem}")
    uses_helm = False
    if doc is not None and not isinstance(doc, dict):
        col.problems.append(f"{file}: not a mapping")
    elif isinstance(doc, dict):
        uses_helm = _collect(col, doc)
    return Kustomization(
        directory=directory,
        file=file,
        files=tuple(col.files),
        directories=tuple(col.directories),
        missing=tuple(col.missing),
        remote=tuple(col.remote),
        remote_resources=tuple(col.remote_resources),
        problems=tuple(col.problems),
        uses_helm=uses_helm,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _collect(col: _Collector, doc: dict[object, object]) -> bool:
    """Record every reference of a kustomization document; True when it uses Helm."""
    for key in ("resources", "bases", "components"):
        for ref in _strings(doc.get(key)):
            col.resource_ref(ref, key)
    for key in ("transformers", "generators", "validators"):
        for ref in _strings(doc.get(key)):
            if "\n" not in ref:  # multi-line entries are inline plugin configs
                col.resource_ref(ref, key)
    for ref in _strings(doc.get("patchesStrategicMerge")):
        if "\n" not in ref:  # inline patches are YAML documents
            col.file_ref(ref, "patchesStrategicMerge")
    for key in ("patches", "patchesJson6902", "replacements"):
        for item in _mappings(doc.get(key)):
            path = item.get("path")
            if isinstance(path, str):
                col.file_ref(path, key)
    for key in ("crds", "configurations"):
        for ref in _strings(doc.get(key)):
            col.file_ref(ref, key)
    openapi = doc.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        col.file_ref(str(openapi["path"]), "openapi")
    for key in ("configMapGenerator", "secretGenerator"):
        for gen in _mappings(doc.get(key)):
            for entry in _strings(gen.get("files")):
                _key, sep, path = entry.partition("=")
                col.file_ref(path if sep else entry, key)
            for ref in _strings(gen.get("envs")):
                col.file_ref(ref, key)
            env = gen.get("env")
            if isinstance(env, str):
                col.file_ref(env, key)
    return bool(doc.get("helmCharts") or doc.get("helmChartInflationGenerator"))


def references(
    snapshot: Snapshot, directory: str, file: str, doc: dict[object, object]
) -> set[str]:
    """Repo paths (files, kustomization directories, missing paths) a kustomization document
    in ``directory`` references -- e.g. a fragment made of one shadowed duplicate key."""
    col = _Collector(snapshot, directory, file)
    _collect(col, doc)
    return {*col.files, *col.directories, *col.missing}


@dataclass
class KustomizationGraph:
    """Lazily parsed kustomization graph of one snapshot; each directory is parsed once."""

    snapshot: Snapshot
    cache: ParseCache = field(default_factory=ParseCache)  # may be shared between graphs
    _dirs: dict[str, Kustomization] = field(default_factory=dict, repr=False)
    _closures: dict[str, Closure] = field(default_factory=dict, repr=False)

    def kustomization(self, directory: str) -> Kustomization:
        directory = normalize_dir(directory)
        found = self._dirs.get(directory)
        if found is None:
            found = parse_kustomization(self.snapshot, directory, self.cache)
            self._dirs[directory] = found
        return found

    @property
    def parses(self) -> int:
        """YAML parses run by this graph's cache (shared caches count for all graphs)."""
        return self.cache.parses

    def closure(self, overlay: str) -> Closure:
        overlay = normalize_dir(overlay)
        cached = self._closures.get(overlay)
        if cached is not None:
            return cached
        root = self.kustomization(overlay)
        if root.file is None:
            result = Closure(overlay=overlay, exists=False)
            self._closures[overlay] = result
            return result
        files: set[str] = set()
        missing: set[str] = set()
        remote: list[str] = []
        remote_resources: list[str] = []
        problems: list[str] = []
        uses_helm = False
        seen: set[str] = set()
        stack = [overlay]
        while stack:
            directory = stack.pop()
            if directory in seen:
                continue
            seen.add(directory)
            node = self.kustomization(directory)
            if node.file is None:  # cannot happen for referenced directories; be safe
                missing.add(directory)
                continue
            files.add(node.file)
            files.update(node.files)
            missing.update(node.missing)
            remote.extend(f"{node.file}: {url}" for url in node.remote)
            remote_resources.extend(f"{node.file}: {url}" for url in node.remote_resources)
            problems.extend(node.problems)
            uses_helm = uses_helm or node.uses_helm
            stack.extend(d for d in node.directories if d not in seen)
        result = Closure(
            overlay=overlay,
            exists=True,
            files=frozenset(files),
            directories=frozenset(seen),
            missing=frozenset(missing),
            remote=tuple(remote),
            remote_resources=tuple(remote_resources),
            problems=tuple(problems),
            uses_helm=uses_helm,
        )
        self._closures[overlay] = result
        return result


def overlay_files(snapshot: Snapshot, overlay_dir: str) -> frozenset[str]:
    """Every existing repo file the overlay's build loads (kustomization files included)."""
    return KustomizationGraph(snapshot).closure(overlay_dir).files


def _ancestors(path: str) -> Iterable[str]:
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        yield path


def _touches(closure: Closure, changed: Collection[str]) -> bool:
    if not closure.exists:
        return False
    for raw in changed:
        path = normalize_dir(raw)
        if path in closure.files or path in closure.missing:
            return True
        parent, _sep, name = path.rpartition("/")
        # a new or deleted kustomization file next to one the build uses breaks or fixes it
        if name in KUSTOMIZATION_FILES and parent in closure.directories:
            return True
        # a file added under a referenced-but-missing directory
        if any(a in closure.missing for a in _ancestors(path)):
            return True
        # a changed path given as a directory that holds files the build loads
        prefix = f"{path}/" if path else ""
        if path in closure.directories or (
            path not in closure.files and any(f.startswith(prefix) for f in closure.files)
        ):
            return True
    return False


def affected_overlays(
    snapshot_base: Snapshot,
    snapshot_head: Snapshot,
    overlays: Sequence[str],
    changed_paths: Collection[str],
    cache: ParseCache | None = None,
) -> list[str]:
    """Overlays (in the given order) whose build, at base or head, loads a changed path."""
    cache = cache or shared_parse_cache()
    base = KustomizationGraph(snapshot_base, cache)
    head = KustomizationGraph(snapshot_head, cache)
    changed = frozenset(changed_paths)
    out: list[str] = []
    for overlay in overlays:
        if _touches(base.closure(overlay), changed) or _touches(head.closure(overlay), changed):
            out.append(overlay)
    return out
