"""A running `gitops-bot serve` process: signed MLflow deliveries over HTTP become one PR."""

from __future__ import annotations

import json

import pytest
import requests
from bot_harness import GITHUB_SECRET, MLFLOW_SECRET, mlflow_headers, mlflow_model_version_created
from bot_process import BotProcess, bot_env, wait_for

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"


@pytest.fixture
def served_github(fake_github, gitops_repo):
    return fake_github.serve()


def test_signed_delivery_to_running_serve_opens_exactly_one_pr_even_when_sent_five_times(
    fake_github, gitops_repo, served_github, tmp_path
):
    env = bot_env(fake_github, served_github, f"sqlite:///{tmp_path / 'bot.db'}", (gitops_repo,))
    bot = BotProcess.serve(env, tmp_path / "serve.log").start()
    try:
        body = json.dumps(mlflow_model_version_created("fraud-detector", "8", SOURCE)).encode()
        headers = mlflow_headers(body, delivery_id="5f0b6c1e-0000-4000-8000-000000000001")
        statuses = [
            requests.post(
                f"{bot.url}/webhooks/mlflow", data=body, headers=headers, timeout=5
            ).status_code
            for _ in range(5)
        ]
        assert statuses == [202, 200, 200, 200, 200]
        wait_for(lambda: any(p["merged"] for p in fake_github.prs(gitops_repo)))
        prs = fake_github.prs(gitops_repo)
        assert len(prs) == 1, prs
        pr = prs[0]
        assert pr["title"] == "Promote fraud-detector v8 to staging"
        assert "```diff" in pr["body"] and SOURCE in pr["body"]
        render = {c["name"]: c for c in fake_github.check_runs(gitops_repo, pr["head"]["sha"])}
        assert render["gitops-bot/render"]["conclusion"] == "success"
        commits = [c for c in fake_github.calls_to("POST", r"/git/commits$") if c.status == 201]
        assert len(commits) == 1
    finally:
        bot.stop()
    log = bot.log()
    assert "Traceback" not in log, log
    # nothing secret in the logs: webhook secrets, the App key, installation tokens
    assert GITHUB_SECRET not in log and MLFLOW_SECRET not in log
    assert fake_github.private_key_pem.splitlines()[1] not in log
    assert fake_github.tokens and not any(token in log for token in fake_github.tokens)
