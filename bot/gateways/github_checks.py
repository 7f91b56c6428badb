"""Check runs (one per name per head, this app's only) and commit statuses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.core.github_port import (
    CheckInfo,
)
from bot.gateways.github_base import (
    TEXT_LIMIT,
    TITLE_LIMIT,
    ClientBase,
    _operation,
    _repo_path,
    truncate,
)
from bot.gateways.github_http import (
    quote,
)


class Checks(ClientBase):
    """The bot's check runs and what others report on a commit."""

    @_operation
    def upsert_check_run(
        self,
        repo: str,
        head_sha: str,
        name: str,
        *,
        status: str,
        conclusion: str | None = None,
        title: str,
        summary: str,
        text: str | None = None,
        details_url: str | None = None,
        known: list[CheckInfo] | None = None,
    ) -> int:
        """Update this app's check run `name` on head_sha (no write if unchanged) or create it.

        `known`: every check run on head_sha as `check_runs` just listed them (saves the lookup).
        """
        output: dict[str, str] = {
            "title": truncate(title, TITLE_LIMIT),
            "summary": truncate(summary, TEXT_LIMIT),
        }
        if text is not None:
            output["text"] = truncate(text, TEXT_LIMIT)
        payload: dict[str, Any] = {"name": name, "status": status, "output": output}
        if conclusion is not None:
            payload["conclusion"] = conclusion
        if details_url is not None:
            payload["details_url"] = details_url
        base_path = _repo_path(repo)
        if known is not None and (known or self._first_try("check", repo.lower(), head_sha, name)):
            existing = self._our_check_run((c.raw for c in known), name, by_app_id=True)
        else:
            existing = self._find_check_run(repo, head_sha, name)
        # GitHub keeps a completed run's conclusion when its status is set back: a verdict
        # that is no longer true gets a new run (the newest of a name is the one that counts)
        reopened = existing is not None and existing.get("status") == "completed"
        if existing is None or (reopened and status != "completed"):
            _, data = self._request(
                "POST", f"{base_path}/check-runs", body={**payload, "head_sha": head_sha}
            )
            self._learn_slug(data)
            return int(data["id"])
        if not _check_run_differs(existing, payload):
            return int(existing["id"])
        _, data = self._request(
            "PATCH", f"{base_path}/check-runs/{int(existing['id'])}", body=payload
        )
        return int(data["id"])

    def _find_check_run(self, repo: str, sha: str, name: str) -> dict[str, Any] | None:
        runs = self._paginate(
            f"{_repo_path(repo)}/commits/{quote(sha)}/check-runs",
            {"check_name": name, "filter": "all", "app_id": self.app.auth.app_id},
            key="check_runs",
        )
        return self._our_check_run(runs, name, by_app_id=False)

    def _our_check_run(
        self, runs: Iterable[Mapping[str, Any]], name: str, *, by_app_id: bool
    ) -> dict[str, Any] | None:
        """This app's run called name (by_app_id: the list holds every app's runs)."""
        slug = self.app.app_slug
        ours = []
        for run in runs:
            app = run.get("app") or {}
            if by_app_id and str(app.get("id")) != str(self.app.auth.app_id):
                continue
            if run.get("name") == name and (slug is None or app.get("slug") in (None, slug)):
                ours.append(dict(run))
        return max(ours, key=lambda run: int(run.get("id") or 0), default=None)  # the newest

    def _learn_slug(self, check_run: Mapping[str, Any]) -> None:
        slug = (check_run.get("app") or {}).get("slug")
        if slug and not self.app.app_slug:
            self.app.app_slug = str(slug)

    @_operation
    def check_runs(self, repo: str, sha: str) -> list[CheckInfo]:
        return [
            CheckInfo(
                name=str(run.get("name") or ""),
                status=str(run.get("status") or ""),
                conclusion=run.get("conclusion"),
                app_slug=str((run.get("app") or {}).get("slug") or ""),
                raw=run,
            )
            for run in self._paginate(
                f"{_repo_path(repo)}/commits/{quote(sha)}/check-runs", key="check_runs"
            )
        ]

    @_operation
    def combined_status(self, repo: str, sha: str) -> list[tuple[str, str]]:
        return [
            (str(s.get("context") or ""), str(s.get("state") or ""))
            for s in self._paginate(
                f"{_repo_path(repo)}/commits/{quote(sha)}/status", key="statuses"
            )
        ]


def _check_run_differs(existing: Mapping[str, Any], payload: Mapping[str, Any]) -> bool:
    if existing.get("status") != payload["status"]:
        return True
    if (
        payload.get("conclusion") is not None
        and existing.get("conclusion") != payload["conclusion"]
    ):
        return True
    if "details_url" in payload and existing.get("details_url") != payload["details_url"]:
        return True
    have = existing.get("output") or {}
    return any((have.get(k) or "") != v for k, v in payload["output"].items())
