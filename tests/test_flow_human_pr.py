"""Human pull requests that touch overlays get the rendered diff, updated in place on push."""

from __future__ import annotations

import pytest
from bot_harness import BotHarness


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    return BotHarness(fake_github, tmp_path, (gitops_repo,))


def _diff_comments(fake, repo, number):
    return [
        c
        for c in fake.comments(repo, number)
        if c["user"]["login"] == fake.bot_login and "gitops-bot:diff" in c["body"]
    ]


def _deliver(bot, fake, repo, number, action):
    payload = fake.payload_pull_request(repo, number, action)
    assert bot.deliver_github("pull_request", payload).status_code == 202
    bot.drain()


def test_overlay_change_renders_only_that_overlay_and_updates_in_place(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    path = "k8s/overlays/production/kustomization.yaml"
    edited = fake.file_at(repo, "main", path).replace(b"count: 2", b"count: 3")
    fake.push_commit(repo, "scale-prod", {path: edited}, "Scale production", "alice")
    number = fake.open_pr(repo, "scale-prod", title="Scale production to 3")
    _deliver(bot, fake, repo, number, "opened")

    [comment] = _diff_comments(fake, repo, number)
    assert "Deployment/fraud-detection/fraud-detector" in comment["body"]
    assert "`spec.replicas`: `2` → `3`" in comment["body"]
    assert "fraud-detection-staging" not in comment["body"]  # staging is not affected
    head = fake.pr(repo, number)["head"]["sha"]
    render = {c["name"]: c for c in fake.check_runs(repo, head)}["gitops-bot/render"]
    assert render["conclusion"] == "success"

    # a new push: the same comment is updated, not a second one posted
    edited = edited.replace(b"count: 3", b"count: 4")
    fake.push_commit(repo, "scale-prod", {path: edited}, "Scale more", "alice")
    _deliver(bot, fake, repo, number, "synchronize")
    [updated] = _diff_comments(fake, repo, number)
    assert updated["id"] == comment["id"] and "`2` → `4`" in updated["body"]


def test_broken_overlay_in_a_human_pr_fails_the_render_check(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    path = "k8s/overlays/staging/kustomization.yaml"
    broken = fake.file_at(repo, "main", path).replace(b"experiment-patch.yaml", b"missing.yaml")
    fake.push_commit(repo, "oops", {path: broken}, "Break staging", "alice")
    number = fake.open_pr(repo, "oops", title="Refactor staging")
    _deliver(bot, fake, repo, number, "opened")
    [comment] = _diff_comments(fake, repo, number)
    assert "broken by this change" in comment["body"] and "missing.yaml" in comment["body"]
    head = fake.pr(repo, number)["head"]["sha"]
    render = {c["name"]: c for c in fake.check_runs(repo, head)}["gitops-bot/render"]
    assert render["conclusion"] == "failure"
