"""Git data: the default branch, snapshots, files, commits and refs, comparisons."""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from github.GithubException import GithubException

from bot.core.errors import TransientError
from bot.core.github_port import (
    Comparison,
    GitHubError,
    login_of,
)
from bot.gateways.github_archive import (
    ArchiveError,
    SnapshotEntry,
    change_mode,
    extract_tarball,
)
from bot.gateways.github_base import REF_ATTEMPTS, ClientBase, _operation, _repo_path
from bot.gateways.github_http import (
    error_message,
    quote,
)


class GitData(ClientBase):
    """Refs, trees, commits and archives."""

    @_operation
    def default_branch(self, repo: str) -> tuple[str, str]:
        """(default branch name, its head sha): GET ref, plus GET repo when the name is not
        known from the last 10 minutes (or the known name no longer resolves)."""
        known = self.app.default_branches.get(repo.lower())
        if known is not None and time.monotonic() - known[1] < self.app.default_branch_ttl_s:
            sha = self.ref_sha(repo, known[0])
            if sha is not None:
                return known[0], sha
        branch = str(self.github.get_repo(repo).default_branch)
        sha = self.ref_sha(repo, branch)
        if sha is None:
            raise GitHubError(404, f"{repo}: default branch '{branch}' has no commits")
        self.app.default_branches[repo.lower()] = (branch, time.monotonic())
        return branch, sha

    @_operation
    def ref_sha(self, repo: str, branch: str) -> str | None:
        ref = urllib.parse.quote(f"heads/{branch}")
        try:
            data = self._get(f"{_repo_path(repo)}/git/ref/{ref}")
        except GithubException as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(data, dict):  # a prefix match list: no exact ref
            return None
        return str(data["object"]["sha"])

    @_operation
    def snapshot(self, repo: str, sha: str) -> dict[str, bytes]:
        """All regular files at sha (repo-relative path -> bytes), from the tarball; cached."""
        return dict(self._snapshot_entry(repo, sha).files)

    def _snapshot_entry(self, repo: str, sha: str) -> SnapshotEntry:
        cached = self.app.snapshots.get(repo, sha)
        if cached is not None:
            return cached
        link = self.github.get_repo(repo).get_archive_link("tarball", sha)
        data = self._download(link)
        try:
            entry = extract_tarball(data, max_bytes=self.app.max_snapshot_bytes)
        except ArchiveError as exc:
            raise GitHubError(422, f"{repo}@{sha[:12]}: {exc}") from None
        self.app.snapshots.put(repo, sha, entry)
        return entry

    def _download(self, url: str) -> bytes:
        """GET the archive link; send the token only to the API host itself (GHE codeload)."""
        api_host = urllib.parse.urlparse(self.app.api_url).netloc
        headers = {"User-Agent": self.app.user_agent}
        if urllib.parse.urlparse(url).netloc == api_host:
            headers["Authorization"] = f"token {self._auth.token}"
        limit = self.app.max_snapshot_bytes
        with self._archive_session.get(
            url, headers=headers, timeout=self.app.timeout, stream=True, allow_redirects=True
        ) as response:
            response.raise_for_status()
            chunks, size = [], 0
            for chunk in response.iter_content(chunk_size=1 << 16):
                size += len(chunk)
                if size > limit:
                    raise GitHubError(413, f"repository archive exceeds {limit} bytes")
                chunks.append(chunk)
        return b"".join(chunks)

    @_operation
    def read_file(self, repo: str, path: str, ref: str) -> bytes | None:
        """One file at ref (contents API); None if absent or not a regular file."""
        try:
            data = self._get(
                f"{_repo_path(repo)}/contents/{urllib.parse.quote(path.strip('/'))}", ref=ref
            )
        except GithubException as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        if data.get("encoding") != "base64":
            raise GitHubError(413, f"{path} is too large for the contents API")
        return base64.b64decode(data.get("content") or "")

    @_operation
    def commit_files(
        self,
        repo: str,
        *,
        branch: str,
        base_sha: str,
        files: Mapping[str, bytes | None],
        message: str,
        look_first: bool = True,
    ) -> str:
        """Point heads/<branch> at one commit on base_sha changing exactly files (None: delete).

        `look_first`: read the branch before writing (a rerun, or a branch the bot pushed to
        before): when it already holds that content on that parent, it is returned without
        any write. Otherwise create first (tree, commit, ref) and read the ref only when it
        turns out to exist.
        """
        base_path = _repo_path(repo)
        files = {path.strip("/"): data for path, data in files.items()}
        base_entry = self.app.snapshots.get(repo, base_sha)
        attempt = _commit_key(repo, branch, base_sha, files)
        # an earlier try of this very operation made a commit (its ref's answer was lost?):
        # look at the branch rather than make another one
        look_first = look_first or attempt in self._made
        existing: tuple[str, str] | None = None  # (sha, tree) of a branch commit on base_sha
        if look_first:
            current = self.ref_sha(repo, branch)
            if current is not None and current != base_sha:
                data = self._git_commit(repo, current)
                if [p.get("sha") for p in data.get("parents") or ()] == [base_sha]:
                    existing = (current, str(data["tree"]["sha"]))
                    expected = base_entry.tree_sha(files) if base_entry is not None else None
                    if expected is not None and expected == existing[1]:
                        return current
        entries = [_tree_entry(base_entry, path, data) for path, data in sorted(files.items())]
        tree = self._create_tree(repo, base_sha, base_entry, entries)
        if existing is not None and existing[1] == tree:
            return existing[0]
        _, commit = self._request(
            "POST",
            f"{base_path}/git/commits",
            body={"message": message, "tree": tree, "parents": [base_sha]},
        )
        new_sha = str(commit["sha"])
        self._remember_commit(repo, commit)
        with self._commits_lock:
            self._made[attempt] = new_sha
            while len(self._made) > 256:
                self._made.popitem(last=False)
        for _attempt in range(REF_ATTEMPTS):
            if self._create_branch(repo, branch, new_sha):
                return new_sha
            current = self.ref_sha(repo, branch)
            if current is None:
                continue  # deleted since: create it again
            if current != base_sha:
                data = self._git_commit(repo, current)
                parents = [p.get("sha") for p in data.get("parents") or ()]
                if parents == [base_sha] and data["tree"]["sha"] == tree:
                    return current  # a run before this one made the same commit
            if self._move_branch(repo, branch, new_sha):
                return new_sha
        raise TransientError(f"{repo}: branch {branch} kept changing while it was being updated")

    def _create_tree(
        self,
        repo: str,
        base_sha: str,
        base_entry: SnapshotEntry | None,
        entries: list[dict[str, Any]],
    ) -> str:
        """POST git/trees on the base commit's tree: its id computed from the snapshot when
        it can be (no GET), read from the commit when not or when GitHub does not know it."""
        local = base_entry.root_tree() if base_entry is not None else None
        if local is not None:
            try:
                return self._post_tree(repo, local, entries)
            except GithubException as exc:
                if exc.status not in (404, 422):
                    raise
        return self._post_tree(repo, self._git_commit(repo, base_sha)["tree"]["sha"], entries)

    def _post_tree(self, repo: str, base_tree: str, entries: list[dict[str, Any]]) -> str:
        _, tree = self._request(
            "POST", f"{_repo_path(repo)}/git/trees", body={"base_tree": base_tree, "tree": entries}
        )
        return str(tree["sha"])

    def _create_branch(self, repo: str, branch: str, sha: str) -> bool:
        """POST git/refs; False when the branch exists already."""
        try:
            self._request(
                "POST",
                f"{_repo_path(repo)}/git/refs",
                body={"ref": f"refs/heads/{branch}", "sha": sha},
            )
            return True
        except GithubException as exc:
            if exc.status != 422 or "already exists" not in error_message(exc).lower():
                raise
            return False

    def _move_branch(self, repo: str, branch: str, sha: str) -> bool:
        """Force-move the ref; False when it was deleted meanwhile."""
        base_path = _repo_path(repo)
        try:
            self._request(
                "PATCH",
                f"{base_path}/git/refs/{urllib.parse.quote(f'heads/{branch}')}",
                body={"sha": sha, "force": True},
            )
            return True
        except GithubException as exc:
            # with force, only a ref deleted since it was read is a race worth another
            # round; any other 422 (a rule, a bad sha or name) is GitHub's final answer
            if exc.status == 422 and "does not exist" in error_message(exc).lower():
                return False
            raise

    @_operation
    def path_history(self, repo: str, path: str, *, ref: str, limit: int = 30) -> list[str]:
        """Shas of commits touching path reachable from ref, newest first."""
        out: list[str] = []
        params = {"sha": ref, "path": path, "per_page": min(max(limit, 1), 100)}
        for commit in self._paginate(f"{_repo_path(repo)}/commits", params):
            out.append(str(commit["sha"]))
            if len(out) >= limit:
                break
        return out

    @_operation
    def compare(self, repo: str, base: str, head: str) -> Comparison:
        """Merge base of base and head, and the commits head adds (GitHub's account of who
        authored and committed them; `web-flow` stands for commits GitHub itself made)."""
        data = self._get(f"{_repo_path(repo)}/compare/{quote(base)}...{quote(head)}")
        commits = data.get("commits") or []
        people = {
            login_of(item.get(role)).lower()
            for item in commits
            for role in ("author", "committer")
            if login_of(item.get(role))
        }
        return Comparison(
            merge_base=str((data.get("merge_base_commit") or {}).get("sha") or base),
            people=frozenset(people - {"web-flow"}),
        )


def _commit_key(
    repo: str, branch: str, base_sha: str, files: Mapping[str, bytes | None]
) -> tuple[str, str, str, str]:
    """What a commit_files call asks for, as a key: equal keys make equal commits."""
    digest = hashlib.sha256()
    for path, data in sorted(files.items()):
        digest.update(f"{len(path)}:{path}:".encode())
        digest.update(b"-" if data is None else b"%d:" % len(data) + data)
    return (repo.lower(), branch, base_sha, digest.hexdigest())


def _tree_entry(base: SnapshotEntry | None, path: str, data: bytes | None) -> dict[str, Any]:
    path = path.strip("/")
    if data is None:
        return {"path": path, "mode": "100644", "type": "blob", "sha": None}
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError:
        raise GitHubError(422, f"{path}: only UTF-8 text files can be committed") from None
    return {"path": path, "mode": change_mode(base, path), "type": "blob", "content": content}
