"""Issue comments (found again by hidden marker) and reactions."""

from __future__ import annotations

from collections.abc import Iterator

from github.GithubException import GithubException

from bot.core.github_port import (
    CommentInfo,
    login_of,
)
from bot.gateways.github_base import ClientBase, _operation, _repo_path


class Comments(ClientBase):
    """Comments the bot owns, updated in place."""

    def _comments(self, repo: str, number: int) -> Iterator[CommentInfo]:
        for item in self._paginate(f"{_repo_path(repo)}/issues/{int(number)}/comments"):
            yield CommentInfo(
                id=int(item["id"]),
                author=login_of(item.get("user")),
                body=str(item.get("body") or ""),
                html_url=str(item.get("html_url") or ""),
            )

    def _ours(self, comment: CommentInfo) -> bool:
        """Written by this app; without a known slug, by some app (never a human)."""
        login = self.app.bot_login
        if login is None:
            return comment.author.endswith("[bot]")
        return comment.author.lower() == login.lower()

    @_operation
    def list_comments(self, repo: str, number: int) -> list[CommentInfo]:
        return list(self._comments(repo, number))

    @_operation
    def upsert_comment(
        self, repo: str, number: int, marker: str, body: str, *, absent: bool = False
    ) -> int:
        """Update our comment holding marker (only if its body differs) or create it.
        `absent`: the caller knows there is none (a PR this job opened): no listing."""
        if marker not in body:
            body = f"{marker}\n{body}"  # the marker is how the next run finds this comment
        if absent and self._first_try("comment", repo.lower(), number, marker):
            _, data = self._request(
                "POST", f"{_repo_path(repo)}/issues/{int(number)}/comments", body={"body": body}
            )
            return int(data["id"])
        for comment in self._comments(repo, number):
            if marker in comment.body and self._ours(comment):
                if comment.body != body:
                    self._request(
                        "PATCH",
                        f"{_repo_path(repo)}/issues/comments/{comment.id}",
                        body={"body": body},
                    )
                return comment.id
        _, data = self._request(
            "POST", f"{_repo_path(repo)}/issues/{int(number)}/comments", body={"body": body}
        )
        return int(data["id"])

    @_operation
    def delete_comments(
        self, repo: str, number: int, marker_prefix: str, keep: set[int]
    ) -> list[int]:
        """Delete our comments containing marker_prefix except those in keep; returns ids."""
        doomed = [
            c.id
            for c in self._comments(repo, number)
            if marker_prefix in c.body and c.id not in keep and self._ours(c)
        ]
        for comment_id in doomed:
            try:
                self._request("DELETE", f"{_repo_path(repo)}/issues/comments/{comment_id}")
            except GithubException as exc:
                if exc.status != 404:
                    raise
        return doomed

    @_operation
    def add_reaction(self, repo: str, comment_id: int, content: str = "eyes") -> None:
        self._request(
            "POST",
            f"{_repo_path(repo)}/issues/comments/{int(comment_id)}/reactions",
            body={"content": content},
        )
