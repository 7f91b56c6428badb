"""Health-gated promotion through the whole bot and the fake GitHub: MLflow event → staging
PR merged → deployment created → Argo CD reports the merge commit Synced/Healthy → the soak
time passes (the bot's clock is injected) → production promotion allowed and opened.

Argo CD bodies come from the README's notification template (tests/argocd_fixtures.py)."""

from __future__ import annotations

import pytest
from argocd_fixtures import application, notification_body
from bot_harness import BotHarness, mlflow_model_version_created
from conftest import EXAMPLE_REPO

from bot.core.report import parse_meta
from bot.gateways.queue import NewJob
from bot.jobs.deployments import MERGED_MARKER

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
STAGING_APP = "fraud-detection-staging"
PROD_BRANCH = "gitops-bot/production/fraud-v2-candidate-8"
SOAKED = "    promote_from: {env: staging, healthy_for: 30m}"


def _repo(fake_github, name: str, *, auto_promote: bool) -> str:
    config = (EXAMPLE_REPO / ".gitops-bot.yaml").read_text()
    line = "    promote_from: staging             # version must already be live in staging"
    assert line in config
    config = config.replace(line, SOAKED + ("\n    auto_promote: true" if auto_promote else ""))
    fake_github.create_repo(name, EXAMPLE_REPO, files={".gitops-bot.yaml": config.encode()})
    for user, perm in {"carol": "admin", "bob": "write"}.items():
        fake_github.set_permission(name, user, perm)
    fake_github.add_team_member("acme", "ml-platform", "carol")
    return name


def _staging_merged(bot, fake, repo) -> dict:
    assert (
        bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE)).status_code
        == 202
    )
    bot.drain()
    assert bot.failed_jobs() == []
    (staging,) = [p for p in fake.prs(repo) if p["head"]["ref"].startswith("gitops-bot/staging/")]
    assert staging["merged"]
    return staging


def _argocd_healthy(bot, sha: str) -> None:
    assert bot.deliver_argocd(notification_body(application(STAGING_APP, sha))).status_code == 202
    bot.drain()
    assert bot.failed_jobs() == []


def _reconcile(bot, repo: str, bucket: str) -> None:
    bot.queue.enqueue(NewJob(f"reconcile:{repo}:{bucket}", "internal", "reconcile", repo, {}))
    bot.drain()
    assert bot.failed_jobs() == []


def _promote_production(bot, fake, repo, number: int) -> str:
    payload = fake.payload_issue_comment(repo, number, "carol", "/promote production")
    assert bot.deliver_github("issue_comment", payload).status_code == 202
    bot.drain()
    assert bot.failed_jobs() == []
    replies = [
        c["body"]
        for c in fake.comments(repo, number)
        if c["user"]["login"] == fake.bot_login and MERGED_MARKER not in c["body"]
    ]
    return replies[-1]


def _production_pr(fake, repo):
    prs = [p for p in fake.prs(repo) if p["head"]["ref"] == PROD_BRANCH]
    return prs[0] if prs else None


@pytest.fixture
def manual(fake_github, tmp_path):
    repo = _repo(fake_github, "acme/soak", auto_promote=False)
    bot = BotHarness(fake_github, tmp_path, (repo,))
    return bot, repo


def test_promote_production_is_refused_until_argo_cd_has_reported_on_staging(manual, fake_github):
    bot, repo = manual
    staging = _staging_merged(bot, fake_github, repo)
    merged = [c["body"] for c in fake_github.comments(repo, staging["number"])]
    assert any(
        "`/promote production` (once staging has run it Synced and Healthy for 30m)" in b
        for b in merged
    )
    reply = _promote_production(bot, fake_github, repo, staging["number"])
    assert "Argo CD has not reported on staging yet" in reply
    assert "Synced and Healthy for 30m" in reply
    assert _production_pr(fake_github, repo) is None


def test_promote_production_before_the_soak_time_says_how_long_remains(manual, fake_github):
    bot, repo = manual
    staging = _staging_merged(bot, fake_github, repo)
    _argocd_healthy(bot, staging["merge_commit_sha"])
    bot.clock.advance(12 * 60 + 30)
    reply = _promote_production(bot, fake_github, repo, staging["number"])
    assert "Not promoting fraud-v2-candidate v8 to production yet" in reply
    assert "v8 has been healthy in staging for 12m 30s; the soak time is 30m, 17m 30s remain" in (
        reply.replace("\\", "")
    )
    assert _production_pr(fake_github, repo) is None


def test_promote_production_after_the_soak_time_opens_the_pr(manual, fake_github):
    bot, repo = manual
    staging = _staging_merged(bot, fake_github, repo)
    _argocd_healthy(bot, staging["merge_commit_sha"])
    bot.clock.advance(30 * 60)
    _promote_production(bot, fake_github, repo, staging["number"])
    production = _production_pr(fake_github, repo)
    assert production is not None and not production["merged"]
    assert parse_meta(production["body"])["requester"] == "carol"


def test_a_degraded_staging_restarts_the_soak(manual, fake_github):
    bot, repo = manual
    staging = _staging_merged(bot, fake_github, repo)
    sha = staging["merge_commit_sha"]
    _argocd_healthy(bot, sha)
    bot.clock.advance(25 * 60)
    degraded = application(STAGING_APP, sha, health="Degraded", finished_at="2026-12-02T09:30:00Z")
    assert bot.deliver_argocd(notification_body(degraded)).status_code == 202
    bot.drain()
    bot.clock.advance(60)
    recovered = application(STAGING_APP, sha, message="healthy again")
    assert bot.deliver_argocd(notification_body(recovered)).status_code == 202
    bot.drain()
    bot.clock.advance(10 * 60)  # 36 minutes after the first report, 10 after recovering
    reply = _promote_production(bot, fake_github, repo, staging["number"])
    assert "20m remain" in reply
    assert _production_pr(fake_github, repo) is None


def test_a_revision_the_bot_did_not_merge_never_counts_for_the_soak(manual, fake_github):
    bot, repo = manual
    staging = _staging_merged(bot, fake_github, repo)
    _argocd_healthy(bot, staging["merge_commit_sha"])
    bot.clock.advance(20 * 60)
    # someone hand-edits staging to another image: not what the bot merged
    path = "k8s/overlays/staging/kustomization.yaml"
    merged = fake_github.file_at(repo, "main", path)
    hotfix = fake_github.push_commit(repo, "main", {path: merged.replace(b"v8", b"v8-hotfix")})
    _argocd_healthy(bot, hotfix)
    health = bot.runtime.services.records.health(repo, "staging")
    assert (health.revision, health.ours, health.version) == (hotfix, False, "")
    bot.clock.advance(5 * 60)
    # ... and reverts it: v8 again, but its healthy time starts over
    revert = fake_github.push_commit(repo, "main", {path: merged})
    _argocd_healthy(bot, revert)
    bot.clock.advance(10 * 60)
    reply = _promote_production(bot, fake_github, repo, staging["number"])
    assert "v8 has been healthy in staging for 10m; the soak time is 30m, 20m remain" in (
        reply.replace("\\", "")
    )
    assert _production_pr(fake_github, repo) is None


def test_a_commit_elsewhere_in_the_repository_keeps_the_soak_going(manual, fake_github):
    # Argo CD reports the branch's newest commit: a README edit after the merge still runs
    # the version the bot merged, healthy since it first was
    bot, repo = manual
    staging = _staging_merged(bot, fake_github, repo)
    _argocd_healthy(bot, staging["merge_commit_sha"])
    bot.clock.advance(20 * 60)
    readme = fake_github.push_commit(repo, "main", {"README.md": b"hand edit\n"})
    _argocd_healthy(bot, readme)
    health = bot.runtime.services.records.health(repo, "staging")
    assert (health.revision, health.ours, health.version) == (readme, False, "8")
    bot.clock.advance(10 * 60)  # 30 minutes after the merge commit was first healthy
    _promote_production(bot, fake_github, repo, staging["number"])
    assert _production_pr(fake_github, repo) is not None


def test_end_to_end_mlflow_to_soaked_auto_promotion_through_the_fake_github(fake_github, tmp_path):
    repo = _repo(fake_github, "acme/chain", auto_promote=True)
    bot = BotHarness(fake_github, tmp_path, (repo,))

    # 1. MLflow registers v8: the staging PR opens and auto-merges
    staging = _staging_merged(bot, fake_github, repo)
    sha = staging["merge_commit_sha"]

    # 2. the merge is a GitHub deployment of the merge commit, not yet deployed
    (deployment,) = fake_github.deployments(repo)
    assert (deployment["sha"], deployment["environment"]) == (sha, "staging")
    assert [s["state"] for s in deployment["statuses"]] == ["queued"]
    assert _production_pr(fake_github, repo) is None  # auto_promote waits for the soak

    # 3. Argo CD reports the merge commit Synced/Healthy: the deployment succeeds
    _argocd_healthy(bot, sha)
    (deployment,) = fake_github.deployments(repo)
    assert [s["state"] for s in deployment["statuses"]] == ["queued", "success"]
    comments = [c["body"] for c in fake_github.comments(repo, staging["number"])]
    assert any("### 🚢 Deployed" in b for b in comments if MERGED_MARKER in b)
    assert _production_pr(fake_github, repo) is None

    # 4. a reconcile before the soak time is over opens nothing
    bot.clock.advance(29 * 60)
    _reconcile(bot, repo, "1")
    assert _production_pr(fake_github, repo) is None

    # 5. once it is over, the reconcile loop opens the production PR: no event needed
    bot.clock.advance(60)
    _reconcile(bot, repo, "2")
    production = _production_pr(fake_github, repo)
    assert production is not None and not production["merged"]  # it still needs approval
    meta = parse_meta(production["body"])
    assert (meta["env"], meta["version"]) == ("production", "8")
    assert "auto_promote after #" in production["body"]

    # 6. and again: still one production PR
    _reconcile(bot, repo, "3")
    assert len([p for p in fake_github.prs(repo) if p["head"]["ref"] == PROD_BRANCH]) == 1


def test_a_late_healthy_report_past_the_soak_opens_the_pr_at_once(fake_github, tmp_path):
    repo = _repo(fake_github, "acme/late", auto_promote=True)
    bot = BotHarness(fake_github, tmp_path, (repo,))
    staging = _staging_merged(bot, fake_github, repo)
    sha = staging["merge_commit_sha"]
    _argocd_healthy(bot, sha)
    bot.clock.advance(31 * 60)
    # Argo CD reports again (e.g. a resync): the soak is over, the PR opens with this job
    again = application(STAGING_APP, sha, finished_at="2026-12-02T10:05:00Z")
    assert bot.deliver_argocd(notification_body(again)).status_code == 202
    bot.drain()
    assert bot.failed_jobs() == []
    assert _production_pr(fake_github, repo) is not None


def test_a_production_pr_someone_closed_is_not_reopened_by_the_soak(fake_github, tmp_path):
    repo = _repo(fake_github, "acme/closed", auto_promote=True)
    bot = BotHarness(fake_github, tmp_path, (repo,))
    staging = _staging_merged(bot, fake_github, repo)
    _argocd_healthy(bot, staging["merge_commit_sha"])
    bot.clock.advance(31 * 60)
    _reconcile(bot, repo, "1")
    production = _production_pr(fake_github, repo)
    assert production is not None
    fake_github.close_pr(repo, production["number"])
    _reconcile(bot, repo, "2")
    prs = [p for p in fake_github.prs(repo) if p["head"]["ref"] == PROD_BRANCH]
    assert [(p["number"], p["state"]) for p in prs] == [(production["number"], "closed")]
