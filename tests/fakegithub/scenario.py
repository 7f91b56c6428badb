"""Test-side helpers that act as humans and other apps on the fake GitHub, and read its state."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from . import shapes
from .gitrepo import GitRepo, Person
from .state import CheckRun, Issue, Repo, Review, Status, Urls, now

PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")
REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")


def other_app(slug: str) -> dict[str, Any]:
    return {"id": shapes.user_id(slug) % 1_000_000, "slug": slug, "name": slug}


class ScenarioMixin:
    """The host class provides the state (`repos`, `teams`, `_lock`, `_id`, ...)."""

    # -- setup -----------------------------------------------------------------------------

    def create_repo(
        self,
        full_name: str,
        source_dir: Path | None = None,
        *,
        files: dict[str, bytes] | None = None,
        default_branch: str = "main",
        installation_id: int | None = None,
        owner_type: str = "Organization",
        private: bool = True,
        author: str = "octo-admin",
    ) -> Repo:
        """A repository whose first commit on `default_branch` holds `source_dir` and/or `files`."""
        owner, name = full_name.split("/")
        with self._lock:  # type: ignore[attr-defined]
            rid = self._id()  # type: ignore[attr-defined]
            git = GitRepo(self.root / "repos" / f"{owner}__{name}.git")  # type: ignore[attr-defined]
            repo = Repo(
                owner=owner, name=name, id=rid, git=git, default_branch=default_branch,
                installation_id=installation_id or 50_000_000 + rid, owner_type=owner_type,
                private=private,
            )  # fmt: skip
            self.repos[full_name.lower()] = repo  # type: ignore[attr-defined]
            content: dict[str, bytes | None] = {}
            if source_dir is not None:
                for path in sorted(Path(source_dir).rglob("*")):
                    if path.is_file() and ".git" not in path.relative_to(source_dir).parts:
                        content[path.relative_to(source_dir).as_posix()] = path.read_bytes()
            content.update(files or {})
            self.push_commit(full_name, default_branch, content, "Initial commit", author)
            return repo

    def set_permission(self, repo: str, user: str, perm: str) -> None:
        """Collaborator role: admin | maintain | write | triage | read | none."""
        assert perm in PERMISSIONS, perm
        with self._lock:  # type: ignore[attr-defined]
            self.repo(repo).permissions[user] = perm  # type: ignore[attr-defined]

    def add_team_member(self, org: str, team: str, user: str, role: str = "member") -> None:
        with self._lock:  # type: ignore[attr-defined]
            self.teams.setdefault((org.lower(), team.lower()), {})[user] = role  # type: ignore[attr-defined]

    def installation_id(self, repo: str) -> int:
        return self.repo(repo).installation_id  # type: ignore[attr-defined,no-any-return]

    # -- humans and other apps acting ------------------------------------------------------

    def push_commit(
        self,
        repo: str,
        branch: str,
        files: dict[str, bytes | None],
        message: str = "Update files",
        author: str = "alice",
        *,
        from_ref: str | None = None,
    ) -> str:
        """A human push: one commit on `branch` (created from `from_ref` or the default branch
        when missing) changing `files` (None deletes). Returns the new sha."""
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            parent = r.git.rev_parse(f"refs/heads/{branch}")
            if parent is None and from_ref is not None:
                parent = self._resolve(r, from_ref)  # type: ignore[attr-defined]
            if parent is None:
                parent = r.git.rev_parse(f"refs/heads/{r.default_branch}")
            base_tree = r.git.tree_of(parent) if parent else None
            changes = [
                (path, "100644", r.git.hash_blob(data) if data is not None else None)
                for path, data in files.items()
            ]
            tree = r.git.build_tree(base_tree, changes)
            person = Person(author, f"{author}@users.example.com", now())
            r.logins_by_email[person.email] = author
            sha = r.git.commit_tree(tree, [parent] if parent else [], message, person, person)
            r.git.update_ref(f"refs/heads/{branch}", sha)
            return sha

    def open_pr(
        self,
        repo: str,
        head: str,
        base: str | None = None,
        title: str = "Human change",
        body: str | None = "",
        user: str = "alice",
        draft: bool = False,
    ) -> int:
        """A PR opened by a human; returns its number."""
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            return self._new_pull(r, head, base or r.default_branch, title, body, user, draft)  # type: ignore[attr-defined,no-any-return]

    def edit_pr_body(self, repo: str, number: int, body: str) -> None:
        """Anyone with write access may edit a PR's description (no event is sent here)."""
        with self._lock:  # type: ignore[attr-defined]
            i = self.repo(repo).issues[number]  # type: ignore[attr-defined]
            i.body, i.updated_at = body, now()

    def open_issue(self, repo: str, title: str, body: str = "", user: str = "alice") -> int:
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            t = now()
            number = r.next_number()
            r.issues[number] = Issue(number, self._id(), title, body, user, t, t)  # type: ignore[attr-defined]
            return number

    def add_comment(self, repo: str, number: int, user: str, body: str) -> int:
        """A human comment (e.g. `/promote ...`); returns the comment id."""
        with self._lock:  # type: ignore[attr-defined]
            return self._add_comment(self.repo(repo), number, user, body, via_app=False)  # type: ignore[attr-defined,no-any-return]

    def add_review(
        self,
        repo: str,
        number: int,
        user: str,
        state: str,
        commit_id: str | None = None,
        body: str = "",
    ) -> int:
        """A submitted review (on the current head unless `commit_id`); returns its id."""
        assert state in REVIEW_STATES, state
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            i = r.issues[number]
            self._refresh(r, i)  # type: ignore[attr-defined]
            rv = Review(self._id(), user, state, body, commit_id or i.pull.head_sha, now())  # type: ignore[attr-defined]
            i.pull.reviews.append(rv)
            return rv.id

    def dismiss_review(self, repo: str, number: int, review_id: int) -> None:
        with self._lock:  # type: ignore[attr-defined]
            for rv in self.repo(repo).issues[number].pull.reviews:  # type: ignore[attr-defined]
                if rv.id == review_id:
                    rv.state = "DISMISSED"

    def add_check_run(
        self,
        repo: str,
        sha: str,
        name: str,
        status: str = "completed",
        conclusion: str | None = "success",
        app_slug: str = "ci",
    ) -> int:
        """A check run created by another app (`app_slug`); returns its id."""
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            app = self.app_info if app_slug == self.app_slug else other_app(app_slug)  # type: ignore[attr-defined]
            t = now()
            c = CheckRun(
                self._id(), self._suite_id(r, sha), sha, name, status,  # type: ignore[attr-defined]
                conclusion if status == "completed" else None, app, t,
                t if status == "completed" else None,
            )  # fmt: skip
            r.check_runs[c.id] = c
            return c.id

    def complete_check_run(self, repo: str, check_run_id: int, conclusion: str = "success") -> None:
        """The app that created a check run reports it finished (its PATCH on GitHub)."""
        with self._lock:  # type: ignore[attr-defined]
            c = self.repo(repo).check_runs[check_run_id]  # type: ignore[attr-defined]
            c.status, c.conclusion, c.completed_at = "completed", conclusion, now()

    def set_status(
        self,
        repo: str,
        sha: str,
        context: str,
        state: str,
        description: str | None = None,
        target_url: str | None = None,
        creator: str = "ci-bot",
    ) -> int:
        """A commit status (error | failure | pending | success); returns its id."""
        assert state in ("error", "failure", "pending", "success"), state
        with self._lock:  # type: ignore[attr-defined]
            s = Status(self._id(), sha, state, context, description, target_url, creator, now())  # type: ignore[attr-defined]
            self.repo(repo).statuses.append(s)  # type: ignore[attr-defined]
            return s.id

    def set_mergeable(self, repo: str, number: int, value: bool | str | None) -> None:
        """Force `mergeable` (True/False/None); "auto" computes it with git again."""
        with self._lock:  # type: ignore[attr-defined]
            self.repo(repo).issues[number].pull.mergeable_override = value  # type: ignore[attr-defined]

    def set_draft(self, repo: str, number: int, draft: bool) -> None:
        with self._lock:  # type: ignore[attr-defined]
            self.repo(repo).issues[number].pull.draft = draft  # type: ignore[attr-defined]

    def merge_pr(self, repo: str, number: int, user: str = "alice", method: str = "squash") -> str:
        """A human merges in the UI; returns the merge commit sha."""
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            return self._merge(r, r.issues[number], user, method, None, None, None)  # type: ignore[attr-defined,no-any-return]

    def close_pr(self, repo: str, number: int) -> None:
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            i = r.issues[number]
            self._refresh(r, i)  # type: ignore[attr-defined]
            i.state, i.closed_at = "closed", now()

    def reopen_pr(self, repo: str, number: int) -> None:
        with self._lock:  # type: ignore[attr-defined]
            i = self.repo(repo).issues[number]  # type: ignore[attr-defined]
            assert i.pull is not None and not i.pull.merged
            i.state, i.closed_at = "open", None

    # -- reading state ---------------------------------------------------------------------

    def _urls(self) -> Urls:
        return Urls(self.api_url, self.codeload_url)  # type: ignore[attr-defined]

    def file_at(self, repo: str, ref: str, path: str) -> bytes | None:
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            sha = self._resolve(r, ref)  # type: ignore[attr-defined]
            return r.git.file_at(sha, path) if sha else None

    def branch_sha(self, repo: str, branch: str) -> str | None:
        with self._lock:  # type: ignore[attr-defined]
            return self.repo(repo).git.rev_parse(f"refs/heads/{branch}")  # type: ignore[attr-defined,no-any-return]

    def pr(self, repo: str, number: int) -> dict[str, Any]:
        """The PR as GET /pulls/{number} returns it."""
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            return self._pull_json(self._urls(), r, r.issues[number])  # type: ignore[attr-defined,no-any-return]

    def prs(self, repo: str, state: str = "all") -> list[dict[str, Any]]:
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            return [
                self.pr(repo, n)
                for n, i in sorted(r.issues.items())
                if i.pull and state in ("all", i.state)
            ]

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            return [
                shapes.comment(self._urls(), r, c, self.app_info)  # type: ignore[attr-defined]
                for c in r.comments.values()
                if c.issue_number == number
            ]

    def labels(self, repo: str, number: int) -> list[str]:
        return list(self.repo(repo).issues[number].labels)  # type: ignore[attr-defined]

    def reactions(self, repo: str, comment_id: int) -> list[tuple[str, str]]:
        """(user, content) of every reaction on a comment."""
        return [(x.user, x.content) for x in self.repo(repo).comments[comment_id].reactions]  # type: ignore[attr-defined]

    def check_runs(self, repo: str, sha: str) -> list[dict[str, Any]]:
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            return [
                self._check_run_json(self._urls(), r, c)  # type: ignore[attr-defined]
                for c in r.check_runs.values()
                if c.head_sha == sha
            ]

    def deployments(self, repo: str) -> list[dict[str, Any]]:
        """Every deployment of the repository, oldest first, each with its `statuses` (oldest
        first) as GitHub would list them."""
        with self._lock:  # type: ignore[attr-defined]
            r = self.repo(repo)  # type: ignore[attr-defined]
            u = self._urls()
            app_info = self.app_info  # type: ignore[attr-defined]
            out = []
            for d in sorted(r.deployments.values(), key=lambda d: d.id):
                item = shapes.deployment(u, r, d, app_info)
                item["statuses"] = [
                    shapes.deployment_status(u, r, d, s, app_info) for s in d.statuses
                ]
                out.append(item)
            return out

    def calls_to(self, method: str, path_regex: str) -> list[Any]:
        """Logged calls with this method whose API path matches `path_regex` (re.search)."""
        rx = re.compile(path_regex)
        return [c for c in self.calls if c.method == method.upper() and rx.search(c.path)]  # type: ignore[attr-defined]
