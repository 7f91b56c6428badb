"""The approval gate: keep `gitops-bot/approval` current and merge when the policy allows."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
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
from bot.core.github_port import (
    BaseModifiedError,
    CheckInfo,
    GitHubError,
    GitHubPort,
    MergeConflictError,
    MergeNotAllowedError,
    PeoplePort,
    PullRequestInfo,
)
from bot.core.templating import render_template
from bot.core.types import Config, Environment
from bot.gateways.records import PromotionRecord
from bot.jobs.deployments import (
    MERGED_MARKER,
    NO_DEPLOYMENTS,
    announce,
    ensure_deployment,
    trigger_sync,
)
from bot.jobs.deps import Deps, FreshPr, promotion_of
from bot.jobs.pr_diff import render_pull_request
from bot.jobs.replies import upsert_reply

log = logging.getLogger(__name__)

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
MERGE_BLOCKED_MARKER = "<!-- gitops-bot:merge-blocked -->"
MERGE_REFUSED = "merge-refused"  # a record flag: the merge-blocked comment exists
# a record flag per refused attempt, suffixed with the digest of what it depended on
REFUSED_INPUTS = "merge-refused-inputs:"


@dataclass(frozen=True)
class GateResult:
    number: int
    decision: MergeDecision | None  # None: nothing to decide (merged, closed, unconfigured)
    merged_sha: str = ""
    message: str = ""
    refused: bool = False  # the user who asked to merge may not (message says why)


def can_act_for(
    client: PeoplePort, repo: str, user: str, environment: Environment | None
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


def can_act_for_all(
    client: GitHubPort, repo: str, user: str, environments: Sequence[Environment]
) -> tuple[bool, str]:
    """`can_act_for` every environment (write permission alone when there is none)."""
    if not environments:
        return can_act_for(client, repo, user, None)
    for environment in environments:
        allowed, reason = can_act_for(client, repo, user, environment)
        if not allowed:
            return False, reason
    return True, ""


def eligible_reviewers(
    client: GitHubPort, repo: str, reviews: list[Review], environments: Sequence[Environment]
) -> dict[str, set[str]]:
    """Per environment, who among the reviewers with an opinion may approve for it: a
    handful of API calls at most (permissions and memberships are asked once each)."""
    memo = _MemoClient(client)
    eligible: dict[str, set[str]] = {e.name: set() for e in environments}
    for user, review in latest_opinions(reviews).items():
        if review.state not in ("APPROVED", "CHANGES_REQUESTED"):
            continue
        for environment in environments:
            if can_act_for(memo, repo, review.user, environment)[0]:
                eligible[environment.name].add(user)
    return eligible


class _MemoClient:
    """The two identity questions of `can_act_for`, each asked of GitHub once."""

    def __init__(self, client: GitHubPort) -> None:
        self._client = client
        self._answers: dict[tuple[str, ...], Any] = {}

    def _ask(self, key: tuple[str, ...], ask: Callable[[], Any]) -> Any:
        if key not in self._answers:
            self._answers[key] = ask()
        return self._answers[key]

    def permission(self, repo: str, user: str) -> str:
        return str(
            self._ask(("p", repo, user.lower()), lambda: self._client.permission(repo, user))
        )

    def is_team_member(self, org: str, team: str, user: str) -> bool:
        key = ("t", org, team, user.lower())
        return bool(self._ask(key, lambda: self._client.is_team_member(org, team, user)))


def gather_checks(
    client: GitHubPort, repo: str, sha: str, runs: list[CheckInfo] | None = None
) -> list[Check]:
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
    client: GitHubPort,
    repo: str,
    sha: str,
    decision: MergeDecision,
    runs: list[CheckInfo] | None = None,
    *,
    refused: str = "",
) -> None:
    """Create or update the approval check; `runs`: sha's check runs, just listed.

    `refused`: GitHub's reason for refusing the merge of a ready PR: the check then says
    so and stays pending, so it never claims "ready" for something that cannot merge."""
    text = render_template("approval_check.md.j2", decision=decision, refused=refused)
    done = not refused and (decision.ready or decision.reasons == ("already merged",))
    title = f"Merge refused by GitHub: {refused}" if refused else decision.summary()
    client.upsert_check_run(
        repo,
        sha,
        APPROVAL_CHECK,
        status="completed" if done else "in_progress",
        conclusion="success" if done else None,
        title=title[:250],
        summary=text,
        known=runs,
    )


def evaluate_pr(
    deps: Deps,
    repo: str,
    number: int,
    config: Config | Callable[[], Config],
    *,
    merge: bool = True,
    asked_by: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int = 3,
    fresh: FreshPr | None = None,
) -> GateResult:
    """Apply the policy of every environment the PR changes, publish the approval check,
    and merge when it holds: by itself for its own promotion PRs where every affected
    environment allows it, otherwise only when an eligible user asked (`asked_by`)."""
    client = deps.client
    for attempt in range(1, max_attempts + 1):
        known = fresh if fresh is not None and attempt == 1 else None
        # a fresh PR's commit sits on the base head this job read: a fast-forward,
        # mergeable unless the base moved since (then GitHub refuses and we read again)
        pr = replace(known.pr, mergeable=True) if known else client.get_pr(repo, number)
        promotion = promotion_of(deps, repo, pr)
        if callable(config):
            config = config()
        if pr.merged:
            environment = (
                config.environment(promotion.environment) if promotion is not None else None
            )
            sha = pr.merge_commit_sha or ""
            if promotion is not None and environment is not None:
                # the merge landed but the job died before its deployment and comment were
                # done: finish them now, once (a merge older than deployments has a comment
                # and no record: left alone)
                record = deps.records.deployment(repo, environment.name, sha) if sha else None
                unfinished = record is not None and not (record.deployment_id and record.state)
                if unfinished or not _has_comment(client, repo, number, MERGED_MARKER):
                    announce_merge(deps, repo, number, promotion.meta, environment, config, sha)
            return GateResult(
                number, None, merged_sha=pr.merge_commit_sha or "", message="already merged"
            )
        if pr.state != "open":
            return GateResult(number, None, message="the pull request is closed")
        if promotion is not None and config.environment(promotion.environment) is None:
            return GateResult(
                number,
                None,
                message=f"environment {promotion.environment!r} is no longer configured",
            )
        if pr.mergeable is None and attempt < max_attempts:
            sleep(1.0 * attempt)  # GitHub computes mergeability in the background
            continue
        render = deps.records.render(repo, number, pr.head_sha, pr.base_ref)
        if render is None:  # never approve a head whose diff was not shown: render it now
            render = render_pull_request(deps, repo, pr, config, promotion)
        environments = _affected(config, render.environments, promotion)
        if known is not None:  # nothing can predate a commit and PR made just now
            runs, reviews, checks = [], [], list(known.checks)
        else:
            runs = client.check_runs(repo, pr.head_sha)  # for the policy and our gate check
            reviews = [
                Review(r.user, r.state, r.commit_id, order=index)
                for index, r in enumerate(client.reviews(repo, number))
            ]
            checks = gather_checks(client, repo, pr.head_sha, runs)
        authors = set(deps.records.pushers(repo, number))
        if promotion is None and pr.author:
            authors.add(pr.author.lower())
        authors.discard((deps.bot_login or "").lower())
        facts = PullRequestFacts(
            number=number,
            head_sha=pr.head_sha,
            state=pr.state,
            merged=pr.merged,
            draft=pr.draft,
            mergeable=pr.mergeable,
            requester=promotion.requester if promotion is not None else "",
            authors=frozenset(authors),
        )
        decision = evaluate_merge(
            facts,
            reviews,
            checks,
            environments,
            eligible=eligible_reviewers(client, repo, reviews, environments),
            bot_logins=(deps.bot_login,) if deps.bot_login else (),
        )
        inputs = REFUSED_INPUTS + _merge_inputs(pr, checks, reviews)
        if (
            decision.ready
            and merge
            and asked_by is None
            and deps.records.has_flag(repo, number, inputs)
        ):
            # GitHub refused this very merge, and nothing it could depend on has changed:
            # another attempt would flip the check to "ready" and back (a new check run on
            # GitHub) and fail again. A change, or someone's `/merge`, tries again.
            return GateResult(number, decision, message=_REFUSED_UNCHANGED)
        publish_gate_check(client, repo, pr.head_sha, decision, runs)
        if not decision.ready or not merge:
            return GateResult(number, decision)
        if asked_by is not None:
            allowed, reason = can_act_for_all(client, repo, asked_by, environments)
            if not allowed:
                return GateResult(number, decision, message=reason, refused=True)
        elif not (decision.unattended and _only_bot_commits(deps, repo, pr, promotion)):
            return GateResult(number, decision, message=_WAITING_FOR_MERGE)
        method = _merge_method(config, environments, promotion)
        try:
            sha = client.merge_pr(
                repo, number, sha=pr.head_sha, method=method, title=f"{pr.title} (#{number})"
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
                # one truth: the check stops claiming "ready", the comment says why
                publish_gate_check(client, repo, pr.head_sha, decision, refused=str(exc))
                deps.records.set_flag(repo, number, MERGE_REFUSED)
                deps.records.set_flag(repo, number, inputs)
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
        if deps.records.has_flag(repo, number, MERGE_REFUSED):  # no stale "could not merge"
            upsert_reply(
                client, repo, number, MERGE_BLOCKED_MARKER, "merge_unblocked.md.j2", sha=sha
            )
            deps.records.set_flag(repo, number, MERGE_REFUSED, on=False)
        if promotion is not None:
            environment = config.environment(promotion.environment)
            assert environment is not None  # checked above
            announce_merge(
                deps,
                repo,
                number,
                promotion.meta,
                environment,
                config,
                sha,
                decision.approvers,
                fresh=known is not None,
            )
            if deps.on_merged is not None:
                deps.on_merged(promotion.meta, number)
        return GateResult(number, decision, merged_sha=sha)
    return GateResult(number, None, message="head kept moving; will re-evaluate on the next event")


_REFUSED_UNCHANGED = (
    "GitHub refused the last merge and nothing it depends on has changed since; "
    "fix the cause and comment `/merge`"
)


def _merge_inputs(pr: PullRequestInfo, checks: Sequence[Check], reviews: Sequence[Review]) -> str:
    """A digest of what GitHub's verdict on a merge can depend on, as far as the bot sees
    it: head and base, GitHub's mergeable state (branch protection shows there), every
    check and status but the bot's own approval check (which it flips itself), reviews."""
    parts = [pr.head_sha, pr.base_sha, str(pr.mergeable), pr.mergeable_state]
    parts += sorted(
        f"{c.name}\0{c.status}\0{c.conclusion}" for c in checks if c.name != APPROVAL_CHECK
    )
    parts += sorted(f"{r.user}\0{r.state}\0{r.commit_id}" for r in reviews)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


_WAITING_FOR_MERGE = (
    "the approval requirements are met; an eligible user merges with `/merge` (gitops-bot "
    "merges by itself only its own unchanged promotions into environments that allow it)"
)


def _only_bot_commits(
    deps: Deps, repo: str, pr: PullRequestInfo, promotion: PromotionRecord | None
) -> bool:
    """A promotion PR still holding just what the bot pushed (its commit sits directly on
    the default branch, so a bot head means no one else's commits are in it)."""
    return promotion is not None and deps.records.is_bot_commit(repo, pr.head_sha)


def _affected(
    config: Config, names: Sequence[str], promotion: PromotionRecord | None
) -> list[Environment]:
    """Configured environments whose rules apply: those the render says the PR changes,
    and a promotion's own target."""
    wanted = set(names) | ({promotion.environment} if promotion is not None else set())
    return [e for e in config.environments if e.name in wanted]


def _merge_method(
    config: Config, environments: Sequence[Environment], promotion: PromotionRecord | None
) -> str:
    if promotion is not None:
        target = config.environment(promotion.environment)
        if target is not None:
            return target.merge_method
    methods = {e.merge_method for e in environments}
    return methods.pop() if len(methods) == 1 else "merge"


def _has_comment(client: GitHubPort, repo: str, number: int, marker: str) -> bool:
    return any(marker in (c.body or "") for c in client.list_comments(repo, number))


def announce_merge(
    deps: Deps,
    repo: str,
    number: int,
    meta: Mapping[str, object],
    environment: Environment,
    config: Config,
    sha: str,
    approvers: tuple[str, ...] = (),
    *,
    fresh: bool = False,
) -> None:
    """After a promotion merged: its GitHub deployment (once), then the "Merged" comment.
    `fresh`: the PR was opened by this job, so it holds no such comment yet."""
    record = None
    if sha:
        try:
            record = ensure_deployment(deps, repo, environment, sha, number, meta, approvers)
        except GitHubError as exc:
            if exc.status not in NO_DEPLOYMENTS:
                raise
            # an installation that has not accepted the `deployments` permission yet: the
            # merge is still announced (and followed up); the deployment comes with a rerun
            log.warning("%s#%s: no GitHub deployment (%s): %s", repo, number, exc.status, exc)
        else:
            approvers = approvers or record.approvers
    sync = trigger_sync(deps, repo, environment, record) if record is not None else ""
    announce(
        deps, repo, record, environment, config, number=number, meta=meta, sha=sha,
        approvers=approvers, sync=sync, fresh=fresh,
    )  # fmt: skip


def find_open_prs_for_sha(client: GitHubPort, repo: str, sha: str) -> list[int]:
    """Open PRs of the repository whose head is `sha` (check and status events name a
    commit; the gate applies to every PR, not only the bot's)."""
    return [
        pr.number
        for pr in client.list_open_prs(repo, head_prefix="", include_forks=True)
        if pr.head_sha == sha
    ]
