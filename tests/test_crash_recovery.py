"""A worker killed with SIGKILL mid-promotion, or a GitHub answer lost after the write landed:
the job runs again and GitHub still ends up with one PR, one commit, one of each comment."""

from __future__ import annotations

import json

import pytest
import requests
from bot_harness import BotHarness, mlflow_headers, mlflow_model_version_created
from bot_process import BotProcess, bot_env, wait_for

from bot.gateways.queue import JobQueue
from bot.jobs.merge_gate import MERGED_MARKER
from bot.jobs.publish import LABEL, RENDER_CHECK

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
BRANCH = "gitops-bot/staging/fraud-v2-candidate-8"
LEASE_SECONDS = "2"  # a dead worker's job is claimable again after this long


def _assert_published_once(fake, repo: str, base_sha: str) -> dict:
    """One merged PR, one commit on its branch, one render check, no duplicate comment."""
    prs = fake.prs(repo)
    assert len(prs) == 1, [(p["number"], p["head"]["ref"]) for p in prs]
    pr = prs[0]
    assert pr["head"]["ref"] == BRANCH and pr["merged"] is True
    assert {LABEL, "env:staging"} <= {label["name"] for label in pr["labels"]}
    head = fake.branch_sha(repo, BRANCH)
    assert head == pr["head"]["sha"]
    assert fake.repo(repo).git.log(f"{base_sha}..{head}") == [head]
    created = [c for c in fake.calls_to("POST", r"/git/commits$") if c.status == 201]
    assert len(created) == 1
    renders = [c for c in fake.check_runs(repo, head) if c["name"] == RENDER_CHECK]
    assert len(renders) == 1 and renders[0]["conclusion"] == "success"
    bodies = [c["body"] for c in fake.comments(repo, pr["number"])]
    assert len(bodies) == len(set(bodies)), bodies
    assert sum(MERGED_MARKER in b for b in bodies) == 1, bodies
    return pr


# ------------------------------------------------------------------ SIGKILL mid-job


@pytest.fixture
def served_github(fake_github, gitops_repo):
    return fake_github.serve()


@pytest.mark.parametrize(
    "held_request_lands",
    [False, True],
    ids=["pr-request-never-landed", "pr-request-landed-after-the-kill"],
)
def test_worker_killed_while_opening_the_pr_is_rerun_without_duplicates(
    fake_github, gitops_repo, served_github, tmp_path, held_request_lands
):
    database_url = f"sqlite:///{tmp_path / 'bot.db'}"
    env = bot_env(
        fake_github,
        served_github,
        database_url,
        (gitops_repo,),
        WORKER_LEASE_SECONDS=LEASE_SECONDS,
        WORKER_CONCURRENCY="1",
    )
    base_sha = fake_github.branch_sha(gitops_repo, "main")
    web = BotProcess.serve(env, tmp_path / "web.log", workers=False).start()
    first = BotProcess.worker(env, tmp_path / "worker-1.log").start()
    second = BotProcess.worker(env, tmp_path / "worker-2.log")
    queue = JobQueue.from_url(database_url)
    try:
        held = fake_github.pause_next("POST", r"/pulls$")
        body = json.dumps(mlflow_model_version_created("fraud-detector", "8", SOURCE)).encode()
        response = requests.post(
            f"{web.url}/webhooks/mlflow", data=body, headers=mlflow_headers(body), timeout=10
        )
        assert response.status_code == 202, response.text
        assert held.reached.wait(60), first.log()
        # mid-job: the branch commit exists, the PR does not
        assert fake_github.branch_sha(gitops_repo, BRANCH) is not None
        assert fake_github.prs(gitops_repo) == []
        first.kill()
        held.release(perform=held_request_lands)
        assert queue.recent()[0]["status"] == "running"  # the dead worker still holds the lease

        second.start()
        job = wait_for(lambda: next((j for j in queue.recent() if j["status"] == "done"), None))
    finally:
        for process in (second, first, web):
            process.stop()
        queue.close()

    assert job["attempts"] == 2, job  # claimed again after the lease expired
    assert len(queue.recent()) == 1
    _assert_published_once(fake_github, gitops_repo, base_sha)
    pulls = [c for c in fake_github.calls_to("POST", r"/pulls$") if c.status == 201]
    assert len(pulls) == 1
    for process in (web, second):
        assert "Traceback" not in process.log(), process.log()


# ------------------------------------------------------------------ lost responses


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    return BotHarness(fake_github, tmp_path, (gitops_repo,))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", r"/pulls$"),
        ("POST", r"/issues/\d+/comments$"),
        ("POST", r"/issues/\d+/labels$"),
        ("POST", r"/git/refs$"),
        ("PUT", r"/pulls/\d+/merge$"),
    ],
    ids=["create-pr", "create-comment", "add-labels", "create-ref", "merge"],
)
def test_write_whose_response_is_lost_is_not_repeated_as_a_duplicate(
    bot, fake_github, gitops_repo, method, path
):
    base_sha = fake_github.branch_sha(gitops_repo, "main")
    fake_github.fail_next(method, path, status=502, after=True)
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    assert [(j["status"], j["attempts"]) for j in bot.jobs()] == [("done", 1)]
    lost = [c for c in fake_github.calls_to(method, path) if c.status == 502]
    assert len(lost) == 1  # the fault did fire: the write landed, its answer did not
    _assert_published_once(fake_github, gitops_repo, base_sha)
