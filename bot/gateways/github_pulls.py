"""Pull requests, reviews, merges, labels, and who may act (permissions, teams)."""

from __future__ import annotations

from github.GithubException import GithubException

from bot.core.github_port import (
    BaseModifiedError,
    MergeConflictError,
    MergeNotAllowedError,
    PullRequestInfo,
    ReviewInfo,
    login_of,
)
from bot.gateways.github_base import PERMISSIONS, ClientBase, _operation, _repo_path, _split
from bot.gateways.github_http import (
    error_message,
    quote,
)


class PullRequests(ClientBase):
    """Pull requests and the people around them."""

    @_operation
    def find_open_pr(self, repo: str, branch: str) -> PullRequestInfo | None:
        return self._newest_pr(repo, branch, "open")

    @_operation
    def latest_pr(self, repo: str, branch: str) -> PullRequestInfo | None:
        """The newest PR from `branch` in any state (was our promotion merged already?)."""
        return self._newest_pr(repo, branch, "all")

    def _newest_pr(self, repo: str, branch: str, state: str) -> PullRequestInfo | None:
        owner, _ = _split(repo)
        data = self._get(
            f"{_repo_path(repo)}/pulls", state=state, head=f"{owner}:{branch}", per_page=1
        )
        return PullRequestInfo.from_api(data[0]) if data else None

    @_operation
    def create_pr(
        self, repo: str, *, branch: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequestInfo:
        payload = {"title": title, "head": branch, "base": base, "body": body, "draft": draft}
        try:
            _, data = self._request("POST", f"{_repo_path(repo)}/pulls", body=payload)
        except GithubException as exc:
            if exc.status == 422 and "pull request already exists" in error_message(exc).lower():
                existing = self.find_open_pr(repo, branch)
                if existing is not None:
                    return existing
            raise
        return PullRequestInfo.from_api(data)

    @_operation
    def get_pr(self, repo: str, number: int) -> PullRequestInfo:
        return PullRequestInfo.from_api(self._get(f"{_repo_path(repo)}/pulls/{int(number)}"))

    @_operation
    def update_pr(
        self,
        repo: str,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        current: PullRequestInfo | None = None,
    ) -> PullRequestInfo:
        """Change title/body; no write when they already match (pass current to save a GET)."""
        if current is None or current.number != number:
            current = self.get_pr(repo, number)
        patch: dict[str, str] = {}
        if title is not None and title != current.title:
            patch["title"] = title
        if body is not None and body != current.body:
            patch["body"] = body
        if not patch:
            return current
        _, data = self._request("PATCH", f"{_repo_path(repo)}/pulls/{int(number)}", body=patch)
        return PullRequestInfo.from_api(data)

    @_operation
    def close_pr(self, repo: str, number: int) -> None:
        self._request("PATCH", f"{_repo_path(repo)}/pulls/{int(number)}", body={"state": "closed"})

    @_operation
    def list_open_prs(
        self, repo: str, head_prefix: str = "gitops-bot/", *, include_forks: bool = False
    ) -> list[PullRequestInfo]:
        """Open PRs whose head branch name starts with head_prefix, from branches of repo
        itself unless include_forks."""
        out = []
        for data in self._paginate(f"{_repo_path(repo)}/pulls", {"state": "open"}):
            pr = PullRequestInfo.from_api(data)
            own = pr.head_repo.lower() == repo.lower()
            if pr.head_ref.startswith(head_prefix) and (own or include_forks):
                out.append(pr)
        return out

    @_operation
    def pr_files(self, repo: str, number: int) -> list[str]:
        """Paths the PR touches, including the old path of renamed files."""
        out: dict[str, None] = {}
        for item in self._paginate(f"{_repo_path(repo)}/pulls/{int(number)}/files"):
            out[str(item["filename"])] = None
            if item.get("previous_filename"):
                out[str(item["previous_filename"])] = None
        return list(out)

    @_operation
    def reviews(self, repo: str, number: int) -> list[ReviewInfo]:
        return [
            ReviewInfo(
                id=int(item["id"]),
                user=login_of(item.get("user")),
                state=str(item.get("state") or ""),
                commit_id=str(item.get("commit_id") or ""),
                submitted_at=item.get("submitted_at"),
            )
            for item in self._paginate(f"{_repo_path(repo)}/pulls/{int(number)}/reviews")
        ]

    @_operation
    def merge_pr(
        self,
        repo: str,
        number: int,
        *,
        sha: str,
        method: str,
        title: str | None = None,
        message: str | None = None,
    ) -> str:
        """Merge only if the head is still sha; returns the merge commit sha."""
        payload: dict[str, str] = {"sha": sha, "merge_method": method}
        if title is not None:
            payload["commit_title"] = title
        if message is not None:
            payload["commit_message"] = message
        try:
            _, data = self._request(
                "PUT", f"{_repo_path(repo)}/pulls/{int(number)}/merge", body=payload
            )
        except GithubException as exc:
            text = error_message(exc)
            if exc.status == 409:
                raise MergeConflictError(409, text) from None
            if exc.status == 405 and "base branch was modified" in text.lower():
                raise BaseModifiedError(405, text) from None
            if exc.status == 405:
                raise MergeNotAllowedError(405, text) from None
            raise
        return str(data["sha"])

    @_operation
    def add_labels(self, repo: str, number: int, labels: list[str] | tuple[str, ...]) -> None:
        if labels:
            self._request(
                "POST",
                f"{_repo_path(repo)}/issues/{int(number)}/labels",
                body={"labels": list(labels)},
            )

    @_operation
    def permission(self, repo: str, user: str) -> str:
        """admin | maintain | write | triage | read | none."""
        try:
            data = self._get(f"{_repo_path(repo)}/collaborators/{quote(user)}/permission")
        except GithubException as exc:
            if exc.status == 404:
                return "none"
            raise
        role = str(data.get("role_name") or "").lower()
        if role in PERMISSIONS:
            return role
        legacy = str(data.get("permission") or "none").lower()  # custom roles: their base
        return legacy if legacy in PERMISSIONS else "none"

    @_operation
    def is_team_member(self, org: str, team_slug: str, user: str) -> bool:
        try:
            data = self._get(
                f"/orgs/{quote(org)}/teams/{quote(team_slug)}/memberships/{quote(user)}"
            )
        except GithubException as exc:
            if exc.status == 404:
                return False
            raise
        return bool(isinstance(data, dict) and data.get("state") == "active")
