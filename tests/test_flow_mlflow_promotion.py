"""MLflow event -> staging PR through web layer, queue, worker, gateway and the fake GitHub."""

from __future__ import annotations

import pytest
from bot_harness import BotHarness, mlflow_model_version_created

from bot.core.report import parse_meta

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    return BotHarness(fake_github, tmp_path, (gitops_repo,))


def test_mlflow_version_created_opens_one_staging_pr_with_rendered_diff(
    bot, fake_github, gitops_repo
):
    response = bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    assert response.status_code == 202, response.get_json()
    assert bot.drain() == 1
    assert bot.failed_jobs() == []

    prs = fake_github.prs(gitops_repo)
    assert len(prs) == 1
    pr = prs[0]
    assert pr["title"] == "Promote fraud-detector v8 to staging"
    assert pr["head"]["ref"] == "gitops-bot/staging/fraud-v2-candidate-8"
    body = pr["body"]
    assert "Model/fraud-detection-staging/fraud-v2-candidate" in body
    assert SOURCE in body and "```diff" in body
    meta = parse_meta(body)
    assert meta["version"] == "8" and meta["env"] == "staging" and meta["requester"] == "mlflow"

    # the commit changes only the target values, in the staging overlay only
    head = pr["head"]["sha"]
    config = fake_github.file_at(
        gitops_repo, head, "k8s/overlays/staging/model-config.yaml"
    ).decode()
    assert f'fraud-v2-storage-uri: "{SOURCE}"  # candidate' in config
    assert fake_github.file_at(gitops_repo, head, "k8s/overlays/production/model-config.yaml") == (
        fake_github.file_at(gitops_repo, "main", "k8s/overlays/production/model-config.yaml")
    )
    checks = {c["name"]: c for c in fake_github.check_runs(gitops_repo, head)}
    assert checks["gitops-bot/render"]["conclusion"] == "success"


def test_staging_pr_auto_merges_when_checks_pass(bot, fake_github, gitops_repo):
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    pr = fake_github.prs(gitops_repo)[0]
    assert pr["merged"] is True
    main_config = fake_github.file_at(
        gitops_repo, "main", "k8s/overlays/staging/kustomization.yaml"
    )
    assert b"newTag: v8" in main_config
    comments = fake_github.comments(gitops_repo, pr["number"])
    assert any("Merged" in c["body"] for c in comments)


def test_redelivered_and_repeated_events_keep_one_pr_one_commit(bot, fake_github, gitops_repo):
    payload = mlflow_model_version_created("fraud-detector", "9", SOURCE.replace("/8/", "/9/"))
    first = bot.deliver_mlflow(payload, delivery_id="d-1")
    assert first.status_code == 202
    for _ in range(4):  # the same delivery id: deduplicated at intake
        assert bot.deliver_mlflow(payload, delivery_id="d-1").status_code == 200
    bot.drain()
    # a second, distinct delivery of the same version (MLflow fired twice): same PR, no new commit
    prs_before = fake_github.prs(gitops_repo)
    bot.deliver_mlflow(payload, delivery_id="d-2")
    bot.drain()
    assert len(fake_github.prs(gitops_repo)) == len(prs_before) == 1
    assert len(bot.jobs()) == 2


def test_snapshot_tarball_is_a_real_git_archive(bot, fake_github, gitops_repo):
    client = bot.github.client_for_repo(gitops_repo)
    branch, sha = client.default_branch(gitops_repo)
    snapshot = client.snapshot(gitops_repo, sha)
    assert branch == "main"
    assert snapshot[".gitops-bot.yaml"] == fake_github.file_at(gitops_repo, sha, ".gitops-bot.yaml")


def test_auto_promote_opens_the_production_pr_when_staging_merges(fake_github, tmp_path):
    from conftest import EXAMPLE_REPO

    config = (EXAMPLE_REPO / ".gitops-bot.yaml").read_text()
    config = config.replace(
        "    promote_from: staging", "    promote_from: staging\n    auto_promote: true"
    )
    repo = "acme/chain"
    fake_github.create_repo(repo, EXAMPLE_REPO, files={".gitops-bot.yaml": config.encode()})
    bot = BotHarness(fake_github, tmp_path, (repo,))
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    assert bot.failed_jobs() == []
    by_branch = {p["head"]["ref"]: p for p in fake_github.prs(repo)}
    assert by_branch["gitops-bot/staging/fraud-v2-candidate-8"]["merged"]
    production = by_branch["gitops-bot/production/fraud-v2-candidate-8"]
    assert not production["merged"]  # still needs its approval
    assert "auto_promote after #" in production["body"]
