"""Argo CD Notifications → POST /webhooks/argocd → the deployment of the notified revision.

Every body is rendered from the README's `template.gitops-bot` over an Argo CD Application
(tests/argocd_fixtures.py names the Argo CD documents its shapes come from)."""

from __future__ import annotations

import json

import pytest
from argocd_fixtures import application, notification_body
from bot_harness import BotHarness, mlflow_model_version_created
from conftest import EXAMPLE_REPO

from bot.gateways.queue import JobQueue
from bot.jobs.deployments import MERGED_MARKER
from bot.settings import Secret, Settings
from bot.web.app import create_app

STAGING = "fraud-detection-staging"
PRODUCTION = "fraud-detection-production"


def _source(version: str) -> str:
    return f"s3://acme-ml-models/fraud-detector/{version}/artifacts/model"


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    harness = BotHarness(fake_github, tmp_path, (gitops_repo,))
    harness.repo_name = gitops_repo
    return harness


def _merge_staging(bot, version: str = "8") -> dict:
    """An MLflow event whose staging promotion the bot merges; returns the merged PR."""
    event = mlflow_model_version_created("fraud-detector", version, _source(version))
    assert bot.deliver_mlflow(event).status_code == 202
    bot.drain()
    assert bot.failed_jobs() == []
    branch = f"gitops-bot/staging/fraud-v2-candidate-{version}"
    (pr,) = [p for p in bot.fake.prs(bot.repo_name) if p["head"]["ref"] == branch]
    assert pr["merged"]
    return pr


def _notify(bot, app: dict) -> None:
    response = bot.deliver_argocd(notification_body(app))
    assert response.status_code in (200, 202), response.get_json()
    bot.drain()
    assert bot.failed_jobs() == []


def _states(fake, repo: str, sha: str) -> list[str]:
    (deployment,) = [d for d in fake.deployments(repo) if d["sha"] == sha]
    return [s["state"] for s in deployment["statuses"]]


def _merged_comment(fake, repo: str, number: int) -> str:
    (body,) = [c["body"] for c in fake.comments(repo, number) if MERGED_MARKER in c["body"]]
    return body


# --------------------------------------------------------------------------- intake


def test_a_notification_is_queued_without_calling_github(bot, fake_github):
    calls = len(fake_github.calls)
    response = bot.deliver_argocd(notification_body(application(STAGING, "a" * 40)))
    assert response.status_code == 202 and response.get_json() == {"status": "queued", "jobs": 1}
    assert len(fake_github.calls) == calls
    (job,) = [j for j in bot.jobs() if j["kind"] == "argocd.notification"]
    assert job["repo"] == bot.repo_name


def test_the_same_body_twice_in_a_minute_is_one_delivery(bot):
    body = notification_body(application(STAGING, "a" * 40))
    assert bot.deliver_argocd(body).status_code == 202
    second = bot.deliver_argocd(body)
    assert second.status_code == 200 and second.get_json() == {"status": "duplicate"}


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "missing Authorization header"),
        ("not-the-secret", "Authorization is not 'Bearer <the configured secret>'"),
    ],
    ids=["no-header", "wrong-secret"],
)
def test_unauthenticated_notifications_are_refused_and_counted(bot, secret, message):
    body = notification_body(application(STAGING, "a" * 40))
    if secret is None:
        response = bot.client.post("/webhooks/argocd", data=body)
    else:
        response = bot.deliver_argocd(body, secret=secret)
    assert response.status_code == 401
    assert response.get_json()["error"].startswith(message)
    assert bot.jobs() == []
    metrics = bot.metrics_text()
    assert (
        'gitops_bot_webhook_deliveries_total{outcome="rejected_signature",source="argocd"} 1.0'
        in metrics
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"{not json",
            "request body is not valid JSON (the webhook content type must be application/json)",
        ),
        (b"[]", "request body must be a JSON object"),
        (
            notification_body(application(STAGING, "a" * 40, health="Fine")),
            "malformed argocd payload: health_status: one of Degraded, Healthy, Missing, "
            "Progressing, Suspended, Unknown expected",
        ),
        (
            notification_body(application("Not An App!", "a" * 40)),
            "malformed argocd payload: application: not an Argo CD application name",
        ),
        (
            notification_body(application(STAGING, "a" * 40, finished_at="yesterday")),
            "malformed argocd payload: finished_at: not an RFC 3339 time",
        ),
        (
            json.dumps({"application": STAGING, "revision": "a" * 40}).encode(),
            "malformed argocd payload: sync_status: missing",
        ),
        (
            notification_body(application(STAGING, "a" * 40, phase="Exploded")),
            "malformed argocd payload: operation_phase: one of Error, Failed, Running, "
            "Succeeded, Terminating or empty expected",
        ),
    ],
    ids=["not-json", "not-an-object", "health", "application", "finished-at", "missing", "phase"],
)
def test_malformed_notifications_get_a_400_naming_the_problem(bot, body, message):
    response = bot.deliver_argocd(body)
    assert response.status_code == 400
    assert response.get_json()["error"] == message
    assert bot.jobs() == []


def test_without_a_secret_the_endpoint_is_off(tmp_path):
    queue = JobQueue.from_url(f"sqlite:///{tmp_path / 'jobs.db'}")
    queue.migrate()
    settings = Settings(github_webhook_secret=Secret("x"), mlflow_target_repos=("acme/gitops",))
    client = create_app(settings, queue).test_client()
    response = client.post(
        "/webhooks/argocd", data=notification_body(application(STAGING, "a" * 40))
    )
    assert response.status_code == 503
    assert "ARGOCD_WEBHOOK_SECRET is not configured" in response.get_json()["error"]


def test_a_notification_naming_one_target_repo_goes_to_that_one_only(fake_github, tmp_path):
    for repo in ("acme/gitops", "acme/other"):
        fake_github.create_repo(repo, EXAMPLE_REPO)
    bot = BotHarness(fake_github, tmp_path, ("acme/gitops", "acme/other"))
    app = application(STAGING, "a" * 40, repo_url="git@github.com:acme/other.git")
    assert bot.deliver_argocd(notification_body(app)).get_json()["jobs"] == 1
    assert [j["repo"] for j in bot.jobs()] == ["acme/other"]
    app = application(STAGING, "b" * 40, repo_url="https://example.com/unrelated.git")
    assert bot.deliver_argocd(notification_body(app)).get_json()["jobs"] == 2


# --------------------------------------------------------------------------- the job


def test_synced_and_healthy_on_the_merge_commit_marks_its_deployment_successful(
    bot, fake_github, gitops_repo
):
    pr = _merge_staging(bot)
    sha = pr["merge_commit_sha"]
    _notify(bot, application(STAGING, sha, health="Progressing", phase="Running", message=""))
    assert _states(fake_github, gitops_repo, sha) == ["queued", "in_progress"]
    assert "Argo CD is rolling it out" in _merged_comment(fake_github, gitops_repo, pr["number"])
    _notify(bot, application(STAGING, sha))
    assert _states(fake_github, gitops_repo, sha) == ["queued", "in_progress", "success"]
    comment = _merged_comment(fake_github, gitops_repo, pr["number"])
    assert "### 🚢 Deployed" in comment and "**Synced** and **Healthy**" in comment
    health = bot.runtime.services.records.health(gitops_repo, "staging")
    assert (health.revision, health.ours, health.healthy_since) == (sha, True, bot.clock.now)


def test_a_degraded_rollout_fails_the_deployment_and_says_why(bot, fake_github, gitops_repo):
    pr = _merge_staging(bot)
    sha = pr["merge_commit_sha"]
    app = application(
        STAGING, sha, health="Degraded", phase="Failed",
        message='one or more objects failed to apply: "fraud-v2" is invalid',
    )  # fmt: skip
    _notify(bot, app)
    assert _states(fake_github, gitops_repo, sha) == ["queued", "failure"]
    comment = _merged_comment(fake_github, gitops_repo, pr["number"])
    assert "### ❌ Deployment failed" in comment
    assert "Synced/Degraded on" in comment and "(sync Failed)" in comment
    assert "one or more objects failed to apply" in comment
    (deployment,) = fake_github.deployments(gitops_repo)
    assert deployment["statuses"][-1]["description"] == "Argo CD: Synced/Degraded, sync Failed"


def test_a_duplicate_notification_changes_nothing(bot, fake_github, gitops_repo):
    sha = _merge_staging(bot)["merge_commit_sha"]
    _notify(bot, application(STAGING, sha))
    posts = len(fake_github.calls_to("POST", r"/statuses$"))
    edits = len(fake_github.calls_to("PATCH", r"/issues/comments/"))
    bot.clock.advance(60)
    _notify(bot, application(STAGING, sha, message="successfully synced (all tasks run) "))
    assert len(fake_github.calls_to("POST", r"/statuses$")) == posts
    assert len(fake_github.calls_to("PATCH", r"/issues/comments/")) == edits
    health = bot.runtime.services.records.health(gitops_repo, "staging")
    assert health.healthy_since == bot.clock.now - 60  # healthy since the first report


def test_an_old_revisions_healthy_after_a_newer_sync_changes_nothing(bot, fake_github, gitops_repo):
    old = _merge_staging(bot, "8")["merge_commit_sha"]
    bot.clock.advance(10)
    new = _merge_staging(bot, "9")["merge_commit_sha"]
    _notify(bot, application(STAGING, new, finished_at="2026-12-02T09:40:00Z"))
    before = fake_github.deployments(gitops_repo)
    # Argo CD's earlier notification for v8, delivered late
    _notify(bot, application(STAGING, old, finished_at="2026-12-02T09:31:00Z"))
    # ... and one the bot cannot order by time (no operation): its deployment is older
    _notify(bot, application(STAGING, old, phase=None))
    assert fake_github.deployments(gitops_repo) == before
    health = bot.runtime.services.records.health(gitops_repo, "staging")
    assert health.revision == new


def test_a_healthy_newer_deployment_makes_the_one_it_replaces_inactive(
    bot, fake_github, gitops_repo
):
    old_pr = _merge_staging(bot, "8")
    old = old_pr["merge_commit_sha"]
    _notify(bot, application(STAGING, old, finished_at="2026-12-02T09:31:00Z"))
    bot.clock.advance(10)
    new = _merge_staging(bot, "9")["merge_commit_sha"]
    _notify(bot, application(STAGING, new, finished_at="2026-12-02T09:40:00Z"))
    assert _states(fake_github, gitops_repo, new) == ["queued", "success"]
    # staging is not production: GitHub's auto_inactive retires v8 (no explicit call)
    assert _states(fake_github, gitops_repo, old) == ["queued", "success", "inactive"]
    comment = _merged_comment(fake_github, gitops_repo, old_pr["number"])
    assert "has moved on to a newer revision" in comment


def test_a_production_deployment_is_retired_explicitly(fake_github, tmp_path):
    config = (EXAMPLE_REPO / ".gitops-bot.yaml").read_text()
    config = config.replace(
        "    storage_schemes: [s3]             # Seldon's rclone remote reads S3 only\n",
        "    storage_schemes: [s3]             # Seldon's rclone remote reads S3 only\n"
        "    production: true\n",
    )
    repo = "acme/prodstaging"
    fake_github.create_repo(repo, EXAMPLE_REPO, files={".gitops-bot.yaml": config.encode()})
    bot = BotHarness(fake_github, tmp_path, (repo,))
    bot.repo_name = repo
    old = _merge_staging(bot, "8")["merge_commit_sha"]
    _notify(bot, application(STAGING, old, finished_at="2026-12-02T09:31:00Z"))
    bot.clock.advance(10)
    new = _merge_staging(bot, "9")["merge_commit_sha"]
    _notify(bot, application(STAGING, new, finished_at="2026-12-02T09:40:00Z"))
    assert _states(fake_github, repo, old) == ["queued", "success", "inactive"]
    (inactive,) = [
        c.json()
        for c in fake_github.calls_to("POST", r"/statuses$")
        if c.json()["state"] == "inactive"
    ]
    assert inactive["description"] == f"replaced by {new[:7]}"


def test_a_revision_the_bot_did_not_merge_is_recorded_but_drives_no_deployment(
    bot, fake_github, gitops_repo
):
    sha = _merge_staging(bot)["merge_commit_sha"]
    foreign = fake_github.push_commit(
        gitops_repo, "main", {"README.md": b"hand edit\n"}, message="hand edit"
    )
    before = fake_github.deployments(gitops_repo)
    _notify(bot, application(STAGING, foreign))
    assert fake_github.deployments(gitops_repo) == before
    assert _states(fake_github, gitops_repo, sha) == ["queued"]
    health = bot.runtime.services.records.health(gitops_repo, "staging")
    assert (health.revision, health.ours) == (foreign, False)


def test_a_notification_for_an_application_no_environment_names_is_ignored(
    bot, fake_github, gitops_repo
):
    sha = _merge_staging(bot)["merge_commit_sha"]
    _notify(bot, application("someone-elses-app", sha))
    assert _states(fake_github, gitops_repo, sha) == ["queued"]
    assert bot.runtime.services.records.health(gitops_repo, "staging") is None


def test_a_report_that_arrives_before_the_deployment_exists_sets_its_first_status(
    fake_github, gitops_repo, tmp_path
):
    # Argo CD auto-syncs within seconds; its notification may be processed before the
    # merging job created the deployment: the deployment then starts in that state
    bot = BotHarness(fake_github, tmp_path, (gitops_repo,))
    bot.repo_name = gitops_repo
    fake_github.fail_next("POST", r"/deployments$", status=502, count=bot.github.max_retries + 1)
    event = mlflow_model_version_created("fraud-detector", "8", _source("8"))
    bot.deliver_mlflow(event)
    bot.drain()
    (pr,) = fake_github.prs(gitops_repo)
    sha = pr["merge_commit_sha"]
    assert pr["merged"] and fake_github.deployments(gitops_repo) == []
    _notify_raw = bot.deliver_argocd(notification_body(application(STAGING, sha)))
    assert _notify_raw.status_code == 202
    bot.drain()  # the Argo CD job: no deployment yet, health recorded
    import sqlite3
    import time
    from contextlib import closing

    with closing(sqlite3.connect(tmp_path / "bot.db")) as conn, conn:
        conn.execute("UPDATE jobs SET run_at = ? WHERE status = 'queued'", (time.time() - 1,))
    bot.drain()  # the merging job again
    assert bot.failed_jobs() == []
    assert _states(fake_github, gitops_repo, sha) == ["success"]


# --------------------------------------------------------------------------- polling Argo CD

ARGOCD_SERVER = "https://argocd.example.test"
ARGOCD_TOKEN = "argocd-api-token-for-tests"


def test_the_reconcile_loop_reads_argo_cd_when_no_notification_came(
    fake_github, gitops_repo, tmp_path
):
    import re

    from bot.gateways.queue import NewJob

    bot = BotHarness(
        fake_github,
        tmp_path,
        (gitops_repo,),
        ARGOCD_SERVER=ARGOCD_SERVER,
        ARGOCD_TOKEN=ARGOCD_TOKEN,
    )
    bot.repo_name = gitops_repo
    sha = _merge_staging(bot)["merge_commit_sha"]
    seen: list[str] = []

    def argocd_api(request):
        # Argo CD's API: GET /api/v1/applications/{name}, the Application as JSON
        seen.append(request.headers.get("Authorization", ""))
        name = request.url.rsplit("/", 1)[-1]
        if name != STAGING:
            return 403, {}, b'{"error":"permission denied","code":7}'
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps(application(STAGING, sha)).encode(),
        )

    fake_github.responses_mock.add_callback(
        "GET", re.compile(re.escape(ARGOCD_SERVER) + "/api/v1/applications/.*"), callback=argocd_api
    )
    for bucket in ("1", "2"):  # twice: the second read changes nothing
        bot.queue.enqueue(NewJob(f"reconcile:{gitops_repo}:{bucket}", "internal", "reconcile",
                                 gitops_repo, {}))  # fmt: skip
        bot.drain()
    assert bot.failed_jobs() == []
    assert _states(fake_github, gitops_repo, sha) == ["queued", "success"]
    assert set(seen) == {f"Bearer {ARGOCD_TOKEN}"}
    assert len(seen) == 4  # both applications, each reconcile; production's answer: 403


def _sync_repo(fake_github, name: str) -> str:
    config = (EXAMPLE_REPO / ".gitops-bot.yaml").read_text()
    anchor = "      application: fraud-detection-staging   # its notifications drive the deployment"
    assert anchor in config
    config = config.replace(anchor, "      sync: true\n" + anchor)
    fake_github.create_repo(name, EXAMPLE_REPO, files={".gitops-bot.yaml": config.encode()})
    return name


def test_a_merge_into_an_environment_asking_for_it_triggers_one_argo_cd_sync(fake_github, tmp_path):
    import re

    repo = _sync_repo(fake_github, "acme/manualsync")
    bot = BotHarness(fake_github, tmp_path, (repo,), ARGOCD_SERVER=ARGOCD_SERVER,
                     ARGOCD_TOKEN=ARGOCD_TOKEN)  # fmt: skip
    bot.repo_name = repo
    syncs: list[tuple[str, dict]] = []

    def sync(request):
        # Argo CD's API: POST /api/v1/applications/{name}/sync with an ApplicationSyncRequest
        syncs.append((request.url.rsplit("/", 2)[-2], json.loads(request.body)))
        return 200, {"Content-Type": "application/json"}, b"{}"

    fake_github.responses_mock.add_callback(
        "POST", re.compile(re.escape(ARGOCD_SERVER) + "/api/v1/applications/.*/sync"), callback=sync
    )
    pr = _merge_staging(bot)
    sha = pr["merge_commit_sha"]
    assert syncs == [(STAGING, {"name": STAGING, "revision": sha})]
    assert "gitops-bot asked Argo CD to sync `fraud-detection-staging`" in _merged_comment(
        fake_github, repo, pr["number"]
    )
    closed = fake_github.payload_pull_request(repo, pr["number"], "closed", sender="alice")
    bot.deliver_github("pull_request", closed)
    bot.drain()
    assert bot.failed_jobs() == [] and len(syncs) == 1


def test_without_argo_cds_api_the_comment_says_to_sync_by_hand(fake_github, tmp_path):
    repo = _sync_repo(fake_github, "acme/nosyncapi")
    bot = BotHarness(fake_github, tmp_path, (repo,))
    bot.repo_name = repo
    pr = _merge_staging(bot)
    assert "must be synced by hand" in _merged_comment(fake_github, repo, pr["number"])
