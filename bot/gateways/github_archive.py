"""Repository snapshots from GitHub tarballs: safe extraction, byte-bounded LRU, git tree ids."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

FULL_SHA = re.compile(r"[0-9a-f]{40}")
# What one file costs in memory beyond its bytes (dict slots, the path and bytes objects):
# an archive of 100k empty files with long paths must not look free to the cache.
FILE_OVERHEAD_BYTES = 256
DEFAULT_MAX_FILES = 50_000
MODE_FILE, MODE_EXEC, MODE_LINK = "100644", "100755", "120000"


class ArchiveError(Exception):
    """The archive is unreadable or larger than allowed."""


@dataclass(frozen=True)
class SnapshotEntry:
    files: dict[str, bytes]  # regular files only
    modes: dict[str, str]  # git mode of every file and symlink
    links: dict[str, bytes] = field(default_factory=dict)  # symlink path -> target
    complete: bool = True  # False when the archive held something a tree id cannot be built from
    size: int = 0
    _memo: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    def root_tree(self) -> str | None:
        """The snapshot's own git tree id (computed once), or None if not computable."""
        if "root" not in self._memo:
            self._memo["root"] = self.tree_sha()
        return self._memo["root"]

    def tree_sha(self, changes: Mapping[str, bytes | None] | None = None) -> str | None:
        """The git tree id of this snapshot with changes applied, or None if not computable."""
        if not self.complete:
            return None
        entries: dict[str, tuple[str, bytes]] = {}
        for path, data in self.files.items():
            entries[path] = (self.modes.get(path, MODE_FILE), blob_sha(data))
        for path, target in self.links.items():
            entries[path] = (MODE_LINK, blob_sha(target))
        for path, change in (changes or {}).items():
            if change is None:
                entries.pop(path, None)
            else:
                entries[path] = (change_mode(self, path), blob_sha(change))
        return tree_sha(entries)


def change_mode(entry: SnapshotEntry | None, path: str) -> str:
    """Mode for a written file: keep the executable bit, anything else becomes a regular file."""
    if entry is not None and entry.modes.get(path) == MODE_EXEC:
        return MODE_EXEC
    return MODE_FILE


def blob_sha(data: bytes) -> bytes:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).digest()


def tree_sha(entries: Mapping[str, tuple[str, bytes]]) -> str | None:
    """Git's tree id for path -> (mode, raw blob id); None when paths conflict."""
    root: dict[str, object] = {}
    for path, value in entries.items():
        node = root
        *dirs, name = path.split("/")
        for part in dirs:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                return None
            node = child
        if isinstance(node.get(name), dict):
            return None
        node[name] = value

    def build(node: dict[str, object]) -> bytes | None:
        items: list[tuple[bytes, bytes]] = []
        for name, value in node.items():
            raw = name.encode()
            if isinstance(value, dict):
                sub = build(value)
                if sub is not None:  # git has no empty trees
                    items.append((raw + b"/", b"40000 " + raw + b"\0" + sub))
            else:
                mode, sha = value if isinstance(value, tuple) else ("", b"")
                items.append((raw, mode.encode() + b" " + raw + b"\0" + sha))
        if not items:
            return None
        items.sort(key=lambda item: item[0])
        body = b"".join(item[1] for item in items)
        return hashlib.sha1(b"tree %d\0" % len(body) + body, usedforsecurity=False).digest()

    digest = build(root)
    if digest is None:  # the empty tree
        return hashlib.sha1(b"tree 0\0", usedforsecurity=False).hexdigest()
    return digest.hex()


def _relative(name: str) -> str | None:
    """Strip the archive's top-level directory; None for unsafe or top-level names."""
    if name.startswith("/") or "\\" in name:
        return None
    parts = name.split("/")
    if len(parts) < 2:
        return None
    rest = [p for p in parts[1:] if p not in ("", ".")]
    if not rest or ".." in rest:
        return None
    return "/".join(rest)


def extract_tarball(
    data: bytes, *, max_bytes: int, max_files: int = DEFAULT_MAX_FILES
) -> SnapshotEntry:
    """Regular files of a GitHub tarball, keyed by repo-relative path; symlinks never followed.

    `size` counts what the entry costs in memory (content, paths, per-file overhead); more
    than `max_bytes` of it or more than `max_files` entries is an ArchiveError."""
    files: dict[str, bytes] = {}
    modes: dict[str, str] = {}
    links: dict[str, bytes] = {}
    dirs: set[str] = set()
    complete = True
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                path = _relative(member.name)
                if path is None:
                    if member.name.strip("/").count("/") > 0:
                        complete = False  # an unsafe name inside the tree: skipped
                    continue
                if member.isdir():
                    dirs.add(path)
                    continue
                if len(files) + len(links) >= max_files:
                    raise ArchiveError(f"snapshot has more than {max_files} files")
                total += len(path) + FILE_OVERHEAD_BYTES
                if member.isfile():
                    total += member.size
                    if total > max_bytes:
                        raise ArchiveError(f"snapshot exceeds {max_bytes} bytes")
                    handle = archive.extractfile(member)
                    files[path] = handle.read() if handle is not None else b""
                    modes[path] = MODE_EXEC if member.mode & 0o111 else MODE_FILE
                elif member.issym():
                    links[path] = member.linkname.encode()
                    modes[path] = MODE_LINK
                else:  # hard links, devices, fifos: not content we read
                    complete = False
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"unreadable archive ({type(exc).__name__})") from None
    # An empty directory in a git archive is a submodule: its gitlink is not in the tarball.
    parents = {p.rsplit("/", 1)[0] for p in (*files, *links) if "/" in p}
    occupied = {"/".join(p.split("/")[:i]) for p in parents for i in range(1, p.count("/") + 2)}
    if dirs - occupied:
        complete = False
    return SnapshotEntry(files=files, modes=modes, links=links, complete=complete, size=total)


class SnapshotCache:
    """LRU of (repo, commit sha) -> SnapshotEntry, bounded by the entries' memory (content,
    paths and per-file overhead); thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], SnapshotEntry] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, repo: str, sha: str) -> SnapshotEntry | None:
        key = (repo.lower(), sha)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, repo: str, sha: str, entry: SnapshotEntry) -> None:
        if not FULL_SHA.fullmatch(sha) or entry.size > self.max_bytes:
            return  # only immutable keys are cached
        key = (repo.lower(), sha)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old.size
            self._entries[key] = entry
            self._size += entry.size
            while self._size > self.max_bytes and self._entries:
                _, evicted = self._entries.popitem(last=False)
                self._size -= evicted.size

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._entries)
