"""The GitHub API calls a promotion costs, counted through the fake GitHub: each is tens to
hundreds of milliseconds and rate-limit budget on github.com, so the counts have ceilings."""

from __future__ import annotations

import pytest
from bot_harness import BotHarness, mlflow_model_version_created
from fakegithub.fake import APP_OPS

PR_REQUEST = ("POST", "/repos/{owner}/{repo}/pulls")
# issue 11: at most 7 calls up to and including the PR request, 14 for the whole auto-merged
# staging promotion (it was 10 and 21); /promote production in the same proportion (was 24)
STAGING_TO_PR, STAGING_TOTAL, PRODUCTION_TOTAL = 7, 14, 16


def source(version: int) -> str:
    return f"s3://acme-ml-models/fraud-detector/{version}/artifacts/model"


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    fake_github.set_permission(gitops_repo, "carol", "admin")
    fake_github.add_team_member("acme", "ml-platform", "carol")
    return BotHarness(fake_github, tmp_path, (gitops_repo,))


def calls_of(fake, bot, deliver) -> list[tuple[str, str]]:
    first = len(fake.calls)
    assert deliver().status_code == 202
    bot.drain()
    assert bot.failed_jobs() == []
    ops = [(c.method, c.operation or c.path) for c in fake.calls[first:]]
    return [op for op in ops if op not in APP_OPS]


def promote(fake, bot, version: int) -> list[tuple[str, str]]:
    payload = mlflow_model_version_created("fraud-detector", str(version), source(version))
    return calls_of(fake, bot, lambda: bot.deliver_mlflow(payload))


def test_an_auto_merged_staging_promotion_stays_within_its_call_budget(
    bot, fake_github, gitops_repo
):
    promote(fake_github, bot, 8)  # the first of the process also learns the default branch
    calls = promote(fake_github, bot, 9)
    listing = "\n".join(f"{m} {p}" for m, p in calls)
    assert PR_REQUEST in calls, listing
    assert calls.index(PR_REQUEST) + 1 <= STAGING_TO_PR, listing
    assert len(calls) <= STAGING_TOTAL, listing
    assert ("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge") in calls
    merged = [p for p in fake_github.prs(gitops_repo) if p["merged"]]
    assert len(merged) == 2


def test_promote_production_by_comment_stays_within_its_call_budget(bot, fake_github, gitops_repo):
    promote(fake_github, bot, 8)
    staging = next(p for p in fake_github.prs(gitops_repo) if p["merged"])["number"]
    payload = fake_github.payload_issue_comment(
        gitops_repo, staging, "carol", "/promote production"
    )
    calls = calls_of(fake_github, bot, lambda: bot.deliver_github("issue_comment", payload))
    listing = "\n".join(f"{m} {p}" for m, p in calls)
    assert PR_REQUEST in calls, listing
    assert len(calls) <= PRODUCTION_TOTAL, listing
