"""The approval gate as an attacker with write access tries it: each test drives the whole
bot (signed webhooks in, the fake GitHub's state out) through one way around the gate."""

from __future__ import annotations

import json

import pytest
from bot_harness import BotHarness, mlflow_model_version_created
from fakegithub import shapes

from bot.core.report import meta_marker

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
PROD_BRANCH = "gitops-bot/production/fraud-v2-candidate-8"
PROD_OVERLAY = "k8s/overlays/production/kustomization.yaml"


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    harness = BotHarness(fake_github, tmp_path, (gitops_repo,))
    # carol and bob may approve production (team ml-platform); mallory and erin have write
    # access and nothing more: they must never get a production change merged
    perms = {"alice": "write", "bob": "write", "carol": "admin", "mallory": "write"}
    for user, perm in {**perms, "erin": "write"}.items():
        fake_github.set_permission(gitops_repo, user, perm)
    fake_github.add_team_member("acme", "ml-platform", "bob")
    fake_github.add_team_member("acme", "ml-platform", "carol")
    return harness


# --------------------------------------------------------------------------- helpers


def comment(bot, fake, repo, number, user, body):
    payload = fake.payload_issue_comment(repo, number, user, body)
    assert bot.deliver_github("issue_comment", payload).status_code in (200, 202)
    bot.drain()


def review(bot, fake, repo, number, user, state="APPROVED"):
    review_id = fake.add_review(repo, number, user, state)
    payload = fake.payload_pull_request_review(repo, number, review_id)
    assert bot.deliver_github("pull_request_review", payload).status_code == 202
    bot.drain()


def pr_event(bot, fake, repo, number, action, sender=None):
    payload = fake.payload_pull_request(repo, number, action, sender=sender)
    assert bot.deliver_github("pull_request", payload).status_code == 202
    bot.drain()


def push(bot, fake, repo, number, branch, files, user):
    """A human push to a PR branch, and the `synchronize` event GitHub sends for it."""
    fake.push_commit(repo, branch, files, f"Change by {user}", user)
    pr_event(bot, fake, repo, number, "synchronize", sender=user)


def checks(fake, repo, sha):
    return {c["name"]: c for c in fake.check_runs(repo, sha)}


def production_pr(bot, fake, repo):
    """Staging v8 merged by MLflow, then carol's `/promote production`: the production PR."""
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    staging = next(p for p in fake.prs(repo) if p["head"]["ref"].startswith("gitops-bot/staging/"))
    assert staging["merged"]
    comment(bot, fake, repo, staging["number"], "carol", "/promote production")
    [prod] = [p for p in fake.prs(repo) if p["head"]["ref"] == PROD_BRANCH]
    assert not prod["merged"]
    return prod["number"]


def edited_meta(body: str, **changes: object) -> str:
    """The PR body with its hidden metadata marker rewritten, as a user would edit it."""
    start = body.index("<!-- gitops-bot:meta ")
    end = body.index(" -->", start) + len(" -->")
    meta = json.loads(body[start + len("<!-- gitops-bot:meta ") : end - len(" -->")])
    return body[:start] + meta_marker({**meta, **changes}) + body[end:]


def set_config(fake, repo, old: bytes, new: bytes) -> None:
    config = fake.file_at(repo, "main", ".gitops-bot.yaml")
    assert old in config
    fake.push_commit(repo, "main", {".gitops-bot.yaml": config.replace(old, new)}, "Config")


# --------------------------------------------------------------------------- 1. metadata


def test_an_edited_environment_in_the_pr_body_does_not_skip_production_approval(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    number = production_pr(bot, fake, repo)
    body = fake.pr(repo, number)["body"]
    fake.edit_pr_body(repo, number, edited_meta(body, env="staging"))
    comment(bot, fake, repo, number, "mallory", "/merge")

    assert not fake.pr(repo, number)["merged"]
    reply = [c for c in fake.comments(repo, number) if c["user"]["login"] == fake.bot_login][-1]
    assert "0 of 1 required approval(s)" in reply["body"]


def test_an_edited_requester_does_not_let_the_requester_approve(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    number = production_pr(bot, fake, repo)  # carol asked for it
    body = fake.pr(repo, number)["body"]
    fake.edit_pr_body(repo, number, edited_meta(body, requester="somebody-else"))
    review(bot, fake, repo, number, "carol")

    assert not fake.pr(repo, number)["merged"]
    gate = checks(fake, repo, fake.pr(repo, number)["head"]["sha"])["gitops-bot/approval"]
    assert "@carol asked for this promotion and cannot approve it" in gate["output"]["summary"]


def test_diff_on_an_edited_body_rerenders_the_recorded_promotion_only(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    number = production_pr(bot, fake, repo)
    body = fake.pr(repo, number)["body"]
    evil = "s3://attacker-bucket/backdoor/model"
    fake.edit_pr_body(repo, number, edited_meta(body, version="9", source_uri=evil))
    comment(bot, fake, repo, number, "mallory", "/diff")

    prs = fake.prs(repo)
    assert [p["number"] for p in prs if p["head"]["ref"].startswith("gitops-bot/production/")] == [
        number
    ]
    for pr in prs:
        for path in ("k8s/overlays/production/model-config.yaml",):
            content = fake.file_at(repo, pr["head"]["sha"], path) or b""
            assert evil.encode() not in content
    assert fake.pr(repo, number)["title"] == "Promote fraud-detector v8 to production"


# --------------------------------------------------------------------------- 2. branch prefix


def test_a_human_branch_named_like_a_promotion_is_gated_as_a_human_pr(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    branch = "gitops-bot/staging/innocent"
    scaled = fake.file_at(repo, "main", PROD_OVERLAY).replace(b"count: 2", b"count: 5")
    fake.push_commit(repo, branch, {PROD_OVERLAY: scaled}, "Innocent", "mallory")
    meta = {"v": 1, "kind": "promote", "model": "fraud-v2-candidate", "version": "9",
            "env": "staging", "requester": "mlflow"}  # fmt: skip
    number = fake.open_pr(
        repo, branch, title="Promote fraud-detector v9 to staging",
        body="Promote\n\n" + meta_marker(meta) + "\n", user="mallory",
    )  # fmt: skip
    pr_event(bot, fake, repo, number, "opened", sender="mallory")
    again = scaled.replace(b"count: 5", b"count: 6")
    push(bot, fake, repo, number, branch, {PROD_OVERLAY: again}, "mallory")
    comment(bot, fake, repo, number, "mallory", "/merge")

    pr = fake.pr(repo, number)
    assert not pr["merged"]
    gate = checks(fake, repo, pr["head"]["sha"])
    assert gate["gitops-bot/approval"]["status"] == "in_progress"
    assert "production" in gate["gitops-bot/approval"]["output"]["summary"]
    assert gate["gitops-bot/render"]["conclusion"] == "success"
    diff = [c for c in fake.comments(repo, number) if "gitops-bot:diff" in c["body"]]
    assert diff and "`2` → `6`" in diff[0]["body"]


# --------------------------------------------------------------------------- 3. shared files


def test_a_promotion_that_changes_production_through_a_base_waits_for_production_approval(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    set_config(
        fake, repo,
        b"    set:                              # edits, per environment, relative to its path\n",
        b"    set:\n      - file: ../../base/model-config.yaml\n"
        b"        field: data.registry-name\n        value: \"fraud-detector-{version}\"\n",
    )  # fmt: skip
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()

    [pr] = [p for p in fake.prs(repo) if p["head"]["ref"].startswith("gitops-bot/staging/")]
    assert not pr["merged"], "staging auto-merges, but this change also reaches production"
    gate = checks(fake, repo, pr["head"]["sha"])["gitops-bot/approval"]
    assert gate["status"] == "in_progress"
    assert "production: 0 of 1 required approval(s)" in gate["output"]["summary"]

    review(bot, fake, repo, pr["number"], "bob")  # an eligible production reviewer
    assert fake.pr(repo, pr["number"])["merged"]


# --------------------------------------------------------------------------- 4. auto_merge


def test_auto_merge_false_waits_for_an_eligible_merge_command(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    set_config(
        fake, repo,
        b"    auto_merge: true                  # merge once required checks are green",
        b"    auto_merge: false",
    )  # fmt: skip
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()

    [pr] = [p for p in fake.prs(repo) if p["head"]["ref"].startswith("gitops-bot/staging/")]
    assert not pr["merged"]
    assert "/merge" in pr["body"]
    gate = checks(fake, repo, pr["head"]["sha"])["gitops-bot/approval"]
    assert gate["conclusion"] == "success"  # nothing more is required: only someone's go
    fake.set_permission(repo, "dave", "read")
    comment(bot, fake, repo, pr["number"], "dave", "/merge")  # read access: refused
    assert not fake.pr(repo, pr["number"])["merged"]
    comment(bot, fake, repo, pr["number"], "alice", "/merge")
    assert fake.pr(repo, pr["number"])["merged"]


# --------------------------------------------------------------------------- 5. pushes


def test_a_push_to_a_promotion_pr_is_rerendered_and_its_pusher_cannot_approve(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    number = production_pr(bot, fake, repo)
    before = fake.pr(repo, number)["head"]["sha"]
    scaled = fake.file_at(repo, PROD_BRANCH, PROD_OVERLAY).replace(b"count: 2", b"count: 9")
    push(bot, fake, repo, number, PROD_BRANCH, {PROD_OVERLAY: scaled}, "bob")

    pr = fake.pr(repo, number)
    assert pr["head"]["sha"] != before
    run = checks(fake, repo, pr["head"]["sha"])
    assert run["gitops-bot/render"]["conclusion"] == "success"
    assert run["gitops-bot/approval"]["status"] == "in_progress"
    diff = [c for c in fake.comments(repo, number) if "gitops-bot:diff" in c["body"]]
    assert diff and pr["head"]["sha"][:7] in diff[0]["body"] and "`2` → `9`" in diff[0]["body"]
    assert "Commits not made by gitops-bot were pushed" in pr["body"]

    review(bot, fake, repo, number, "bob")  # bob pushed: his approval does not count
    assert not fake.pr(repo, number)["merged"]
    gate = checks(fake, repo, pr["head"]["sha"])["gitops-bot/approval"]
    assert "@bob opened or pushed to this pull request" in gate["output"]["summary"]

    review(bot, fake, repo, number, "alice")  # eligible and uninvolved: the gate holds,
    assert not fake.pr(repo, number)["merged"]  # but a changed promotion waits for /merge
    comment(bot, fake, repo, number, "alice", "/merge")
    assert fake.pr(repo, number)["merged"]


# --------------------------------------------------------------------------- 6. 3000 files


def test_a_change_hidden_behind_3000_listed_files_is_still_gated(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    files: dict[str, bytes | None] = {f"docs/notes/{i:04d}.md": b"note\n" for i in range(3000)}
    files[PROD_OVERLAY] = fake.file_at(repo, "main", PROD_OVERLAY).replace(b"count: 2", b"count: 7")
    fake.push_commit(repo, "many-files", files, "Notes and a small change", "mallory")
    number = fake.open_pr(repo, "many-files", title="Add notes", user="mallory")
    pr_event(bot, fake, repo, number, "opened", sender="mallory")

    head = fake.pr(repo, number)["head"]["sha"]
    run = checks(fake, repo, head)
    assert (
        "production"
        in run["gitops-bot/render"]["output"]["title"]
        + run["gitops-bot/render"]["output"]["summary"]
    )
    assert run["gitops-bot/approval"]["status"] == "in_progress"
    assert "0 of 1 required approval(s)" in run["gitops-bot/approval"]["output"]["summary"]


# --------------------------------------------------------------------------- 7. one truth


def test_a_refused_merge_leaves_the_check_pending_and_a_later_merge_updates_the_comment(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    number = production_pr(bot, fake, repo)
    reason = 'Required status check "ci/test" is expected.'
    fake.fail_next("PUT", r"/pulls/\d+/merge$", status=405, body=shapes.error(reason))
    review(bot, fake, repo, number, "bob")

    pr = fake.pr(repo, number)
    assert not pr["merged"]
    gate = checks(fake, repo, pr["head"]["sha"])["gitops-bot/approval"]
    assert gate["status"] == "in_progress" and gate["conclusion"] is None
    assert reason in gate["output"]["title"]
    [blocked] = [c for c in fake.comments(repo, number) if "gitops-bot:merge-blocked" in c["body"]]
    assert reason in blocked["body"]

    comment(bot, fake, repo, number, "bob", "/merge")
    assert fake.pr(repo, number)["merged"]
    [after] = [c for c in fake.comments(repo, number) if "gitops-bot:merge-blocked" in c["body"]]
    assert after["id"] == blocked["id"] and "could not merge" not in after["body"]


def test_merge_by_a_writer_not_eligible_for_production_is_refused_by_the_bot_not_github(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    number = production_pr(bot, fake, repo)
    # the gate holds once bob approves, but GitHub refuses that first merge ...
    fake.fail_next("PUT", r"/pulls/\d+/merge$", status=405, body=shapes.error("blocked"))
    review(bot, fake, repo, number, "bob")
    assert not fake.pr(repo, number)["merged"]
    # ... and mallory (write access, not eligible for production) asks to merge
    comment(bot, fake, repo, number, "mallory", "/merge")
    assert not fake.pr(repo, number)["merged"]
    reply = [c for c in fake.comments(repo, number) if c["user"]["login"] == fake.bot_login][-1]
    assert "⛔ Not merging:" in reply["body"]
    assert "mallory is not among those allowed for production" in reply["body"]
    assert "GitHub refused" not in reply["body"]
