"""A merged promotion becomes one GitHub deployment (ref = merge commit), whatever reruns,
lost responses or redeliveries happen, and the PR says "Merged" until feedback comes."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import pytest
from bot_harness import BotHarness, mlflow_model_version_created
from conftest import EXAMPLE_REPO

from bot.jobs.deployments import MERGED_MARKER

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    harness = BotHarness(fake_github, tmp_path, (gitops_repo,))
    harness.db = tmp_path / "bot.db"
    return harness


def _promote(bot, version: str = "8") -> dict:
    source = SOURCE.replace("/8/", f"/{version}/")
    response = bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", version, source))
    assert response.status_code == 202, response.get_json()
    bot.drain()
    assert bot.failed_jobs() == []
    merged = [p for p in bot.fake.prs(bot.repo_name) if p["merged"]]
    return merged[-1]


@pytest.fixture(autouse=True)
def _name(bot, gitops_repo):
    bot.repo_name = gitops_repo


def test_a_merged_staging_promotion_creates_one_deployment_of_its_merge_commit(
    bot, fake_github, gitops_repo
):
    pr = _promote(bot)
    deployments = fake_github.deployments(gitops_repo)
    assert len(deployments) == 1
    deployment = deployments[0]
    assert deployment["sha"] == deployment["ref"] == pr["merge_commit_sha"]
    assert deployment["environment"] == "staging"
    assert deployment["production_environment"] is False
    assert deployment["payload"] == {
        "gitops_bot": 1,
        "model": "fraud-v2-candidate",
        "registry_name": "fraud-detector",
        "version": "8",
        "source": SOURCE,
        "kind": "promote",
        "pull_request": pr["number"],
    }
    assert [s["state"] for s in deployment["statuses"]] == ["queued"]
    (repo, request) = fake_github.deployment_requests[0]
    assert repo == gitops_repo
    assert request["auto_merge"] is False and request["required_contexts"] == []


def test_the_merged_comment_says_merged_not_deployed_until_argo_cd_reports(
    bot, fake_github, gitops_repo
):
    pr = _promote(bot)
    bodies = [c["body"] for c in fake_github.comments(gitops_repo, pr["number"])]
    merged = [b for b in bodies if MERGED_MARKER in b]
    assert len(merged) == 1
    assert "### 🔀 Merged" in merged[0] and "Deployed" not in merged[0]
    assert "waiting for Argo CD application `fraud-detection-staging`" in merged[0]


def test_an_environment_marked_production_gets_production_deployments(fake_github, tmp_path):
    config = (EXAMPLE_REPO / ".gitops-bot.yaml").read_text()
    config = config.replace(
        "    storage_schemes: [s3]             # Seldon's rclone remote reads S3 only\n",
        "    storage_schemes: [s3]             # Seldon's rclone remote reads S3 only\n"
        "    production: true\n",
    )
    repo = "acme/prodstaging"
    fake_github.create_repo(repo, EXAMPLE_REPO, files={".gitops-bot.yaml": config.encode()})
    bot = BotHarness(fake_github, tmp_path, (repo,))
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    assert bot.failed_jobs() == []
    (deployment,) = fake_github.deployments(repo)
    assert deployment["production_environment"] is True
    assert fake_github.deployment_requests[0][1]["production_environment"] is True


def test_redelivered_merge_events_and_reruns_keep_one_deployment(bot, fake_github, gitops_repo):
    pr = _promote(bot)
    # the bot's own merge event is ignored at intake; one a human sent is handled (twice here)
    closed = fake_github.payload_pull_request(gitops_repo, pr["number"], "closed", sender="alice")
    for delivery in ("closed-1", "closed-2"):
        assert bot.deliver_github("pull_request", closed, delivery=delivery).status_code == 202
    bot.drain()
    # and the registry event again: already deployed, the merged PR is re-announced
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    assert bot.failed_jobs() == []
    deployments = fake_github.deployments(gitops_repo)
    assert len(deployments) == 1
    assert [s["state"] for s in deployments[0]["statuses"]] == ["queued"]
    assert len(fake_github.calls_to("POST", r"/deployments$")) == 1


def test_a_lost_create_response_is_healed_by_looking_before_creating_again(
    bot, fake_github, gitops_repo
):
    # GitHub creates the deployment but the answer never arrives, every retry included:
    # the job fails; its rerun finds the deployment instead of creating a second one
    attempts = bot.github.max_retries + 1
    fake_github.fail_next("POST", r"/deployments$", status=502, count=1, after=True)
    fake_github.fail_next("GET", r"/deployments$", status=502, count=attempts - 1)
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    with closing(sqlite3.connect(bot.db)) as conn, conn:
        conn.execute("UPDATE jobs SET run_at = ? WHERE status = 'queued'", (time.time() - 1,))
    bot.drain()
    assert bot.failed_jobs() == []
    deployments = fake_github.deployments(gitops_repo)
    assert len(deployments) == 1
    assert [s["state"] for s in deployments[0]["statuses"]] == ["queued"]


def test_a_human_merge_of_a_promotion_pr_creates_its_deployment(fake_github, tmp_path):
    config = (EXAMPLE_REPO / ".gitops-bot.yaml").read_text()
    config = config.replace("    auto_merge: true                  # merge once", "    # once")
    repo = "acme/manual"
    fake_github.create_repo(repo, EXAMPLE_REPO, files={".gitops-bot.yaml": config.encode()})
    bot = BotHarness(fake_github, tmp_path, (repo,))
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    (pr,) = fake_github.prs(repo)
    assert not pr["merged"] and fake_github.deployments(repo) == []
    sha = fake_github.merge_pr(repo, pr["number"], user="alice")
    closed = fake_github.payload_pull_request(repo, pr["number"], "closed", sender="alice")
    bot.deliver_github("pull_request", closed)
    bot.drain()
    assert bot.failed_jobs() == []
    (deployment,) = fake_github.deployments(repo)
    assert deployment["sha"] == sha and deployment["environment"] == "staging"
    bodies = [c["body"] for c in fake_github.comments(repo, pr["number"])]
    assert sum(MERGED_MARKER in b for b in bodies) == 1


def test_without_the_deployments_permission_the_merge_is_still_announced(
    bot, fake_github, gitops_repo
):
    # an installation that has not accepted the new `deployments: write` permission yet
    fake_github.fail_next(
        "POST", r"/deployments$", status=403, count=10,
        body={"message": "Resource not accessible by integration"},
    )  # fmt: skip
    pr = _promote(bot)
    assert bot.failed_jobs() == []
    assert fake_github.deployments(gitops_repo) == []
    bodies = [c["body"] for c in fake_github.comments(gitops_repo, pr["number"])]
    assert sum(MERGED_MARKER in b and "### 🔀 Merged" in b for b in bodies) == 1
