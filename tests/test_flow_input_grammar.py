"""Versions, aliases and sources an attacker or a misconfigured MLflow sends: refused at
intake (400) or in the job with a visible reason; never a PR, never a merge."""

from __future__ import annotations

import pytest
from bot_harness import BotHarness, mlflow_model_version_created

GOOD_SOURCE = "s3://acme-ml-models/fraud-detector/9/artifacts/model"


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    harness = BotHarness(fake_github, tmp_path, (gitops_repo,))
    fake_github.set_permission(gitops_repo, "alice", "write")
    return harness


@pytest.mark.parametrize(
    "version",
    ["14; rm -rf / $(id)", "14 <img src=x onerror=alert(1)>", "１４", "14🚀", "-1", "9" * 5000],
)
def test_a_version_no_grammar_allows_is_refused_at_intake(bot, fake_github, gitops_repo, version):
    response = bot.deliver_mlflow(
        mlflow_model_version_created("fraud-detector", version, GOOD_SOURCE)
    )
    assert response.status_code == 400
    assert "data.version" in response.get_json()["error"]
    assert bot.jobs() == [] and fake_github.prs(gitops_repo) == []


@pytest.mark.parametrize("version", ["014", "9.1", "v9", "10000000000"])
def test_a_version_outside_the_models_pattern_is_refused_with_its_reason(
    bot, fake_github, gitops_repo, version
):
    response = bot.deliver_mlflow(
        mlflow_model_version_created("fraud-detector", version, GOOD_SOURCE)
    )
    assert response.status_code == 202
    bot.drain()
    assert fake_github.prs(gitops_repo) == []
    [refusal] = bot.runtime.services.records.refusals(gitops_repo)
    assert refusal.kind == "invalid_version"
    assert "does not match the model's version_pattern `[1-9][0-9]{0,9}`" in refusal.reason
    assert bot.failed_jobs() == []


@pytest.mark.parametrize("source", ["file:///etc/passwd", "javascript:alert(1)", "data:,x"])
def test_a_source_the_bot_never_uses_is_refused(bot, fake_github, gitops_repo, source):
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "9", source))
    bot.drain()
    assert fake_github.prs(gitops_repo) == []
    [refusal] = bot.runtime.services.records.refusals(gitops_repo)
    assert refusal.kind == "invalid_source" and "never used" in refusal.reason


def test_a_promote_command_with_foreign_digits_is_answered_with_usage(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    issue = fake.open_issue(repo, "promote")
    body = "/promote fraud-v2-candidate １６ to staging"
    bot.deliver_github("issue_comment", fake.payload_issue_comment(repo, issue, "alice", body))
    bot.drain()
    assert fake.prs(repo) == []
    [reply] = [c for c in fake.comments(repo, issue) if c["user"]["login"] == fake.bot_login]
    assert "is not a version" in reply["body"]


def test_a_promote_command_with_a_leading_zero_is_refused(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    issue = fake.open_issue(repo, "promote")
    body = "/promote fraud-v2-candidate 016 to staging"
    bot.deliver_github("issue_comment", fake.payload_issue_comment(repo, issue, "alice", body))
    bot.drain()
    assert fake.prs(repo) == []
    [reply] = [c for c in fake.comments(repo, issue) if c["user"]["login"] == fake.bot_login]
    assert "version_pattern" in reply["body"]
