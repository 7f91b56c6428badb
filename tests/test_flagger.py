"""Flagger's event webhook → one canary timeline comment, the deployment's status, and a
rollback PR when the canary failed and the environment asks for it.

Bodies: tests/flagger_fixtures.py (Flagger's `CanaryWebhookPayload` and `CallEventWebhook`,
fluxcd/flagger pkg/apis/flagger/v1beta1 and pkg/controller/webhook.go)."""

from __future__ import annotations

import pytest
from argocd_fixtures import application, notification_body
from bot_harness import BotHarness, mlflow_model_version_created
from conftest import EXAMPLE_REPO
from flagger_fixtures import (
    ADVANCE,
    ANALYSIS,
    FAILED,
    PROGRESSING,
    PROMOTING,
    ROLLING_BACK,
    SUCCEEDED,
    event,
)

from bot.core.config import load_config_bytes
from bot.core.report import parse_meta
from bot.jobs.canary import CANARY_MARKER
from bot.jobs.deployments import MERGED_MARKER

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
T0 = 1_796_000_000_000  # Flagger's clock, ms


def _repo(fake_github, name: str, *, rollback: bool = True) -> str:
    config = (EXAMPLE_REPO / ".gitops-bot.yaml").read_text()
    anchor = (
        "      application: fraud-detection-staging   # its notifications drive the deployment"
        " status\n"
    )
    assert anchor in config
    extra = "    flagger: {canary: fraud-detector, namespace: fraud-detection-staging}\n"
    if rollback:
        extra += "    on_canary_failure: rollback\n"
    config = config.replace(anchor, anchor + extra)
    fake_github.create_repo(name, EXAMPLE_REPO, files={".gitops-bot.yaml": config.encode()})
    return name


@pytest.fixture
def staged(fake_github, tmp_path):
    """The staging promotion of v8 merged (staging runs canary fraud-detector)."""
    repo = _repo(fake_github, "acme/canary")
    bot = BotHarness(fake_github, tmp_path, (repo,))
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    assert bot.failed_jobs() == []
    (pr,) = fake_github.prs(repo)
    assert pr["merged"]
    return bot, repo, pr


def _flag(bot, step, at_ms, **kwargs) -> None:
    payload = event(step, at_ms, namespace="fraud-detection-staging", **kwargs)
    response = bot.deliver_flagger(payload)
    assert response.status_code in (200, 202), response.get_json()
    bot.drain()
    assert bot.failed_jobs() == []


def _argo_cd_reports_staging_at(bot, sha: str) -> None:
    """Argo CD notifies: the staging application is Synced and Healthy at `sha`."""
    response = bot.deliver_argocd(notification_body(application("fraud-detection-staging", sha)))
    assert response.status_code == 202
    bot.drain()


def _states(fake, repo, sha) -> list[str]:
    (deployment,) = [d for d in fake.deployments(repo) if d["sha"] == sha]
    return [s["state"] for s in deployment["statuses"]]


def _canary_comments(fake, repo, number) -> list[str]:
    return [c["body"] for c in fake.comments(repo, number) if CANARY_MARKER in c["body"]]


# --------------------------------------------------------------------------- intake


def test_an_event_is_queued_without_calling_github(staged, fake_github):
    bot, _repo_name, _pr = staged
    calls = len(fake_github.calls)
    response = bot.deliver_flagger(event(PROGRESSING, T0))
    assert response.status_code == 202 and len(fake_github.calls) == calls


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "missing token"),
        ("guess", "token is not the configured FLAGGER_WEBHOOK_TOKEN"),
    ],
    ids=["no-token", "wrong-token"],
)
def test_events_without_the_token_are_refused_and_counted(staged, token, message):
    bot, _repo_name, _pr = staged
    jobs = len(bot.jobs())
    response = bot.deliver_flagger(event(PROGRESSING, T0), token=token)
    assert response.status_code == 401 and response.get_json()["error"].startswith(message)
    assert len(bot.jobs()) == jobs
    assert (
        'gitops_bot_webhook_deliveries_total{outcome="rejected_signature",source="flagger"} 1.0'
        in bot.metrics_text()
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"phase": "Exploding"}, "phase: one of Initializing, Initialized, Waiting"),
        ({"metadata": None}, "metadata: missing (point Flagger's event webhook here"),
        ({"name": "Fraud_Detector"}, "name: not a Kubernetes object name"),
        ({"metadata": {"eventMessage": "x", "eventType": "Normal", "timestamp": "soon"}},
         "metadata.timestamp: Unix milliseconds expected"),
        ({"metadata": {"eventMessage": "x", "eventType": "Normal", "timestamp": "17²"}},
         "metadata.timestamp: Unix milliseconds expected"),
        ({"metadata": {"eventMessage": "x", "eventType": "Info", "timestamp": "1"}},
         "metadata.eventType: Normal or Warning expected"),
    ],
    ids=["phase", "metadata", "name", "timestamp", "unicode-digit", "event-type"],
)  # fmt: skip
def test_malformed_events_get_a_400_naming_the_field(staged, change, message):
    bot, _repo_name, _pr = staged
    payload = {**event(PROGRESSING, T0), **change}
    if payload["metadata"] is None:
        del payload["metadata"]
    response = bot.deliver_flagger(payload)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(f"malformed flagger payload: {message}")


# --------------------------------------------------------------------------- the job


def test_the_canary_timeline_is_one_comment_updated_in_place(staged, fake_github):
    bot, repo, pr = staged
    sha = pr["merge_commit_sha"]
    _flag(bot, PROGRESSING, T0)
    _flag(bot, ANALYSIS, T0 + 1000)
    _flag(bot, ADVANCE, T0 + 61_000)
    (comment,) = _canary_comments(fake_github, repo, pr["number"])
    assert "Canary `fraud-detection-staging/fraud-detector`: Progressing" in comment
    assert comment.count("| Progressing |") == 3
    assert "Advance fraud-detector.fraud-detection canary weight 10" in comment
    assert _states(fake_github, repo, sha) == ["queued", "in_progress"]
    _flag(bot, PROMOTING, T0 + 300_000)
    _flag(bot, SUCCEEDED, T0 + 360_000)
    (comment,) = _canary_comments(fake_github, repo, pr["number"])
    assert "🐤✅ Canary `fraud-detection-staging/fraud-detector` promoted" in comment
    assert _states(fake_github, repo, sha) == ["queued", "in_progress", "success"]
    (merged,) = [
        c["body"] for c in fake_github.comments(repo, pr["number"]) if MERGED_MARKER in c["body"]
    ]
    assert "### 🚢 Deployed" in merged


def test_a_failed_canary_fails_the_deployment_says_why_and_opens_a_rollback(staged, fake_github):
    bot, repo, pr = staged
    sha = pr["merge_commit_sha"]
    _flag(bot, PROGRESSING, T0)
    _flag(bot, ROLLING_BACK, T0 + 300_000)
    _flag(bot, FAILED, T0 + 301_000)
    assert _states(fake_github, repo, sha) == ["queued", "in_progress", "failure"]
    (deployment,) = fake_github.deployments(repo)[:1]
    assert deployment["statuses"][-1]["description"].startswith("Flagger: Failed: ")
    (comment,) = _canary_comments(fake_github, repo, pr["number"])
    assert "🐤❌ Canary `fraud-detection-staging/fraud-detector` failed" in comment
    assert "Flagger rolled the canary back: Canary failed! Scaling down" in comment
    assert "failed checks threshold reached 5" in comment
    rollback = next(
        p
        for p in fake_github.prs(repo)
        if p["head"]["ref"].startswith("gitops-bot/staging/rollback/")
    )
    assert f"Rollback PR #{rollback['number']}" in comment
    meta = parse_meta(rollback["body"])
    assert (meta["kind"], meta["requester"], meta["version"]) == ("rollback", "flagger", "6")
    assert rollback["merged"]  # staging auto-merges, rollbacks included
    staging = fake_github.file_at(repo, "main", "k8s/overlays/staging/model-config.yaml")
    assert b"fraud-detector/6/artifacts" in staging  # what staging ran before v8


def test_redelivered_and_late_events_change_nothing(staged, fake_github):
    bot, repo, pr = staged
    sha = pr["merge_commit_sha"]
    _flag(bot, PROGRESSING, T0)
    _flag(bot, FAILED, T0 + 301_000)
    rollbacks = [p for p in fake_github.prs(repo) if "/rollback/" in p["head"]["ref"]]
    statuses = len(fake_github.calls_to("POST", r"/statuses$"))
    _flag(bot, FAILED, T0 + 301_000, checksum="7c9d5b8f6d")  # the same event again: intake dedupe
    _flag(bot, ADVANCE, T0 + 60_000)  # delivered late: older than the failure
    assert _states(fake_github, repo, sha) == ["queued", "in_progress", "failure"]
    assert len(fake_github.calls_to("POST", r"/statuses$")) == statuses
    assert [p for p in fake_github.prs(repo) if "/rollback/" in p["head"]["ref"]] == rollbacks
    assert len(rollbacks) == 1


def test_without_on_canary_failure_the_comment_offers_the_rollback_command(fake_github, tmp_path):
    repo = _repo(fake_github, "acme/norollback", rollback=False)
    bot = BotHarness(fake_github, tmp_path, (repo,))
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    (pr,) = fake_github.prs(repo)
    _flag(bot, FAILED, T0)
    (comment,) = _canary_comments(fake_github, repo, pr["number"])
    assert "Comment `/rollback staging`" in comment
    assert [p for p in fake_github.prs(repo) if "/rollback/" in p["head"]["ref"]] == []


def test_argo_cd_healthy_does_not_claim_success_before_the_canary_does(staged, fake_github):
    bot, repo, pr = staged
    sha = pr["merge_commit_sha"]
    _argo_cd_reports_staging_at(bot, sha)
    assert _states(fake_github, repo, sha) == ["queued", "in_progress"]
    _flag(bot, SUCCEEDED, T0)
    assert _states(fake_github, repo, sha) == ["queued", "in_progress", "success"]
    # Argo CD reporting healthy again afterwards leaves the canary's verdict alone
    again = application("fraud-detection-staging", sha, finished_at="2026-12-02T09:45:00Z")
    assert bot.deliver_argocd(notification_body(again)).status_code == 202
    bot.drain()
    assert _states(fake_github, repo, sha) == ["queued", "in_progress", "success"]


def test_an_event_for_a_canary_no_environment_names_is_ignored(staged, fake_github):
    bot, repo, pr = staged
    _flag(bot, FAILED, T0, name="someone-else")
    assert _canary_comments(fake_github, repo, pr["number"]) == []
    assert _states(fake_github, repo, pr["merge_commit_sha"]) == ["queued"]


def test_end_to_end_a_failed_production_canary_fails_the_deployment_and_opens_a_rollback_pr(
    fake_github, tmp_path
):
    config = (EXAMPLE_REPO / ".gitops-bot.yaml").read_text()
    anchor = "      application: fraud-detection-production\n"
    assert anchor in config
    config = config.replace(
        anchor,
        anchor + "    flagger: {canary: fraud-detector, namespace: fraud-detection}\n"
        "    on_canary_failure: rollback\n",
    )
    repo = "acme/prodcanary"
    fake_github.create_repo(repo, EXAMPLE_REPO, files={".gitops-bot.yaml": config.encode()})
    for user, perm in {"carol": "admin", "bob": "write"}.items():
        fake_github.set_permission(repo, user, perm)
    fake_github.add_team_member("acme", "ml-platform", "bob")
    fake_github.add_team_member("acme", "ml-platform", "carol")
    bot = BotHarness(fake_github, tmp_path, (repo,))

    # MLflow → staging merged; carol promotes to production; bob approves: merged
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    (staging,) = fake_github.prs(repo)
    comment = fake_github.payload_issue_comment(
        repo, staging["number"], "carol", "/promote production"
    )
    bot.deliver_github("issue_comment", comment)
    bot.drain()
    production = next(
        p for p in fake_github.prs(repo) if p["head"]["ref"].startswith("gitops-bot/production/")
    )
    review = fake_github.add_review(repo, production["number"], "bob", "APPROVED")
    bot.deliver_github(
        "pull_request_review",
        fake_github.payload_pull_request_review(repo, production["number"], review),
    )
    bot.drain()
    assert bot.failed_jobs() == []
    production = fake_github.pr(repo, production["number"])
    assert production["merged"]
    sha = production["merge_commit_sha"]
    (deployment,) = [d for d in fake_github.deployments(repo) if d["environment"] == "production"]
    assert deployment["sha"] == sha and deployment["production_environment"] is True

    # Flagger shifts traffic, then rolls the canary back
    for step, at in ((PROGRESSING, T0), (ADVANCE, T0 + 60_000), (ROLLING_BACK, T0 + 300_000),
                     (FAILED, T0 + 301_000)):  # fmt: skip
        assert bot.deliver_flagger(event(step, at)).status_code == 202
        bot.drain()
    assert bot.failed_jobs() == []
    assert _states(fake_github, repo, sha) == ["queued", "in_progress", "failure"]
    (timeline,) = _canary_comments(fake_github, repo, production["number"])
    assert "🐤❌ Canary `fraud-detection/fraud-detector` failed" in timeline
    assert "Flagger rolled the canary back: Canary failed! Scaling down" in timeline
    (merged,) = [
        c["body"]
        for c in fake_github.comments(repo, production["number"])
        if MERGED_MARKER in c["body"]
    ]
    assert "### ❌ Deployment failed" in merged
    rollback = next(
        p
        for p in fake_github.prs(repo)
        if p["head"]["ref"].startswith("gitops-bot/production/rollback/")
    )
    assert f"Rollback PR #{rollback['number']}" in timeline
    meta = parse_meta(rollback["body"])
    assert (meta["kind"], meta["version"], meta["requester"]) == ("rollback", "5", "flagger")
    assert not rollback["merged"]  # production's approval rules apply to the rollback too


def test_the_access_log_never_shows_flaggers_token():
    import logging

    from bot.runtime import redact_url_tokens

    record = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1,
        '%s - - "%s" %s', ("127.0.0.1", "POST /webhooks/flagger?token=s3cr3t&x=1 HTTP/1.1", "202"),
        None,
    )  # fmt: skip
    assert redact_url_tokens(record)
    assert (
        record.getMessage() == '127.0.0.1 - - "POST /webhooks/flagger?token=***&x=1 HTTP/1.1" 202'
    )


def test_the_operator_data_shows_revision_health_canary_phase_and_deployment_age(
    staged, fake_github
):
    from bot.web.operator import live_overview

    bot, repo, pr = staged
    sha = pr["merge_commit_sha"]
    _argo_cd_reports_staging_at(bot, sha)
    _flag(bot, PROGRESSING, T0)
    records = bot.runtime.services.records
    config = load_config_bytes(fake_github.file_at(repo, "main", ".gitops-bot.yaml"))
    config_env = config.environment("staging")
    live = live_overview(records, repo, config_env, bot.clock.now + 3 * 3600 + 600)
    assert live is not None
    assert (live.revision, live.ours, live.sync_status, live.health_status) == (
        sha[:12], True, "Synced", "Healthy",
    )  # fmt: skip
    assert live.healthy_for == "3h 10m" and live.deployment_age == "3h 10m"
    assert (live.deployment_state, live.deployment_version, live.canary_phase) == (
        "in_progress", "8", "Progressing",
    )  # fmt: skip


# --------------------------------------------------------------------------- confirm-promotion


def _confirm(bot, token: str = "flagger-webhook-token-for-tests", name: str = "fraud-detector"):
    import json as _json

    # Flagger's confirm-promotion hook posts the CanaryWebhookPayload (its metadata: the
    # hook's own, here none) and promotes only on HTTP 200
    payload = {"name": name, "namespace": "fraud-detection-staging", "phase": "Progressing",
               "checksum": "7c9d5b8f6d"}  # fmt: skip
    return bot.client.post(
        f"/webhooks/flagger/confirm-promotion?token={token}",
        data=_json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )


def test_confirm_promotion_waits_until_argo_cd_runs_the_merged_version(staged, fake_github):
    bot, _repo_name, pr = staged
    sha = pr["merge_commit_sha"]
    first = _confirm(bot)
    assert first.status_code == 403
    assert "has seen no event of this canary" in first.get_json()["reason"]
    _flag(bot, PROGRESSING, T0)
    waiting = _confirm(bot)
    assert waiting.status_code == 403
    assert waiting.get_json()["reason"] == "Argo CD has not reported on staging yet"
    progressing = application("fraud-detection-staging", sha, health="Progressing", phase="Running")
    assert bot.deliver_argocd(notification_body(progressing)).status_code == 202
    bot.drain()
    confirmed = _confirm(bot)
    assert confirmed.status_code == 200, confirmed.get_json()
    assert confirmed.get_json()["reason"] == (
        "v8 is merged and Argo CD reports staging Synced/Progressing"
    )
    assert _confirm(bot, token="guess").status_code == 401
    assert _confirm(bot, name="someone-else").status_code == 403


def test_confirm_promotion_refuses_a_failed_deployment(staged, fake_github):
    bot, _repo_name, pr = staged
    sha = pr["merge_commit_sha"]
    _argo_cd_reports_staging_at(bot, sha)
    _flag(bot, PROGRESSING, T0)
    assert _confirm(bot).status_code == 200
    degraded = application("fraud-detection-staging", sha, health="Degraded",
                           finished_at="2026-12-02T09:35:00Z")  # fmt: skip
    assert bot.deliver_argocd(notification_body(degraded)).status_code == 202
    bot.drain()
    refused = _confirm(bot)
    assert refused.status_code == 403
    assert refused.get_json()["reason"] == "the deployment of v8 to staging is failure"
