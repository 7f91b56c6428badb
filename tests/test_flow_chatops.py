"""ChatOps and the approval gate through the whole bot and the fake GitHub."""

from __future__ import annotations

import pytest
from bot_harness import BotHarness, mlflow_model_version_created

from bot.core.report import parse_meta

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
PROD_BRANCH = "gitops-bot/production/fraud-v2-candidate-8"


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    harness = BotHarness(fake_github, tmp_path, (gitops_repo,))
    perms = {"alice": "write", "bob": "write", "carol": "admin", "dave": "read", "erin": "write"}
    for user, perm in perms.items():
        fake_github.set_permission(gitops_repo, user, perm)
    fake_github.add_team_member("acme", "ml-platform", "bob")
    fake_github.add_team_member("acme", "ml-platform", "carol")
    return harness


def _comment(bot, fake, repo, number, user, body, delivery=None):
    payload = fake.payload_issue_comment(repo, number, user, body)
    response = bot.deliver_github("issue_comment", payload, delivery)
    assert response.status_code in (200, 202), response.get_json()
    bot.drain()
    return payload


def _bot_replies(fake, repo, number):
    return [c for c in fake.comments(repo, number) if c["user"]["login"] == fake.bot_login]


def _staging_merged(bot, fake, repo):
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    staging = next(p for p in fake.prs(repo) if p["head"]["ref"].startswith("gitops-bot/staging/"))
    assert staging["merged"], "staging auto-merges"
    return staging["number"]


def _production_pr(fake, repo):
    prs = [p for p in fake.prs(repo) if p["head"]["ref"] == PROD_BRANCH]
    return prs[0] if prs else None


def _review(bot, fake, repo, number, user, state, commit_id=None):
    review_id = fake.add_review(repo, number, user, state, commit_id=commit_id)
    payload = fake.payload_pull_request_review(repo, number, review_id)
    assert bot.deliver_github("pull_request_review", payload).status_code == 202
    bot.drain()


def test_promotion_chain_from_mlflow_to_approved_production_merge(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    staging = _staging_merged(bot, fake, repo)

    comment = _comment(bot, fake, repo, staging, "carol", "/promote production")
    assert ("eyes", fake.bot_login) in [
        (c, u) for u, c in fake.reactions(repo, comment["comment"]["id"])
    ]
    prod = _production_pr(fake, repo)
    assert prod is not None and prod["title"] == "Promote fraud-detector v8 to production"
    assert parse_meta(prod["body"])["requester"] == "carol"
    reply = _bot_replies(fake, repo, staging)[-1]["body"]
    assert f"#{prod['number']}" in reply

    head = prod["head"]["sha"]
    gate = {c["name"]: c for c in fake.check_runs(repo, head)}["gitops-bot/approval"]
    assert gate["status"] != "completed"

    # the requester approving her own promotion does not count
    _review(bot, fake, repo, prod["number"], "carol", "APPROVED")
    prod = _production_pr(fake, repo)
    assert not prod["merged"]
    gate = {c["name"]: c for c in fake.check_runs(repo, head)}["gitops-bot/approval"]
    assert "asked for this promotion" in gate["output"]["summary"]

    # an eligible reviewer approves the current head: merged with the sha guard
    _review(bot, fake, repo, prod["number"], "bob", "APPROVED")
    prod = _production_pr(fake, repo)
    assert prod["merged"]
    [merge_call] = fake.calls_to("PUT", rf"/pulls/{prod['number']}/merge$")
    assert merge_call.json()["sha"] == head and merge_call.status == 200
    kustomization = fake.file_at(repo, "main", "k8s/overlays/production/kustomization.yaml")
    assert b"newTag: 'v8'   # last promoted image" in kustomization  # quoting kept


def test_push_after_approval_blocks_merge_until_reapproved_and_asked(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    staging = _staging_merged(bot, fake, repo)
    _comment(bot, fake, repo, staging, "carol", "/promote production")
    prod = _production_pr(fake, repo)
    old_head = prod["head"]["sha"]
    fake.add_check_run(repo, old_head, "ci/test", status="in_progress")
    _review(bot, fake, repo, prod["number"], "bob", "APPROVED")
    assert not _production_pr(fake, repo)["merged"], "pending CI blocks"

    # someone pushes to the promotion branch: the approval is now for an older commit
    new_head = fake.push_commit(repo, PROD_BRANCH, {"NOTES.md": b"tweak\n"}, "tweak", "dave")
    payload = fake.payload_pull_request(repo, prod["number"], "synchronize", sender="dave")
    bot.deliver_github("pull_request", payload)
    bot.drain()
    fake.add_check_run(repo, new_head, "ci/test", status="completed", conclusion="success")
    run_id = fake.check_runs(repo, new_head)[-1]["id"]
    bot.deliver_github("check_run", fake.payload_check_run(repo, run_id))
    bot.drain()
    prod = _production_pr(fake, repo)
    assert not prod["merged"]
    gate = {c["name"]: c for c in fake.check_runs(repo, new_head)}["gitops-bot/approval"]
    assert "approved an older commit" in gate["output"]["summary"]

    _review(bot, fake, repo, prod["number"], "bob", "APPROVED")
    gate = {c["name"]: c for c in fake.check_runs(repo, new_head)}["gitops-bot/approval"]
    assert gate["conclusion"] == "success"
    # someone else's commit is in it now: the bot no longer merges it unasked
    assert not _production_pr(fake, repo)["merged"]
    _comment(bot, fake, repo, prod["number"], "bob", "/merge")
    assert _production_pr(fake, repo)["merged"]


@pytest.mark.parametrize(
    ("user", "body", "expected"),
    [
        ("dave", "/promote fraud-v2-candidate 8 to staging", "`read` permission"),
        ("erin", "/promote fraud-v2-candidate 6 to production", "not among those allowed"),
        ("carol", "/promtoe production", "Did you mean `/promote`"),
        ("carol", "/promote production --traffic 90/20", "must sum to 100"),
        ("carol", "/promote fraud-v3 8 to staging", "Unknown model 'fraud-v3'"),
        ("carol", "/promote fraud-v2-candidate 8 to prod", "Did you mean 'production'"),
    ],
)
def test_bad_commands_get_a_specific_reply_and_change_nothing(
    bot, fake_github, gitops_repo, user, body, expected
):
    repo, fake = gitops_repo, fake_github
    issue = fake.open_issue(repo, "Deploy please")
    main_before = fake.branch_sha(repo, "main")
    fake.set_permission(repo, "alice", "write")
    _comment(bot, fake, repo, issue, user, body)
    replies = _bot_replies(fake, repo, issue)
    assert len(replies) == 1 and expected in replies[0]["body"], replies
    assert fake.prs(repo) == [] and fake.branch_sha(repo, "main") == main_before


def test_redelivered_command_changes_nothing_a_second_time(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    staging = _staging_merged(bot, fake, repo)
    payload = _comment(bot, fake, repo, staging, "carol", "/promote production", delivery="c-1")
    writes_before = len([c for c in fake.calls if c.method != "GET"])
    replies_before = _bot_replies(fake, repo, staging)
    # GitHub redelivers the same delivery (dedupe at intake) ...
    assert bot.deliver_github("issue_comment", payload, "c-1").status_code == 200
    # ... and a different delivery of the same comment is processed but finds everything done
    assert bot.deliver_github("issue_comment", payload, "c-2").status_code == 202
    bot.drain()
    assert _bot_replies(fake, repo, staging) == replies_before
    assert len([p for p in fake.prs(repo) if p["head"]["ref"] == PROD_BRANCH]) == 1
    writes = [c for c in fake.calls if c.method != "GET"][writes_before:]
    assert [(c.method, c.path) for c in writes if "reactions" not in c.path] == []


def test_promote_to_production_before_staging_is_refused(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    issue = fake.open_issue(repo, "skip staging")
    # v6 is live in staging in the example repo: allowed (URI taken from staging)
    _comment(bot, fake, repo, issue, "carol", "/promote fraud-v2-candidate 6 to production")
    [pr] = fake.prs(repo)
    assert pr["title"] == "Promote fraud-detector v6 to production"
    # v9 is not: refused with the reason
    _comment(bot, fake, repo, issue, "bob", "/promote fraud-v2-candidate 9 to production")
    replies = _bot_replies(fake, repo, issue)
    assert "is not live in staging" in replies[-1]["body"]
    assert len(fake.prs(repo)) == 1


def test_merge_command_explains_what_is_missing(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    staging = _staging_merged(bot, fake, repo)
    _comment(bot, fake, repo, staging, "carol", "/promote production")
    prod = _production_pr(fake, repo)
    _comment(bot, fake, repo, prod["number"], "bob", "/merge")
    reply = _bot_replies(fake, repo, prod["number"])[-1]["body"]
    assert "Not merging yet" in reply and "0 of 1 required approval(s)" in reply
    assert not _production_pr(fake, repo)["merged"]


def test_diff_command_renders_a_human_pr(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    path = "k8s/base/models.yaml"
    models = fake.file_at(repo, "main", path).replace(b"sklearn", b"xgboost")
    fake.push_commit(repo, "human/xgb", {path: models}, "Switch runtime", "alice")
    number = fake.open_pr(repo, "human/xgb", title="Switch to xgboost")
    _comment(bot, fake, repo, number, "bob", "/diff")
    bodies = [c["body"] for c in _bot_replies(fake, repo, number)]
    diff = next(b for b in bodies if b.startswith("<!-- gitops-bot:diff -->"))
    # a change in base/ is rendered for every overlay above it
    assert "staging" in diff and "production" in diff and "xgboost" in diff
    assert any("Re-rendered the diff" in b for b in bodies)


def test_rollback_restores_the_previous_version_from_history(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    _staging_merged(bot, fake, repo)  # staging: v6 -> v8
    issue = fake.open_issue(repo, "v8 misbehaves")
    _comment(bot, fake, repo, issue, "carol", "/rollback staging")
    [rollback] = [p for p in fake.prs(repo) if "/rollback/" in p["head"]["ref"]]
    assert rollback["title"] == "Roll back fraud-detector to v6 in staging"
    kustomization = fake.file_at(repo, "main", "k8s/overlays/staging/kustomization.yaml")
    assert b"newTag: v6" in kustomization  # staging auto-merges the rollback too


def test_newer_promotion_supersedes_the_open_one_for_the_same_model_and_env(
    bot, fake_github, gitops_repo
):
    repo, fake = gitops_repo, fake_github
    issue = fake.open_issue(repo, "promote v6")
    _comment(bot, fake, repo, issue, "carol", "/promote fraud-v2-candidate 6 to production")
    [older] = fake.prs(repo)
    staging = _staging_merged(bot, fake, repo)
    _comment(bot, fake, repo, staging, "carol", "/promote production")
    newer = _production_pr(fake, repo)
    older = fake.pr(repo, older["number"])
    assert older["state"] == "closed" and not older["merged"]
    notice = [c["body"] for c in _bot_replies(fake, repo, older["number"])]
    assert any(f"Superseded by #{newer['number']}" in body for body in notice)
    assert newer["state"] == "open"


def test_dry_run_replies_with_the_diff_and_opens_nothing(bot, fake_github, gitops_repo):
    repo, fake = gitops_repo, fake_github
    issue = fake.open_issue(repo, "what would v6 do in production?")
    body = "/promote fraud-v2-candidate 6 to production --traffic 90/10 --dry-run"
    _comment(bot, fake, repo, issue, "carol", body)
    [reply] = _bot_replies(fake, repo, issue)
    assert "Dry run" in reply["body"]
    assert "`spec.candidates[name=fraud-v2-candidate].weight`: `20` → `10`" in reply["body"]
    assert "Model/fraud-detection/fraud-v2-candidate" in reply["body"]
    assert fake.prs(repo) == []
    assert [c for c in fake.calls if c.method == "POST" and "/git/" in c.path] == []
