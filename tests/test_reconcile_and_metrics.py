"""Reconcile heals missed events; /metrics reports deliveries, jobs, GitHub calls and renders."""

from __future__ import annotations

import pytest
from bot_harness import BotHarness, mlflow_model_version_created

from bot.gateways.queue import NewJob

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
STAGING_BRANCH = "gitops-bot/staging/fraud-v2-candidate-8"


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    return BotHarness(fake_github, tmp_path, (gitops_repo,))


def _staging_pr(fake, repo):
    return next(p for p in fake.prs(repo) if p["head"]["ref"] == STAGING_BRANCH)


def test_reconcile_merges_a_ready_pr_whose_check_event_was_missed(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    # branch protection refuses the first merge: a required CI check has not reported yet
    fake.fail_next(
        "PUT",
        r"/merge$",
        status=405,
        body={"message": 'Required status check "ci/test" is expected.'},
    )
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    pr = _staging_pr(fake, repo)
    assert not pr["merged"]
    blocked = [c["body"] for c in fake.comments(repo, pr["number"])]
    assert any('Required status check "ci/test" is expected.' in b for b in blocked)

    # CI passes, but its check_run event never reaches the bot
    fake.add_check_run(repo, pr["head"]["sha"], "ci/test", status="completed", conclusion="success")
    assert not _staging_pr(fake, repo)["merged"]

    # the periodic reconcile job re-evaluates open promotion PRs and merges it
    assert bot.queue.enqueue(NewJob("reconcile:acme/gitops:1", "internal", "reconcile", repo, {}))
    bot.drain()
    assert bot.failed_jobs() == []
    assert _staging_pr(fake, repo)["merged"]


def test_metrics_count_deliveries_jobs_github_calls_and_renders(bot, fake_github, gitops_repo):
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    text = bot.metrics_text()

    def value(prefix: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        assert lines, f"no metric line starts with {prefix!r}"
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    assert value('gitops_bot_webhook_deliveries_total{outcome="queued",source="mlflow"}') == 1
    assert value('gitops_bot_jobs_total{kind="model_version.created",outcome="done"}') == 1
    pulls = 'gitops_bot_github_api_calls_total{operation="POST /repos/{owner}/{repo}/pulls"'
    assert value(pulls) == 1
    # every API request the fake saw, plus the archive downloads from codeload
    assert value("gitops_bot_github_api_calls_total") >= len(fake_github.calls)
    assert value('gitops_bot_kustomize_renders_total{outcome="ok"}') >= 2  # base + head
    assert value("gitops_bot_github_rate_limit_remaining") > 0
    assert fake_github.private_key_pem.splitlines()[1] not in text
