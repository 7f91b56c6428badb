"""A bare git repository driven through the real `git` binary (objects, refs, archives)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    date: int  # unix seconds, UTC


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    author: Person
    committer: Person
    message: str


@dataclass(frozen=True)
class FileChange:
    status: str  # added | modified | removed
    path: str
    additions: int
    deletions: int
    blob_sha: str
    patch: str


class GitError(Exception):
    """A git invocation failed."""


class GitRepo:
    """One bare repository; every method is a thin wrapper over a git plumbing command."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--bare", "--quiet", "--initial-branch=main")

    def git(
        self,
        *args: str,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        ok: tuple[int, ...] = (0,),
    ) -> bytes:
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.path),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            **(env or {}),
        }
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), *args],
            input=stdin,
            capture_output=True,
            env=full_env,
            check=False,
        )
        if proc.returncode not in ok:
            raise GitError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace')}")
        self.last_returncode = proc.returncode
        return proc.stdout

    # -- objects ---------------------------------------------------------------------------

    def object_type(self, sha: str) -> str | None:
        out = self.git("cat-file", "-t", sha, ok=(0, 1, 128))
        return out.decode().strip() if self.last_returncode == 0 else None

    def hash_blob(self, data: bytes) -> str:
        return self.git("hash-object", "-w", "--stdin", stdin=data).decode().strip()

    def read_blob(self, sha: str) -> bytes:
        return self.git("cat-file", "blob", sha)

    def rev_parse(self, rev: str) -> str | None:
        out = self.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", ok=(0, 1, 128))
        return out.decode().strip() if self.last_returncode == 0 else None

    def tree_of(self, commit: str) -> str:
        return self.git("rev-parse", f"{commit}^{{tree}}").decode().strip()

    def ls_tree(
        self, tree: str, path: str = "", recursive: bool = True
    ) -> list[tuple[str, str, str, str]]:
        """(mode, type, sha, path) entries of `tree` (optionally under directory `path`)."""
        args = ["ls-tree", "-z", "--full-tree"]
        if recursive:
            args.append("-r")
        args.append(tree if not path else f"{tree}:{path}")
        rows = []
        for line in self.git(*args).split(b"\0"):
            if not line:
                continue
            meta, name = line.split(b"\t", 1)
            mode, typ, sha = meta.decode().split()
            rows.append((mode, typ, sha, name.decode()))
        return rows

    def entry(self, rev: str, path: str) -> tuple[str, str, str] | None:
        """(mode, type, sha) of `path` at `rev`, or None."""
        out = self.git("ls-tree", "-z", "--full-tree", rev, "--", path.rstrip("/"), ok=(0, 128))
        if self.last_returncode != 0 or not out:
            return None
        mode, typ, sha = out.split(b"\t", 1)[0].decode().split()
        return mode, typ, sha

    def file_at(self, rev: str, path: str) -> bytes | None:
        found = self.entry(rev, path)
        if found is None or found[1] != "blob":
            return None
        return self.read_blob(found[2])

    def build_tree(
        self, base_tree: str | None, changes: list[tuple[str, str | None, str | None]]
    ) -> str:
        """Write a tree: `base_tree` plus changes (path, mode, blob sha or None to delete).

        Raises KeyError(path) when deleting a path that does not exist.
        """
        files: dict[str, tuple[str, str]] = {}
        if base_tree:
            for mode, _typ, sha, path in self.ls_tree(base_tree):
                files[path] = (mode, sha)
        for path, mode, sha in changes:
            if sha is None:
                doomed = [p for p in files if p == path or p.startswith(path.rstrip("/") + "/")]
                if not doomed:
                    raise KeyError(path)
                for p in doomed:
                    del files[p]
            else:
                for p in [p for p in files if p.startswith(path + "/")]:
                    del files[p]  # a blob replaces a directory of the same name
                files[path] = (mode or "100644", sha)
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            info = "".join(f"{mode} {sha}\t{path}\0" for path, (mode, sha) in sorted(files.items()))
            self.git("update-index", "-z", "--index-info", stdin=info.encode(), env=env)
            return self.git("write-tree", env=env).decode().strip()

    def commit_tree(
        self, tree: str, parents: list[str], message: str, author: Person, committer: Person
    ) -> str:
        env = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_AUTHOR_DATE": f"@{author.date} +0000",
            "GIT_COMMITTER_NAME": committer.name,
            "GIT_COMMITTER_EMAIL": committer.email,
            "GIT_COMMITTER_DATE": f"@{committer.date} +0000",
        }
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        return self.git(*args, stdin=message.encode(), env=env).decode().strip()

    def commit_info(self, sha: str) -> CommitInfo | None:
        if self.object_type(sha) != "commit":
            return None
        fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B"
        out = self.git("show", "-s", f"--format={fmt}", sha).decode()
        h, t, p, an, ae, at, cn, ce, ct, body = out.split("\0", 9)
        return CommitInfo(
            sha=h,
            tree=t,
            parents=p.split(),
            author=Person(an, ae, int(at)),
            committer=Person(cn, ce, int(ct)),
            message=body[:-1] if body.endswith("\n") else body,
        )

    def raw_commit(self, sha: str) -> str:
        return self.git("cat-file", "commit", sha).decode()

    # -- refs ------------------------------------------------------------------------------

    def update_ref(self, ref: str, new: str, old: str | None = None) -> None:
        self.git("update-ref", ref, new, *([old] if old else []))

    def refs(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)")
        return dict(line.split(" ", 1) for line in out.decode().splitlines())  # type: ignore[misc]

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        self.git("merge-base", "--is-ancestor", ancestor, descendant, ok=(0, 1))
        return self.last_returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        out = self.git("merge-base", a, b, ok=(0, 1))
        return out.decode().strip() if self.last_returncode == 0 else None

    def merge_trees(self, ours: str, theirs: str) -> str | None:
        """Tree of a real three-way merge of two commits, or None on conflict."""
        out = self.git("merge-tree", "--write-tree", "--no-messages", ours, theirs, ok=(0, 1))
        if self.last_returncode == 1:
            return None
        return out.decode().split("\n", 1)[0].strip()

    # -- history, diffs, archives ----------------------------------------------------------

    def log(self, rev: str, path: str | None = None, limit: int | None = None) -> list[str]:
        args = ["rev-list"]
        if limit:
            args.append(f"--max-count={limit}")
        args.append(rev)
        if path:
            args += ["--", path]
        return self.git(*args).decode().split()

    def diff(self, base: str, head: str) -> list[FileChange]:
        """Changed files with stats and patches, in three git calls whatever their number."""
        numstat = self.git("diff", "--no-renames", "-z", "--numstat", base, head).decode()
        counts: dict[str, tuple[int, int]] = {}
        for part in (p for p in numstat.split("\0") if p):
            add, dele, path = part.split("\t", 2)
            counts[path] = (int(add) if add != "-" else 0, int(dele) if dele != "-" else 0)
        raw = self.git("diff", "--no-renames", "-z", "--raw", "--abbrev=40", base, head).decode()
        fields = [f for f in raw.split("\0") if f]
        # one patch for everything, cut at each file header (same order as --raw)
        full = self.git("diff", "--no-renames", base, head).decode(errors="replace")
        patches = re.split(r"^diff --git .*\n", full, flags=re.M)[1:]
        changes = []
        for index, (meta, path) in enumerate(zip(fields[::2], fields[1::2], strict=True)):
            _, _, old_sha, new_sha, code = meta.lstrip(":").split(" ")
            status = {"A": "added", "D": "removed"}.get(code[0], "modified")
            patch = patches[index] if index < len(patches) else ""
            hunk_at = patch.find("\n@@")
            add, dele = counts.get(path, (0, 0))
            changes.append(
                FileChange(
                    status=status,
                    path=path,
                    additions=add,
                    deletions=dele,
                    blob_sha=old_sha if status == "removed" else new_sha,
                    patch=patch[hunk_at + 1 :].rstrip("\n") if hunk_at >= 0 else "",
                )
            )
        return changes

    def archive_targz(self, sha: str, prefix: str) -> bytes:
        return self.git("archive", "--format=tar.gz", f"--prefix={prefix}", sha)
