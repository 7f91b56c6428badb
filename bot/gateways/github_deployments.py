"""GitHub deployments of merged promotions: one per merge commit and environment, statuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.github_port import login_of
from bot.gateways.github_base import ClientBase, _operation, _repo_path
from bot.gateways.github_http import call_with_retries

DEPLOY_TASK = "deploy"


def _short(text: str, limit: int) -> str:
    """One line of at most `limit` characters (deployment descriptions allow 140)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Deployments(ClientBase):
    """This app's deployments and their statuses."""

    def ensure_deployment(
        self,
        repo: str,
        *,
        sha: str,
        environment: str,
        payload: Mapping[str, Any],
        description: str,
        production: bool,
        look_first: bool,
    ) -> int:
        """The id of this app's deployment of `sha` to `environment`, created if needed.

        `look_first`: an earlier attempt may have created it (its id was never recorded), so
        list before creating. A retried attempt always looks first: the POST that failed
        in transit may have landed."""
        looked = {"first": look_first}

        def attempt() -> int:
            if looked["first"]:
                found = self._our_deployment(repo, sha, environment)
                if found is not None:
                    return found
            looked["first"] = True
            body = {
                "ref": sha,
                "task": DEPLOY_TASK,
                "environment": environment,
                "auto_merge": False,  # the merge commit is what was approved: deploy it as is
                "required_contexts": [],  # the approval gate already judged the checks
                "payload": dict(payload),
                "description": _short(description, 140),
                "production_environment": production,
                "transient_environment": False,
            }
            _, data = self._request("POST", f"{_repo_path(repo)}/deployments", body=body)
            return int(data["id"])

        return call_with_retries(
            attempt,
            what="ensure_deployment",
            max_retries=self.max_retries,
            sleep=self._sleep,
            backoff=self.backoff,
            on_unauthorized=self._auth.invalidate,
        )

    def _our_deployment(self, repo: str, sha: str, environment: str) -> int | None:
        for item in self._paginate(
            f"{_repo_path(repo)}/deployments",
            {"sha": sha, "environment": environment, "task": DEPLOY_TASK},
        ):
            app = item.get("performed_via_github_app") or {}
            creator = login_of(item.get("creator"))
            if str(app.get("id")) == str(self.app.auth.app_id) or (
                self.app.bot_login and creator.lower() == self.app.bot_login.lower()
            ):
                return int(item["id"])
        return None

    @_operation
    def set_deployment_status(
        self,
        repo: str,
        deployment_id: int,
        state: str,
        *,
        description: str = "",
        log_url: str | None = None,
        environment_url: str | None = None,
        auto_inactive: bool | None = None,
    ) -> None:
        body: dict[str, Any] = {"state": state, "description": _short(description, 140)}
        if log_url:
            body["log_url"] = log_url
        if environment_url:
            body["environment_url"] = environment_url
        if auto_inactive is not None:
            body["auto_inactive"] = auto_inactive
        self._request(
            "POST", f"{_repo_path(repo)}/deployments/{int(deployment_id)}/statuses", body=body
        )

    @_operation
    def deployment_states(self, repo: str, deployment_id: int) -> list[str]:
        """The deployment's statuses, newest first."""
        return [
            str(item.get("state") or "")
            for item in self._paginate(
                f"{_repo_path(repo)}/deployments/{int(deployment_id)}/statuses"
            )
        ]
