"""Webhook payloads in GitHub's shapes, built from what the fake holds, and signed deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from . import shapes
from .state import Repo, Urls, iso, node_id, now


class PayloadMixin:
    """The host class provides `repo`, `_urls`, `_pull_json`, `_check_run_json`, `_lock`, ..."""

    def _envelope(self, r: Repo, sender: str, action: str | None) -> dict[str, Any]:
        u: Urls = self._urls()  # type: ignore[attr-defined]
        body: dict[str, Any] = {"action": action} if action else {}
        body["repository"] = {**shapes.repository(u, r), "custom_properties": {}}
        if r.owner_type == "Organization":
            oid = shapes.user_id(r.owner)
            api = f"{u.api}/orgs/{r.owner}"
            body["organization"] = {
                "login": r.owner,
                "id": oid,
                "node_id": node_id("Organization", oid),
                "url": api,
                "repos_url": f"{api}/repos",
                "events_url": f"{api}/events",
                "hooks_url": f"{api}/hooks",
                "issues_url": f"{api}/issues",
                "members_url": f"{api}/members{{/member}}",
                "public_members_url": f"{api}/public_members{{/member}}",
                "avatar_url": f"https://avatars.githubusercontent.com/u/{oid}?v=4",
                "description": None,
            }
        body["sender"] = shapes.user(u, sender)
        body["installation"] = {
            "id": r.installation_id,
            "node_id": node_id("Installation", r.installation_id),
        }
        return body

    def payload_issue_comment(
        self,
        repo: str,
        number: int,
        user: str,
        body: str,
        action: str = "created",
        comment_id: int | None = None,
    ) -> dict[str, Any]:
        """`issue_comment` event. "created" without `comment_id` posts the comment first (as
        GitHub would have); "edited" updates `comment_id` and carries `changes.body.from`;
        "deleted" removes it."""
        with self._lock:  # type: ignore[attr-defined]
            r: Repo = self.repo(repo)  # type: ignore[attr-defined]
            u: Urls = self._urls()  # type: ignore[attr-defined]
            changes = None
            if comment_id is None:
                comment_id = self._add_comment(r, number, user, body, via_app=False)  # type: ignore[attr-defined]
            elif action == "edited":
                c = r.comments[comment_id]
                changes = {"body": {"from": c.body}}
                c.body, c.updated_at = body, now()
            c = r.comments[comment_id]
            payload = self._envelope(r, user, action)
            payload["issue"] = shapes.issue(u, r, r.issues[number])
            payload["comment"] = shapes.comment(u, r, c, self.app_info)  # type: ignore[attr-defined]
            if changes:
                payload["changes"] = changes
            if action == "deleted":
                del r.comments[comment_id]
            return _ordered(payload, ["action", "issue", "comment", "changes"])

    def payload_pull_request(
        self, repo: str, number: int, action: str, sender: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """`pull_request` event (opened, synchronize, closed, reopened, edited, labeled, ...);
        `extra` adds action-specific keys (e.g. before=, after=, label=)."""
        with self._lock:  # type: ignore[attr-defined]
            r: Repo = self.repo(repo)  # type: ignore[attr-defined]
            i = r.issues[number]
            payload = self._envelope(r, sender or i.user, action)
            payload["number"] = number
            payload["pull_request"] = self._pull_json(self._urls(), r, i)  # type: ignore[attr-defined]
            payload.update(extra)
            return _ordered(payload, ["action", "number", "pull_request"])

    def payload_pull_request_review(
        self, repo: str, number: int, review_id: int, action: str = "submitted"
    ) -> dict[str, Any]:
        """`pull_request_review` event for a review added with `add_review`."""
        with self._lock:  # type: ignore[attr-defined]
            r: Repo = self.repo(repo)  # type: ignore[attr-defined]
            u: Urls = self._urls()  # type: ignore[attr-defined]
            i = r.issues[number]
            rv = next(x for x in i.pull.reviews if x.id == review_id)
            payload = self._envelope(r, rv.user, action)
            review = shapes.review(u, r, number, rv)
            review["submitted_at"] = iso(rv.submitted_at)
            payload["review"] = review
            payload["pull_request"] = self._pull_json(u, r, i, simple=True)  # type: ignore[attr-defined]
            return _ordered(payload, ["action", "review", "pull_request"])

    def _suite(
        self, r: Repo, sha: str, app: dict[str, Any], status: str, conclusion: str | None
    ) -> dict[str, Any]:
        u: Urls = self._urls()  # type: ignore[attr-defined]
        info = r.git.commit_info(sha)
        assert info is not None
        branch = next(
            (
                ref[11:]
                for ref, s in r.git.refs().items()
                if s == sha and ref.startswith("refs/heads/")
            ),
            None,
        )
        sid = self._suite_id(r, sha)  # type: ignore[attr-defined]
        prs = [
            shapes.pull_minimal(u, r, i)
            for i in r.issues.values()
            if i.pull and i.state == "open" and i.pull.head_sha == sha
        ]
        return {
            "id": sid,
            "node_id": node_id("CheckSuite", sid),
            "head_branch": branch,
            "head_sha": sha,
            "status": status,
            "conclusion": conclusion,
            "url": f"{u.api}/repos/{r.full_name}/check-suites/{sid}",
            "before": info.parents[0] if info.parents else "0" * 40,
            "after": sha,
            "pull_requests": prs,
            "app": shapes.app(u, app),
            "created_at": iso(info.committer.date),
            "updated_at": iso(now()),
            "latest_check_runs_count": sum(1 for c in r.check_runs.values() if c.head_sha == sha),
            "check_runs_url": f"{u.api}/repos/{r.full_name}/check-suites/{sid}/check-runs",
            "head_commit": {
                "id": sha,
                "tree_id": info.tree,
                "message": info.message,
                "timestamp": iso(info.committer.date),
                "author": {"name": info.author.name, "email": info.author.email},
                "committer": {"name": info.committer.name, "email": info.committer.email},
            },
        }

    def payload_check_run(
        self, repo: str, check_run_id: int, action: str = "completed", sender: str | None = None
    ) -> dict[str, Any]:
        with self._lock:  # type: ignore[attr-defined]
            r: Repo = self.repo(repo)  # type: ignore[attr-defined]
            c = r.check_runs[check_run_id]
            payload = self._envelope(r, sender or f"{c.app['slug']}[bot]", action)
            run = self._check_run_json(self._urls(), r, c)  # type: ignore[attr-defined]
            run["check_suite"] = self._suite(r, c.head_sha, c.app, c.status, c.conclusion)
            payload["check_run"] = run
            return _ordered(payload, ["action", "check_run"])

    def payload_check_suite(
        self,
        repo: str,
        sha: str,
        action: str = "completed",
        conclusion: str | None = "success",
        app_slug: str = "ci",
    ) -> dict[str, Any]:
        from .scenario import other_app

        with self._lock:  # type: ignore[attr-defined]
            r: Repo = self.repo(repo)  # type: ignore[attr-defined]
            app = self.app_info if app_slug == self.app_slug else other_app(app_slug)  # type: ignore[attr-defined]
            payload = self._envelope(r, f"{app_slug}[bot]", action)
            status = "completed" if action == "completed" else "queued"
            payload["check_suite"] = self._suite(
                r, sha, app, status, conclusion if status == "completed" else None
            )
            return _ordered(payload, ["action", "check_suite"])

    def payload_status(self, repo: str, status_id: int) -> dict[str, Any]:
        """`status` event for a status added with `set_status`."""
        with self._lock:  # type: ignore[attr-defined]
            r: Repo = self.repo(repo)  # type: ignore[attr-defined]
            u: Urls = self._urls()  # type: ignore[attr-defined]
            s = next(x for x in r.statuses if x.id == status_id)
            commit = self._commit_json(u, r, s.sha, git=False)  # type: ignore[attr-defined]
            branches = [
                {
                    "name": ref[11:],
                    "commit": {"sha": sha, "url": f"{u.api}/repos/{r.full_name}/commits/{sha}"},
                    "protected": False,
                }
                for ref, sha in sorted(r.git.refs().items())
                if ref.startswith("refs/heads/") and sha == s.sha
            ]
            payload = {
                "id": s.id,
                "sha": s.sha,
                "name": r.full_name,
                "target_url": s.target_url,
                "avatar_url": None,
                "context": s.context,
                "description": s.description,
                "state": s.state,
                "commit": commit,
                "branches": branches,
                "created_at": iso(s.created_at),
                "updated_at": iso(s.created_at),
            }
            payload.update(self._envelope(r, s.creator, None))
            return payload


def webhook_request(
    event: str, payload: dict[str, Any], secret: str
) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a signed delivery, as GitHub's hookshot sends it."""
    body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/fake",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "123456",
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-Hub-Signature-256": f"sha256={signature}",
    }
    return headers, body


def _ordered(payload: dict[str, Any], first: list[str]) -> dict[str, Any]:
    head = {k: payload[k] for k in first if k in payload}
    return {**head, **{k: v for k, v in payload.items() if k not in head}}
