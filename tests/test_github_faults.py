"""GitHub 5xx and secondary rate limits during an MLflow-triggered staging promotion: retried
inside the job, or by the queue when they outlast the gateway's retries, never duplicated."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import pytest
from bot_harness import BotHarness, mlflow_model_version_created

from bot.jobs.merge_gate import MERGED_MARKER
from bot.jobs.publish import LABEL, RENDER_CHECK

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
BRANCH = "gitops-bot/staging/fraud-v2-candidate-8"


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    harness = BotHarness(fake_github, tmp_path, (gitops_repo,))
    harness.slept = []
    harness.github.sleep = harness.slept.append  # clients are created lazily, after this
    harness.db = tmp_path / "bot.db"
    return harness


def _promote(bot) -> None:
    response = bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    assert response.status_code == 202, response.get_json()


def _job_row(bot) -> sqlite3.Row:
    with closing(sqlite3.connect(bot.db)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT status, attempts, run_at, last_error FROM jobs").fetchall()
    assert len(rows) == 1
    return rows[0]


def _make_due(bot) -> None:
    """Skip the retry delay the queue recorded (the delay itself is asserted separately)."""
    with closing(sqlite3.connect(bot.db)) as conn, conn:
        conn.execute("UPDATE jobs SET run_at = ? WHERE status = 'queued'", (time.time() - 1,))


def _assert_published_once(fake, repo: str, base_sha: str) -> None:
    prs = fake.prs(repo)
    assert len(prs) == 1, [(p["number"], p["head"]["ref"]) for p in prs]
    pr = prs[0]
    assert pr["head"]["ref"] == BRANCH and pr["merged"] is True
    assert {LABEL, "env:staging"} <= {label["name"] for label in pr["labels"]}
    head = pr["head"]["sha"]
    assert fake.repo(repo).git.log(f"{base_sha}..{head}") == [head]  # one commit on the branch
    assert fake.file_at(repo, "main", "k8s/overlays/staging/kustomization.yaml") == (
        fake.file_at(repo, head, "k8s/overlays/staging/kustomization.yaml")
    )
    renders = [c for c in fake.check_runs(repo, head) if c["name"] == RENDER_CHECK]
    assert len(renders) == 1 and renders[0]["conclusion"] == "success"
    bodies = [c["body"] for c in fake.comments(repo, pr["number"])]
    assert len(bodies) == len(set(bodies)), bodies
    assert sum(MERGED_MARKER in b for b in bodies) == 1, bodies


def test_repeated_502s_on_many_endpoints_are_retried_inside_the_job(bot, fake_github, gitops_repo):
    base_sha = fake_github.branch_sha(gitops_repo, "main")
    # (method, path, count, lost response): the gateway retries each operation up to
    # max_retries times, so one operation gets at most that many faults in total
    faults = [
        ("GET", r"/repos/acme/gitops$", 2, False),
        ("GET", r"/tarball/", 2, False),
        ("GET", r"/git/ref/heads/gitops-bot/", 1, False),  # the branch commit: one operation
        ("POST", r"/git/commits$", 1, True),
        ("POST", r"/git/refs$", 1, True),
        ("POST", r"/pulls$", 2, False),
        ("POST", r"/issues/\d+/labels$", 2, True),
        ("POST", r"/check-runs$", 3, False),
        ("PUT", r"/pulls/\d+/merge$", 3, False),
        ("POST", r"/issues/\d+/comments$", 2, False),
    ]
    for method, path, count, after in faults:
        fake_github.fail_next(method, path, status=502, count=count, after=after)
    _promote(bot)
    assert bot.drain() == 1
    row = _job_row(bot)
    assert (row["status"], row["attempts"]) == ("done", 1), row["last_error"]
    for method, path, count, _after in faults:
        hit = [c for c in fake_github.calls_to(method, path) if c.status == 502]
        assert len(hit) == count, (method, path)  # every injected fault fired
    _assert_published_once(fake_github, gitops_repo, base_sha)
    assert len(bot.slept) == sum(f[2] for f in faults)  # a backoff before every new attempt


def test_secondary_rate_limit_waits_its_retry_after_and_publishes_once(
    bot, fake_github, gitops_repo
):
    base_sha = fake_github.branch_sha(gitops_repo, "main")
    fake_github.rate_limit_next("POST", r"/pulls$", count=2, retry_after=7)
    fake_github.rate_limit_next("POST", r"/issues/\d+/comments$", count=1, retry_after=3)
    _promote(bot)
    assert bot.drain() == 1
    row = _job_row(bot)
    assert (row["status"], row["attempts"]) == ("done", 1), row["last_error"]
    assert sorted(bot.slept) == [3.0, 7.0, 7.0]  # exactly what GitHub asked for
    assert len([c for c in fake_github.calls_to("POST", r"/pulls$") if c.status == 403]) == 2
    _assert_published_once(fake_github, gitops_repo, base_sha)


@pytest.mark.parametrize(
    ("method", "path", "after"),
    [
        ("POST", r"/pulls$", False),
        ("POST", r"/pulls$", True),
        ("POST", r"/check-runs$", False),
        ("PUT", r"/pulls/\d+/merge$", False),
        pytest.param(
            "POST",
            r"/issues/\d+/comments$",
            False,
        ),
    ],
    ids=["create-pr", "create-pr-lost", "render-check", "merge", "merged-comment"],
)
def test_502s_beyond_the_gateway_retries_requeue_the_job_and_the_rerun_publishes_once(
    bot, fake_github, gitops_repo, method, path, after
):
    base_sha = fake_github.branch_sha(gitops_repo, "main")
    attempts_per_operation = bot.github.max_retries + 1
    fake_github.fail_next(method, path, status=502, count=attempts_per_operation, after=after)
    _promote(bot)
    before = time.time()
    assert bot.drain() == 1

    row = _job_row(bot)
    assert row["status"] == "queued" and row["attempts"] == 1
    assert row["last_error"].startswith("TransientError: GitHub 502")
    assert row["run_at"] > before  # backed off, not retried at once
    assert bot.drain() == 0  # not due yet

    _make_due(bot)
    assert bot.drain() == 1
    row = _job_row(bot)
    assert (row["status"], row["attempts"]) == ("done", 2), row["last_error"]
    _assert_published_once(fake_github, gitops_repo, base_sha)


def test_retry_after_longer_than_a_job_may_sleep_goes_back_to_the_queue(
    bot, fake_github, gitops_repo
):
    base_sha = fake_github.branch_sha(gitops_repo, "main")
    fake_github.rate_limit_next("POST", r"/pulls$", count=1, retry_after=600)
    _promote(bot)
    before = time.time()
    assert bot.drain() == 1
    row = _job_row(bot)
    assert row["status"] == "queued" and "secondary rate limit" in row["last_error"]
    assert row["run_at"] >= before + 600  # the queue honours Retry-After as a floor
    assert 600.0 not in bot.slept  # the worker did not sleep it away
    assert fake_github.prs(gitops_repo) == []

    _make_due(bot)
    assert bot.drain() == 1
    assert _job_row(bot)["status"] == "done"
    _assert_published_once(fake_github, gitops_repo, base_sha)


def test_a_ref_update_github_refuses_for_good_fails_the_job_at_once_with_the_reason(
    bot, fake_github, gitops_repo
):
    from fakegithub import shapes

    # a stale branch of that name exists, and moving it is refused for a reason no retry
    # heals: a permanent failure with GitHub's reason, not "kept changing" after minutes
    main = fake_github.branch_sha(gitops_repo, "main")
    fake_github.repo(gitops_repo).git.update_ref(f"refs/heads/{BRANCH}", main)
    fake_github.fail_next(
        "PATCH",
        r"/git/refs/heads/",
        status=422,
        body=shapes.error("Reference update failed: protected by a repository rule"),
        count=20,  # as long as anyone keeps trying
    )
    _promote(bot)
    bot.drain()
    row = _job_row(bot)
    assert (row["status"], row["attempts"]) == ("failed", 1), row["last_error"]
    assert "422" in row["last_error"] and "repository rule" in row["last_error"]
    assert bot.slept == []  # no backoff inside the job either
    assert fake_github.prs(gitops_repo) == []


def test_a_ref_deleted_between_read_and_update_is_created_again(bot, fake_github, gitops_repo):
    from fakegithub import shapes

    fake_github.fail_next(
        "POST", r"/git/refs$", status=422, body=shapes.error("Reference already exists")
    )
    fake_github.fail_next(
        "PATCH", r"/git/refs/heads/", status=422, body=shapes.error("Reference does not exist")
    )
    base_sha = fake_github.branch_sha(gitops_repo, "main")
    _promote(bot)
    bot.drain()
    row = _job_row(bot)
    assert (row["status"], row["attempts"]) == ("done", 1), row["last_error"]
    _assert_published_once(fake_github, gitops_repo, base_sha)
