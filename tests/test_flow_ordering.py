"""Registry deliveries out of order never move an environment backwards (whole bot, fake
GitHub); a human can still go back on purpose."""

from __future__ import annotations

import pytest
from bot_harness import BotHarness, mlflow_model_version_created
from prometheus_client.parser import text_string_to_metric_families

STAGING_CONFIG = "k8s/overlays/staging/kustomization.yaml"


def source(version: str) -> str:
    return f"s3://acme-ml-models/fraud-detector/{version}/artifacts/model"


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    harness = BotHarness(fake_github, tmp_path, (gitops_repo,))
    for user, perm in {"alice": "write", "carol": "admin", "dave": "read"}.items():
        fake_github.set_permission(gitops_repo, user, perm)
    fake_github.add_team_member("acme", "ml-platform", "carol")
    return harness


def deliver(bot, version: str) -> None:
    response = bot.deliver_mlflow(
        mlflow_model_version_created("fraud-detector", version, source(version))
    )
    assert response.status_code == 202
    bot.drain()


def staging_tag(fake, repo) -> str:
    text = fake.file_at(repo, "main", STAGING_CONFIG).decode()
    return text.split("newTag:")[1].split()[0]


def refusals_metric(bot) -> dict[str, float]:
    text = bot.metrics_text()
    return {
        sample.labels["kind"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gitops_bot_promotion_refusals_total"
    }


def test_versions_delivered_out_of_order_leave_staging_on_the_newer_one(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    deliver(bot, "9")  # MLflow's retry jitter: v9 arrives before v8
    deliver(bot, "8")
    deliver(bot, "8")  # and once more (a redelivery)

    assert staging_tag(fake, repo) == "v9"
    assert [p["title"] for p in fake.prs(repo)] == ["Promote fraud-detector v9 to staging"]
    [refusal] = bot.runtime.services.records.refusals(repo)
    assert (refusal.version, refusal.environment, refusal.kind) == ("8", "staging", "stale_version")
    assert "v8 is older than v9, which staging already deploys" in refusal.reason
    assert refusals_metric(bot) == {"stale_version": 1.0}  # counted once, not per delivery
    assert bot.failed_jobs() == []


def test_a_late_version_does_not_take_staging_back(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    deliver(bot, "3")  # the example's staging runs v6
    assert fake.prs(repo) == []
    assert staging_tag(fake, repo) == "v6"
    [refusal] = bot.runtime.services.records.refusals(repo)
    assert "older than v6" in refusal.reason


def test_an_older_version_than_an_open_promotion_is_refused(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    config = fake.file_at(repo, "main", ".gitops-bot.yaml")
    manual = config.replace(b"    auto_merge: true ", b"    auto_merge: false")
    fake.push_commit(repo, "main", {".gitops-bot.yaml": manual}, "Staging by hand")
    deliver(bot, "9")
    deliver(bot, "8")
    prs = fake.prs(repo)
    assert [(p["title"], p["state"]) for p in prs] == [
        ("Promote fraud-detector v9 to staging", "open")
    ]
    [refusal] = bot.runtime.services.records.refusals(repo)
    assert "an open promotion already takes to staging" in refusal.reason


def test_promote_to_an_older_version_needs_allow_downgrade(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    issue = fake.open_issue(repo, "Go back to v5")
    body = "/promote fraud-v2-candidate 5 to staging"
    fake.add_comment(repo, issue, "alice", body)
    payload = fake.payload_issue_comment(repo, issue, "alice", body)
    bot.deliver_github("issue_comment", payload)
    bot.drain()
    assert fake.prs(repo) == []
    reply = [c for c in fake.comments(repo, issue) if c["user"]["login"] == fake.bot_login][-1]
    assert "v5 is older than v6" in reply["body"] and "--allow-downgrade" in reply["body"]

    payload = fake.payload_issue_comment(repo, issue, "alice", body + " --allow-downgrade")
    bot.deliver_github("issue_comment", payload)
    bot.drain()
    [pr] = fake.prs(repo)
    assert pr["title"] == "Promote fraud-detector v5 to staging" and pr["merged"]
    assert staging_tag(fake, repo) == "v5"


def test_a_job_in_backoff_does_not_hold_up_a_users_help(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    # GitHub keeps failing the archive download: the registry job backs off and waits
    fake.fail_next("GET", r"/tarball/", status=502, count=100)
    deliver(bot, "9")
    [waiting] = [j for j in bot.jobs() if j["kind"] == "model_version.created"]
    assert waiting["status"] == "queued" and "502" in (waiting["last_error"] or "")

    issue = fake.open_issue(repo, "help")
    bot.deliver_github("issue_comment", fake.payload_issue_comment(repo, issue, "alice", "/help"))
    bot.drain()
    [reply] = [c for c in fake.comments(repo, issue) if c["user"]["login"] == fake.bot_login]
    assert "/promote" in reply["body"]
    [still] = [j for j in bot.jobs() if j["kind"] == "model_version.created"]
    assert still["status"] == "queued"  # still waiting out its delay, in order for later
