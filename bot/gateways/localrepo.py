"""A repository checkout on disk, seen as a lazily read snapshot."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__"})


class DirectorySnapshot(Mapping[str, bytes]):
    """Files under `root` by repo-relative POSIX path, read on first access.

    Reading lazily keeps `plan` proportional to the files a change touches, not to the
    size of the repository.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self._cache: dict[str, bytes | None] = {}

    def _resolve(self, path: str) -> Path | None:
        if path.startswith("/") or any(part in ("..", "") for part in path.split("/")):
            return None
        full = self.root / path
        if full.is_symlink() or not full.is_file():
            return None
        return full

    def __getitem__(self, path: str) -> bytes:
        if path not in self._cache:
            full = self._resolve(path)
            self._cache[path] = full.read_bytes() if full is not None else None
        content = self._cache[path]
        if content is None:
            raise KeyError(path)
        return content

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        try:
            self[path]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in sorted(filenames):
                path = name if rel == "." else f"{rel}/{name}"
                if not (Path(dirpath) / name).is_symlink():
                    yield path

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def write(self, path: str, content: bytes) -> None:
        """Write a file back into the checkout (used by `plan --write`)."""
        full = self._resolve(path)
        if full is None:
            raise KeyError(path)
        full.write_bytes(content)
        self._cache[path] = content
