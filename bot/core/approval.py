"""The merge policy: a pure function of the PR, its reviews, its checks and the config."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from bot.core.types import Environment

APPROVAL_CHECK = "gitops-bot/approval"
GREEN_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})
OPINIONATED = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})


@dataclass(frozen=True)
class Review:
    user: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    commit_id: str
    order: int  # submission order (review id or timestamp): later wins


@dataclass(frozen=True)
class Check:
    name: str  # check-run name or status context
    status: str  # queued | in_progress | completed (statuses: completed)
    conclusion: str | None  # success | failure | neutral | skipped | cancelled | timed_out | ...


@dataclass(frozen=True)
class PullRequestFacts:
    number: int
    head_sha: str
    state: str  # open | closed
    merged: bool
    draft: bool
    mergeable: bool | None  # None: GitHub has not computed it yet
    requester: str  # who asked for the promotion (the bot's record); never counts as approver
    # lower-case logins of whoever opened the PR or pushed to it (the bot aside): authors of
    # the change, who cannot approve it
    authors: frozenset[str] = frozenset()
    rendered: bool = True  # the render of this exact head was published


@dataclass(frozen=True)
class MergeDecision:
    ready: bool
    reasons: tuple[str, ...]  # why not (empty when ready)
    approvers: tuple[str, ...] = ()  # approvals that count
    notes: tuple[str, ...] = field(default=())  # approvals that did not count, and why
    environments: tuple[str, ...] = ()  # whose policies applied (the PR changes their render)
    # may the bot merge once ready without being asked (`/merge`)? Only when every affected
    # environment auto-merges or demands approvals (approving is then the consent to merge).
    unattended: bool = False

    def summary(self) -> str:
        if self.ready:
            if not self.environments:
                return "Ready to merge (no configured environment's render changes)."
            who = ", ".join(f"@{u}" for u in self.approvers) or "no approval required"
            return f"Ready to merge ({who})."
        return "Not ready: " + "; ".join(self.reasons)


def latest_opinions(reviews: Sequence[Review]) -> dict[str, Review]:
    """Each user's latest APPROVED/CHANGES_REQUESTED/DISMISSED review (COMMENTED never counts)."""
    latest: dict[str, Review] = {}
    for review in sorted(reviews, key=lambda r: r.order):
        if review.state in OPINIONATED:
            latest[review.user.lower()] = review
    return latest


def _check_reasons(
    checks: Sequence[Check], required: Collection[str], own_checks: Collection[str]
) -> list[str]:
    relevant = [c for c in checks if c.name not in own_checks]
    by_name: dict[str, list[Check]] = {}
    for check in relevant:
        by_name.setdefault(check.name, []).append(check)
    reasons = [
        f"required check `{name}` has not run on the head commit"
        for name in required
        if name not in by_name
    ]
    for name, runs in sorted(by_name.items()):
        pending = [c for c in runs if c.status != "completed"]
        failed = [
            c for c in runs if c.status == "completed" and c.conclusion not in GREEN_CONCLUSIONS
        ]
        if failed:
            reasons.append(f"check `{name}` is {failed[0].conclusion or 'not successful'}")
        elif pending:
            reasons.append(f"check `{name}` is still {pending[0].status.replace('_', ' ')}")
    return reasons


def evaluate_merge(
    pr: PullRequestFacts,
    reviews: Sequence[Review],
    checks: Sequence[Check],
    environments: Sequence[Environment],
    *,
    eligible: Mapping[str, Collection[str]],
    bot_logins: Collection[str] = (),
    own_checks: Collection[str] = (APPROVAL_CHECK,),
) -> MergeDecision:
    """Decide whether `pr` may be merged now, with every reason it may not.

    `environments` are those whose render the PR changes: each one's rules must hold.
    `eligible` maps each environment's name to the reviewers (lower-case logins) whose
    approval counts for it, already resolved from users, teams and repository permission.
    """
    reasons: list[str] = []
    notes: list[str] = []
    if not pr.rendered:
        reasons.append(f"the diff of the head commit {pr.head_sha[:7]} is not rendered yet")
    if pr.merged:
        reasons.append("already merged")
    elif pr.state != "open":
        reasons.append("the pull request is closed")
    if pr.draft:
        reasons.append("the pull request is a draft")
    if pr.mergeable is False:
        reasons.append("GitHub reports merge conflicts with the base branch")
    elif pr.mergeable is None:
        reasons.append("GitHub has not finished computing mergeability")

    eligible_anywhere = {u.lower() for names in eligible.values() for u in names}
    requester = pr.requester.lower()
    bots = {b.lower() for b in bot_logins}
    valid: list[Review] = []  # approvals of the head by someone who may approve something
    for user, review in sorted(latest_opinions(reviews).items()):
        name = review.user
        if review.state == "CHANGES_REQUESTED":
            if user in eligible_anywhere:
                reasons.append(f"@{name} requested changes")
            else:
                notes.append(f"@{name} requested changes but is not an eligible reviewer")
            continue
        if review.state != "APPROVED":
            continue
        if requester and user == requester:
            notes.append(f"@{name} asked for this promotion and cannot approve it")
        elif user in bots:
            notes.append(f"@{name} is the bot and cannot approve")
        elif user in pr.authors:
            notes.append(f"@{name} opened or pushed to this pull request and cannot approve it")
        elif user not in eligible_anywhere:
            where = ", ".join(e.name for e in environments) or "this repository"
            notes.append(f"@{name} is not an eligible reviewer for {where}")
        elif review.commit_id != pr.head_sha:
            notes.append(f"@{name} approved an older commit ({review.commit_id[:7]})")
        else:
            valid.append(review)

    approvers: list[str] = []
    several = len(environments) > 1
    for environment in environments:
        allowed = {u.lower() for u in eligible.get(environment.name, ())}
        counted = [r.user for r in valid if r.user.lower() in allowed]
        approvers += [u for u in counted if u not in approvers]
        required = environment.approvals.required
        if len(counted) < required:
            prefix = f"{environment.name}: " if several else ""
            reasons.append(
                f"{prefix}{len(counted)} of {required} required approval(s) on the head commit "
                f"{pr.head_sha[:7]}{_eligible_text(environment)}"
            )
    required_checks = [c for e in environments for c in e.required_checks]
    reasons += _check_reasons(checks, dict.fromkeys(required_checks), own_checks)
    return MergeDecision(
        ready=not reasons,
        reasons=tuple(reasons),
        approvers=tuple(approvers),
        notes=tuple(notes),
        environments=tuple(e.name for e in environments),
        unattended=bool(environments)
        and all(e.auto_merge or e.approvals.required > 0 for e in environments),
    )


def _eligible_text(environment: Environment) -> str:
    parts = [f"@{u}" for u in environment.approvals.users]
    parts += [f"team {t}" for t in environment.approvals.teams]
    return f" (from {', '.join(parts)})" if parts else ""
