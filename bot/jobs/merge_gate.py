"""The approval gate: keep `gitops-bot/approval` current and merge when the policy allows."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.approval import (
    APPROVAL_CHECK,
    Check,
    MergeDecision,
    PullRequestFacts,
    Review,
    evaluate_merge,
    latest_opinions,
)
from bot.core.errors import TransientError
from bot.core.report import parse_meta
from bot.core.templating import render_template
from bot.core.types import Config, Environment
from bot.gateways.github import BaseModifiedError, MergeConflictError, MergeNotAllowedError
from bot.jobs.replies import upsert_reply

log = logging.getLogger(__name__)

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
MERGED_MARKER = "<!-- gitops-bot:merged -->"
MERGE_BLOCKED_MARKER = "<!-- gitops-bot:merge-blocked -->"


@dataclass(frozen=True)
class GateResult:
    number: int
    decision: MergeDecision | None  # None: not a promotion PR
    merged_sha: str = ""
    message: str = ""


def can_act_for(
    client: Any, repo: str, user: str, environment: Environment | None
) -> tuple[bool, str]:
    """May `user` act on the repo (and promote into / approve for `environment`)?"""
    permission = client.permission(repo, user)
    if permission not in WRITE_PERMISSIONS:
        return (
            False,
            f"@{user} has `{permission}` permission on {repo}; `write` or higher is needed",
        )
    if environment is None:
        return True, ""
    approvals = environment.approvals
    if not approvals.users and not approvals.teams:
        return True, ""
    if user.lower() in {u.lower() for u in approvals.users}:
        return True, ""
    org = repo.split("/")[0]
    for team in approvals.teams:
        if client.is_team_member(org, team, user):
            return True, ""
    allowed = [f"@{u}" for u in approvals.users] + [f"team `{t}`" for t in approvals.teams]
    return (
        False,
        f"@{user} is not among those allowed for {environment.name} ({', '.join(allowed)})",
    )


def eligible_reviewers(
    client: Any, repo: str, reviews: list[Review], environment: Environment
) -> set[str]:
    """Resolve eligibility only for users with an opinion: a handful of API calls at most."""
    eligible = set()
    for user, review in latest_opinions(reviews).items():
        if (
            review.state in ("APPROVED", "CHANGES_REQUESTED")
            and can_act_for(client, repo, review.user, environment)[0]
        ):
            eligible.add(user)
    return eligible


def gather_checks(client: Any, repo: str, sha: str, runs: list[Any] | None = None) -> list[Check]:
    """Check runs (`runs` if already listed) and commit statuses on sha."""
    if runs is None:
        runs = client.check_runs(repo, sha)
    checks = [Check(c.name, c.status, c.conclusion) for c in runs]
    for context, state in client.combined_status(repo, sha):
        if state == "pending":
            checks.append(Check(context, "in_progress", None))
        else:
            checks.append(Check(context, "completed", "success" if state == "success" else state))
    return checks


def publish_gate_check(
    client: Any, repo: str, sha: str, decision: MergeDecision, runs: list[Any] | None = None
) -> None:
    """Create or update the approval check; `runs`: sha's check runs, just listed."""
    text = render_template("approval_check.md.j2", decision=decision)
    known = {} if runs is None else {"known": runs}
    if decision.ready or decision.reasons == ("already merged",):
        client.upsert_check_run(
            repo,
            sha,
            APPROVAL_CHECK,
            status="completed",
            conclusion="success",
            title=decision.summary()[:250],
            summary=text,
            **known,
        )
    else:
        client.upsert_check_run(
            repo,
            sha,
            APPROVAL_CHECK,
            status="in_progress",
            conclusion=None,
            title=decision.summary()[:250],
            summary=text,
            **known,
        )


def evaluate_pr(
    client: Any,
    repo: str,
    number: int,
    config: Config | Callable[[], Config],
    *,
    bot_login: str | None,
    merge: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int = 3,
    on_merged: Callable[[Mapping[str, object], int], object] | None = None,
) -> GateResult:
    """Evaluate the policy for a promotion PR, publish the gate check, merge when ready."""
    for attempt in range(1, max_attempts + 1):
        pr = client.get_pr(repo, number)
        meta = parse_meta(pr.body or "")
        if not meta or pr.head_ref is None or not str(pr.head_ref).startswith("gitops-bot/"):
            return GateResult(number, None, message="not a gitops-bot promotion PR")
        if callable(config):
            config = config()
        environment = config.environment(str(meta.get("env", "")))
        if environment is None:
            return GateResult(
                number, None, message=f"environment {meta.get('env')!r} is no longer configured"
            )
        if pr.merged:
            if pr.author == bot_login and not _has_comment(client, repo, number, MERGED_MARKER):
                # the merge landed but the job died before saying so: say it now, once
                sha = pr.merge_commit_sha or ""
                announce_merge(client, repo, number, meta, environment, config, sha, ())
            return GateResult(
                number, None, merged_sha=pr.merge_commit_sha or "", message="already merged"
            )
        if pr.mergeable is None and attempt < max_attempts:
            sleep(1.0 * attempt)  # GitHub computes mergeability in the background
            continue
        runs = client.check_runs(repo, pr.head_sha)  # for the policy and our own gate check
        reviews = [
            Review(r.user, r.state, r.commit_id, order=index)
            for index, r in enumerate(client.reviews(repo, number))
        ]
        facts = PullRequestFacts(
            number=number,
            head_sha=pr.head_sha,
            state=pr.state,
            merged=pr.merged,
            draft=pr.draft,
            mergeable=pr.mergeable,
            requester=str(meta.get("requester") or ""),
        )
        decision = evaluate_merge(
            facts,
            reviews,
            gather_checks(client, repo, pr.head_sha, runs),
            environment,
            eligible=eligible_reviewers(client, repo, reviews, environment),
            bot_logins=(bot_login,) if bot_login else (),
        )
        publish_gate_check(client, repo, pr.head_sha, decision, runs)
        if not decision.ready or not merge:
            return GateResult(number, decision)
        try:
            sha = client.merge_pr(
                repo,
                number,
                sha=pr.head_sha,
                method=environment.merge_method,
                title=f"{pr.title} (#{number})",
            )
        except MergeConflictError:
            log.info("%s#%s: head moved during merge, re-evaluating", repo, number)
            continue
        except BaseModifiedError:
            raise TransientError(
                f"{repo}#{number}: base branch was modified during merge", retry_after=2.0
            ) from None
        except MergeNotAllowedError as exc:
            landed = client.get_pr(repo, number)
            if not landed.merged:
                upsert_reply(
                    client,
                    repo,
                    number,
                    MERGE_BLOCKED_MARKER,
                    "merge_blocked.md.j2",
                    reason=str(exc),
                )
                return GateResult(number, decision, message=str(exc))
            sha = landed.merge_commit_sha or ""  # our merge landed but its answer was lost
        announce_merge(client, repo, number, meta, environment, config, sha, decision.approvers)
        if on_merged is not None:
            on_merged(meta, number)
        return GateResult(number, decision, merged_sha=sha)
    return GateResult(number, None, message="head kept moving; will re-evaluate on the next event")


def _has_comment(client: Any, repo: str, number: int, marker: str) -> bool:
    return any(marker in (c.body or "") for c in client.list_comments(repo, number))


def announce_merge(
    client: Any,
    repo: str,
    number: int,
    meta: Mapping[str, object],
    environment: Environment,
    config: Config,
    sha: str,
    approvers: tuple[str, ...],
) -> None:
    """The "Deployed" comment: what went where, and what may follow."""
    upsert_reply(
        client,
        repo,
        number,
        MERGED_MARKER,
        "merged.md.j2",
        meta=meta,
        environment=environment,
        merge_sha=sha,
        approvers=approvers,
        next_environments=[
            e.name for e in config.environments if e.promote_from == environment.name
        ],
    )


def find_promotion_prs_for_sha(client: Any, repo: str, sha: str) -> list[int]:
    """Open promotion PRs whose head is `sha` (check and status events name a commit)."""
    return [
        pr.number
        for pr in client.list_open_prs(repo, head_prefix="gitops-bot/")
        if pr.head_sha == sha
    ]
