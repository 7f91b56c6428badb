"""Table-driven tests of the merge policy."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.core.approval import Check, PullRequestFacts, Review, evaluate_merge, latest_opinions
from bot.core.types import Approvals, Environment

HEAD = "a" * 40
OLD = "b" * 40
PRODUCTION = Environment(
    name="production",
    path="k8s/overlays/production",
    approvals=Approvals(required=1, users=("alice", "bob"), teams=("ml-platform",)),
    required_checks=("ci/test",),
)
STAGING = Environment(name="staging", path="k8s/overlays/staging", auto_merge=True)
PR = PullRequestFacts(
    number=7,
    head_sha=HEAD,
    state="open",
    merged=False,
    draft=False,
    mergeable=True,
    requester="carol",
)
GREEN = (
    Check("ci/test", "completed", "success"),
    Check("gitops-bot/render", "completed", "success"),
)
ELIGIBLE = {"alice", "bob", "carol"}  # carol is eligible in general, but she requested this PR


def decide(pr, reviews, checks, environment, *, eligible, **kwargs):
    """The policy of one environment (the shape most cases need)."""
    return evaluate_merge(
        pr, reviews, checks, [environment], eligible={environment.name: eligible}, **kwargs
    )


def review(user: str, state: str, order: int, commit: str = HEAD) -> Review:
    return Review(user=user, state=state, commit_id=commit, order=order)


CASES = [
    ("happy path", PR, [review("alice", "APPROVED", 1)], GREEN, True, ""),
    (
        "approval by the requester does not count",
        PR,
        [review("carol", "APPROVED", 1)],
        GREEN,
        False,
        "0 of 1 required approval(s)",
    ),
    (
        "approval on an older commit does not count",
        PR,
        [review("alice", "APPROVED", 1, commit=OLD)],
        GREEN,
        False,
        "0 of 1 required approval(s)",
    ),
    (
        "approval then changes requested by the same user blocks",
        PR,
        [review("alice", "APPROVED", 1), review("alice", "CHANGES_REQUESTED", 2)],
        GREEN,
        False,
        "@alice requested changes",
    ),
    (
        "changes requested by a non-eligible user does not block",
        PR,
        [review("alice", "APPROVED", 1), review("mallory", "CHANGES_REQUESTED", 2)],
        GREEN,
        True,
        "",
    ),
    (
        "a commented review after an approval keeps the approval",
        PR,
        [review("alice", "APPROVED", 1), review("alice", "COMMENTED", 2)],
        GREEN,
        True,
        "",
    ),
    (
        "a dismissed approval does not count",
        PR,
        [review("alice", "APPROVED", 1), review("alice", "DISMISSED", 2)],
        GREEN,
        False,
        "0 of 1 required approval(s)",
    ),
    (
        "approval by a non-eligible user does not count",
        PR,
        [review("mallory", "APPROVED", 1)],
        GREEN,
        False,
        "0 of 1 required approval(s)",
    ),
    (
        "missing required check blocks",
        PR,
        [review("alice", "APPROVED", 1)],
        (Check("gitops-bot/render", "completed", "success"),),
        False,
        "required check `ci/test` has not run",
    ),
    (
        "failed check blocks",
        PR,
        [review("alice", "APPROVED", 1)],
        (*GREEN, Check("lint", "completed", "failure")),
        False,
        "check `lint` is failure",
    ),
    (
        "pending check blocks",
        PR,
        [review("alice", "APPROVED", 1)],
        (*GREEN, Check("e2e", "in_progress", None)),
        False,
        "check `e2e` is still in progress",
    ),
    (
        "the bot's own approval check is excluded",
        PR,
        [review("alice", "APPROVED", 1)],
        (*GREEN, Check("gitops-bot/approval", "in_progress", None)),
        True,
        "",
    ),
    (
        "draft PR blocks",
        replace(PR, draft=True),
        [review("alice", "APPROVED", 1)],
        GREEN,
        False,
        "draft",
    ),
    (
        "merge conflicts block",
        replace(PR, mergeable=False),
        [review("alice", "APPROVED", 1)],
        GREEN,
        False,
        "merge conflicts",
    ),
    (
        "unknown mergeability blocks until GitHub computed it",
        replace(PR, mergeable=None),
        [review("alice", "APPROVED", 1)],
        GREEN,
        False,
        "mergeability",
    ),
    (
        "closed PR blocks",
        replace(PR, state="closed"),
        [review("alice", "APPROVED", 1)],
        GREEN,
        False,
        "closed",
    ),
    (
        "the bot cannot approve",
        PR,
        [review("gitops-bot[bot]", "APPROVED", 1)],
        GREEN,
        False,
        "0 of 1 required approval(s)",
    ),
]


@pytest.mark.parametrize(
    ("pr", "reviews", "checks", "ready", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_merge_policy(pr, reviews, checks, ready, reason):
    decision = decide(
        pr,
        reviews,
        checks,
        PRODUCTION,
        eligible=ELIGIBLE | {"gitops-bot[bot]"},
        bot_logins=("gitops-bot[bot]",),
    )
    assert decision.ready is ready, decision.reasons
    if reason:
        assert any(reason in r for r in decision.reasons), decision.reasons
    else:
        assert decision.reasons == ()


def test_auto_merge_environment_needs_no_approval_but_green_checks():
    ready = decide(PR, [], GREEN, STAGING, eligible=set())
    assert ready.ready
    red = decide(PR, [], (Check("ci/test", "completed", "failure"),), STAGING, eligible=set())
    assert not red.ready and "check `ci/test` is failure" in red.reasons


def test_stale_approval_is_explained_in_notes():
    decision = decide(
        PR, [review("alice", "APPROVED", 1, commit=OLD)], GREEN, PRODUCTION, eligible=ELIGIBLE
    )
    assert any("approved an older commit" in n for n in decision.notes)


def test_latest_opinion_ignores_comments_and_orders_by_submission():
    reviews = [
        review("Alice", "CHANGES_REQUESTED", 3),
        review("alice", "APPROVED", 1),
        review("alice", "COMMENTED", 5),
    ]
    assert latest_opinions(reviews)["alice"].state == "CHANGES_REQUESTED"


def test_two_required_approvals_need_two_distinct_eligible_reviewers():
    env = replace(PRODUCTION, approvals=Approvals(required=2, users=("alice", "bob")))
    one = decide(PR, [review("alice", "APPROVED", 1)], GREEN, env, eligible=ELIGIBLE)
    two = decide(
        PR,
        [review("alice", "APPROVED", 1), review("bob", "APPROVED", 2)],
        GREEN,
        env,
        eligible=ELIGIBLE,
    )
    assert not one.ready and two.ready and set(two.approvers) == {"alice", "bob"}
