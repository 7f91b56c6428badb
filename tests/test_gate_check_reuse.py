"""The gate reuses the check-run listing it already made to find its own approval check."""

from __future__ import annotations

from bot.gateways.github import GitHubApp

REPO = "acme/gitops"
NAME = "gitops-bot/approval"


def _client(fake, slug=True):
    fake.create_repo(REPO, files={"README.md": b"hello\n"})
    app = GitHubApp(fake.app_id, fake.private_key_pem, app_slug=fake.app_slug)
    client = app.client_for_repo(REPO)
    if not slug:
        app.app_slug = None  # e.g. a GHES that does not say: only the app id tells runs apart
    return client, fake.branch_sha(REPO, "main")


def _upsert(client, sha, title):
    runs = client.check_runs(REPO, sha)
    return client.upsert_check_run(
        REPO, sha, NAME, status="in_progress", title=title, summary="s", known=runs
    )


def test_known_runs_update_our_check_in_place_without_a_second_lookup(fake_github):
    client, sha = _client(fake_github)
    first = _upsert(client, sha, "needs 1 approval")
    lookups = len(fake_github.calls_to("GET", r"/check-runs$"))
    second = _upsert(client, sha, "needs 1 approval from @alice")
    assert second == first
    assert len(fake_github.calls_to("GET", r"/check-runs$")) == lookups + 1  # the listing only
    assert len(fake_github.calls_to("PATCH", r"/check-runs/\d+$")) == 1
    ours = [c for c in fake_github.check_runs(REPO, sha) if c["name"] == NAME]
    assert [c["output"]["title"] for c in ours] == ["needs 1 approval from @alice"]


def test_known_runs_never_adopt_another_apps_check_of_the_same_name(fake_github):
    client, sha = _client(fake_github, slug=False)
    theirs = fake_github.add_check_run(REPO, sha, NAME, status="in_progress", app_slug="ci")
    mine = _upsert(client, sha, "needs 1 approval")
    assert mine != theirs
    assert fake_github.calls_to("PATCH", r"/check-runs/\d+$") == []
    apps = sorted(c["app"]["slug"] for c in fake_github.check_runs(REPO, sha) if c["name"] == NAME)
    assert apps == ["ci", fake_github.app_slug]
