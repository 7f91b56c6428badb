"""The operator page: environments, deployed versions, promotion PRs and jobs, in a real browser."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from browser import Browser
from fakegithub import FakeGitHub
from flask import Flask
from flask.testing import FlaskClient
from signin_helpers import (
    SESSION_COOKIE,
    SESSION_SECRET,
    NoOAuth,
    session_cookie,
    session_data,
    sign_in_as,
)
from werkzeug.serving import make_server

from bot.core.deployed import Deployed
from bot.core.overlays import apply_edits
from bot.core.report import meta_marker
from bot.gateways.github import GitHubApp
from bot.gateways.queue import JobQueue, NewJob
from bot.settings import Secret, Settings
from bot.web.app import create_app
from bot.web.operator import (
    EnvOverview,
    GitHubOperatorData,
    PrOverview,
    RepoOverview,
    install_operator_page,
)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
SCREENSHOT = ARTIFACTS / "operator-page.png"

FAKE_SECRETS = ("whsec-operator-page-7f3a9c", "mlflow-secret-19d2e6", "-----BEGIN FAKE KEY 42-----")
HOSTILE_TITLE = 'Promote <script>alert("pr")</script> v9'
HOSTILE_ERROR = "<script>alert('job')</script> 502 Bad Gateway from https://api.github.com"
STAGING_URI = "s3://ml-models/fraud-detector/8/artifacts/model"
PROD_URI = "s3://ml-models/fraud-detector/7/artifacts/model"
NOW = 1_764_000_000.0


def deployed(env: str, version: str | None, uri: str | None) -> Deployed:
    return Deployed(
        environment=env,
        model="fraud-v2-candidate",
        version=version,
        storage_uri=uri,
        values=(
            ("model-config.yaml", "data.fraud-v2-storage-uri", uri),
            ("kustomization.yaml", "images.[name=fraud-detector].newTag", f"v{version}"),
        ),
    )


def overview() -> list[RepoOverview]:
    staging = EnvOverview(
        "staging", "k8s/overlays/staging", True, "no approval required",
        [deployed("staging", "8", STAGING_URI)],
    )  # fmt: skip
    production = EnvOverview(
        "production", "k8s/overlays/production", False,
        "1 approval from @alice or team ml-platform",
        [deployed("production", "7", PROD_URI)], promote_from="staging",
    )  # fmt: skip
    prs = [
        PrOverview(
            number=42, title="Promote fraud-detector v8 to production",
            url="https://github.com/acme/gitops/pull/42", env="production",
            model="fraud-v2-candidate", version="8", requester="carol",
            approval_state="needs_approval",
            approval_reasons=("0 of 1 required approval(s) on the head commit 1a2b3c4",
                              "@carol asked for this promotion and cannot approve it"),
            required_approvals=1,
        ),
        PrOverview(
            number=43, title=HOSTILE_TITLE, url="javascript:alert(1)", env="staging",
            model="fraud-v2-candidate", version="9", requester="mlflow",
            approval_state="ready", approval_reasons=(),
        ),
    ]  # fmt: skip
    return [
        RepoOverview("acme/gitops", "main", "1a2b3c4d5e6f7a8b9c0d", [staging, production], prs),
        RepoOverview(
            "acme/gitops-eu",
            "",
            "",
            [],
            [],
            error="the GitHub App is not installed on acme/gitops-eu",
        ),
    ]


@dataclass
class StubOperatorData:
    """A plain provider: fixed repository overviews, jobs from a real SQLite queue."""

    queue: JobQueue
    repos: list[RepoOverview] = field(default_factory=overview)

    def repositories(self) -> list[RepoOverview]:
        return self.repos

    def jobs(self, limit: int, repos: Any) -> list[dict[str, Any]]:
        return self.queue.recent(limit, repos=repos)

    def job_counts(self, repos: Any) -> dict[str, int]:
        return self.queue.counts(repos=repos)


@pytest.fixture
def queue(tmp_path: Path) -> JobQueue:
    q = JobQueue.from_url(f"sqlite:///{tmp_path / 'jobs.db'}", max_attempts=3)
    q.migrate()
    for i, kind in enumerate(("model_version.created", "issue_comment", "pull_request_review")):
        q.enqueue(NewJob(f"test:{i}", "github", kind, "acme/gitops", {"n": i}))
    first = q.claim("w1")
    assert first is not None
    q.complete(first)
    second = q.claim("w1")
    assert second is not None
    q.fail(second, HOSTILE_ERROR)
    return q


def settings() -> Settings:
    return Settings(
        github_app_id="12345",
        github_private_key=Secret(FAKE_SECRETS[2] + "\nMIIE...\n-----END FAKE KEY-----"),
        github_webhook_secret=Secret(FAKE_SECRETS[0]),
        mlflow_webhook_secret=Secret(FAKE_SECRETS[1]),
        mlflow_target_repos=("acme/gitops",),
        github_client_id="Iv1.operatorpagetests",
        github_client_secret=Secret("client-secret-operator-page"),
        session_secret=Secret(SESSION_SECRET),
        public_url="http://127.0.0.1",
    )


VISIBLE = ("acme/gitops", "acme/gitops-eu")


def build(provider: Any, queue: JobQueue) -> Flask:
    app = create_app(settings(), queue)
    install_operator_page(
        app, provider, oauth=NoOAuth(), settings=settings(), repos=VISIBLE, clock=lambda: NOW
    )
    return app


def signed_in(app: Flask, repos: tuple[str, ...] = VISIBLE) -> FlaskClient:
    """A client signed in as carol, who can read `repos`."""
    client = app.test_client()
    sign_in_as(client, "carol", repos)
    return client


# --------------------------------------------------------------------------- server-rendered


def test_page_shows_environments_versions_uris_prs_and_jobs(queue: JobQueue) -> None:
    response = signed_in(build(StubOperatorData(queue), queue)).get("/")
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    html = response.get_data(as_text=True)
    for text in (
        "acme/gitops", "main @ 1a2b3c4", "staging", "production", "k8s/overlays/production",
        "v8", "v7", STAGING_URI, PROD_URI, "1 approval from @alice or team ml-platform",
        'href="https://github.com/acme/gitops/pull/42"', "#42", "carol", "Needs approval",
        "0 of 1 required approval(s) on the head commit 1a2b3c4", "0/1 approvals",
        "Ready to merge", "model_version.created", "pull_request_review",
        "the GitHub App is not installed on acme/gitops-eu",
    ):  # fmt: skip
        assert text in html, text
    # job counts by status: one done, one failed, one queued (claim order is FIFO)
    counts = html[html.index('id="job-counts"') :]
    for status, n in (("queued", 1), ("running", 0), ("done", 1), ("failed", 1)):
        assert f"{status} <strong>{n}</strong>" in counts


def test_hostile_titles_errors_and_links_are_escaped(queue: JobQueue) -> None:
    html = signed_in(build(StubOperatorData(queue), queue)).get("/").get_data(as_text=True)
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;pr&#34;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#39;job&#39;)&lt;/script&gt; 502 Bad Gateway" in html
    assert "javascript:" not in html  # not a link: shown as plain "#43"
    assert "#43" in html


def test_page_and_json_contain_no_secret_values(queue: JobQueue) -> None:
    client = signed_in(build(StubOperatorData(queue), queue))
    page = client.get("/")
    api = client.get("/api/status")
    for response in (page, api):
        body = response.get_data(as_text=True)
        for secret in FAKE_SECRETS:
            assert secret not in body
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_status_api_returns_the_same_data_as_json(queue: JobQueue) -> None:
    data = signed_in(build(StubOperatorData(queue), queue)).get("/api/status?limit=2").get_json()
    repo = data["repositories"][0]
    assert repo["repo"] == "acme/gitops"
    assert [e["name"] for e in repo["environments"]] == ["staging", "production"]
    assert repo["environments"][1]["deployed"][0]["version"] == "7"
    assert repo["environments"][1]["deployed"][0]["storage_uri"] == PROD_URI
    assert repo["open_prs"][1]["title"] == HOSTILE_TITLE  # JSON: raw text, typed content
    assert data["repositories"][1]["error"].startswith("the GitHub App is not installed")
    assert data["job_counts"] == {"queued": 1, "running": 0, "done": 1, "failed": 1}
    assert len(data["jobs"]) == 2
    assert data["jobs"][0]["kind"] == "pull_request_review"
    assert data["jobs"][1]["last_error"] == HOSTILE_ERROR


class BrokenProvider(StubOperatorData):
    def repositories(self) -> list[RepoOverview]:
        raise RuntimeError("https://x-access-token:ghs_leaked@github.com unreachable")

    def jobs(self, limit: int, repos: Any) -> list[dict[str, Any]]:
        raise OSError("database is locked")


def test_failing_sources_show_errors_instead_of_a_500(queue: JobQueue) -> None:
    client = signed_in(build(BrokenProvider(queue), queue))
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Repositories unavailable: RuntimeError while reading the repository" in html
    assert "Job queue unavailable (OSError)" in html
    assert "ghs_leaked" not in html
    api = client.get("/api/status")
    assert api.status_code == 200
    assert len(api.get_json()["errors"]) == 2


# --------------------------------------------------------------------------- GitHub provider

PROD_BRANCH = "gitops-bot/production/fraud-v2-candidate-42"


def promotion_meta(requester: str, env: str = "production") -> dict[str, object]:
    return {"v": 1, "model": "fraud-v2-candidate", "version": "42", "env": env,
            "requester": requester}  # fmt: skip


def promotion_body(requester: str, env: str = "production") -> str:
    return "Promote\n\n" + meta_marker(promotion_meta(requester, env)) + "\n"


@pytest.fixture
def github_data(
    fake_github: FakeGitHub, gitops_repo: str, queue: JobQueue
) -> Iterator[tuple[GitHubOperatorData, list[float]]]:
    now = [1000.0]
    app = GitHubApp(fake_github.app_id, fake_github.private_key_pem, sleep=lambda s: None)
    data = GitHubOperatorData(
        app, queue, [gitops_repo, "acme/not-installed"], cache_ttl_s=30,
        bot_login=fake_github.bot_login, clock=lambda: now[0],
    )  # fmt: skip
    yield data, now


def set_production(fake: FakeGitHub, repo: str, branch: str, version: int) -> None:
    """Commit the production overlay deploying `version` (edited with the real overlay editor)."""
    files = {}
    for name, fieldpath, value in (
        ("model-config.yaml", "data.fraud-v2-storage-uri", f"s3://models/fraud/{version}/model"),
        ("kustomization.yaml", "images.[name=fraud-detector].newTag", f"v{version}"),
    ):
        path = f"k8s/overlays/production/{name}"
        content = fake.file_at(repo, "main", path)
        assert content is not None
        files[path] = apply_edits(path, content, [(fieldpath, value)])[0]
    fake.push_commit(repo, branch, dict(files), f"production: v{version}", author="alice")


def test_github_provider_reads_deployed_versions_and_pr_approval_state(
    fake_github: FakeGitHub, gitops_repo: str, github_data: tuple[GitHubOperatorData, list[float]]
) -> None:
    data, now = github_data
    set_production(fake_github, gitops_repo, "main", 41)
    set_production(fake_github, gitops_repo, PROD_BRANCH, 42)
    number = fake_github.open_pr(
        gitops_repo, PROD_BRANCH, title="Promote fraud-detector v42 to production",
        body=promotion_body("carol"), user="gitops-bot[bot]",
    )  # fmt: skip
    data.records.save_promotion(gitops_repo, number, PROD_BRANCH, promotion_meta("carol"))
    head = fake_github.branch_sha(gitops_repo, PROD_BRANCH)
    data.records.save_render(
        gitops_repo, number, head_sha=head, base_ref="main",
        merge_base=fake_github.branch_sha(gitops_repo, "main"), environments=["production"],
    )  # fmt: skip
    fake_github.set_permission(gitops_repo, "carol", "write")
    fake_github.set_permission(gitops_repo, "alice", "write")
    fake_github.add_review(gitops_repo, number, "carol", "APPROVED")

    repo, missing = data.repositories()
    assert missing.repo == "acme/not-installed"
    assert missing.error is not None and "not installed" in missing.error
    assert repo.error is None and repo.default_branch == "main"
    assert repo.sha == fake_github.branch_sha(gitops_repo, "main")
    envs = {e.name: e for e in repo.environments}
    assert list(envs) == ["staging", "production"]
    assert envs["production"].approvals_text == "1 approval from @alice or team ml-platform"
    assert envs["staging"].approvals_text == "no approval required"
    [prod] = envs["production"].deployed  # the default branch, not the PR branch
    assert (prod.model, prod.version, prod.storage_uri) == (
        "fraud-v2-candidate", "41", "s3://models/fraud/41/model",
    )  # fmt: skip
    [pr] = repo.open_prs
    assert (pr.number, pr.env, pr.model, pr.version, pr.requester) == (
        number, "production", "fraud-v2-candidate", "42", "carol",
    )  # fmt: skip
    assert pr.approval_state == "needs_approval"
    assert pr.required_approvals == 1 and pr.approvers == ()
    assert "@carol asked for this promotion and cannot approve it" in pr.approval_reasons

    fake_github.add_review(gitops_repo, number, "alice", "APPROVED")
    assert data.repositories()[0].open_prs[0].approval_state == "needs_approval"  # cached
    now[0] += 31
    after = data.repositories()[0].open_prs[0]
    assert after.approvers == ("alice",)
    assert after.approval_state == "ready", after.approval_reasons
    assert fake_github.check_runs(gitops_repo, after.head_sha) == []  # read-only: no gate check


def test_github_provider_caches_reads_for_the_ttl(
    fake_github: FakeGitHub, gitops_repo: str, github_data: tuple[GitHubOperatorData, list[float]]
) -> None:
    data, now = github_data
    data.repositories()
    first = len(fake_github.calls)
    assert first > 0
    for _ in range(5):
        data.repositories()
    assert len(fake_github.calls) == first  # errors are cached too (the missing repo)
    now[0] += 31
    data.repositories()
    assert len(fake_github.calls) > first


def test_github_provider_keeps_last_good_data_when_github_fails(
    fake_github: FakeGitHub, gitops_repo: str, github_data: tuple[GitHubOperatorData, list[float]]
) -> None:
    data, now = github_data
    good = data.repositories()[0]
    assert good.environments and good.error is None
    fake_github.push_commit(
        gitops_repo, "main", {".gitops-bot.yaml": b"version: 1\nenvironments: 3\n"}
    )
    now[0] += 31
    stale = data.repositories()[0]
    assert stale.error is not None and ".gitops-bot.yaml" in stale.error
    assert [e.name for e in stale.environments] == [e.name for e in good.environments]


# --------------------------------------------------------------------------- real browser


@pytest.fixture
def served_page(queue: JobQueue) -> Iterator[tuple[Flask, str]]:
    app = build(StubOperatorData(queue), queue)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_page_renders_in_headless_chromium(served_page: tuple[Flask, str], tmp_path: Path) -> None:
    app, url = served_page
    with Browser(tmp_path / "profile") as browser:
        browser.goto(url)
        assert "acme/gitops" not in browser.html()  # signed out: nothing to see
        cookie = session_cookie(app, session_data("carol", VISIBLE))
        browser.set_cookie(SESSION_COOKIE, cookie, url)
        browser.goto(url)
        html = browser.html()
        for text in ("acme/gitops", "production", "v7", "v8", PROD_URI, STAGING_URI, "#42"):
            assert text in html, text
        assert "Needs approval" in html and "pull_request_review" in html
        assert "Signed in as" in html and "carol" in html
        assert "<script" not in html.replace("&lt;script", "")  # the hostile text stayed text
        assert '&lt;script&gt;alert("pr")&lt;/script&gt;' in html

        ARTIFACTS.mkdir(exist_ok=True)
        SCREENSHOT.unlink(missing_ok=True)
        SCREENSHOT.write_bytes(browser.screenshot())
    png = SCREENSHOT.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 1000)
    assert len(png) > 30_000  # a blank or error page compresses to a few kB


def test_page_shows_what_argo_cd_and_flagger_say_runs_in_each_environment(
    queue: JobQueue,
) -> None:
    from bot.web.operator import LiveOverview

    repos = overview()
    staging = repos[0].environments[0]
    live = LiveOverview(
        application="fraud-detection-staging", revision="8c4961a2b3c4", ours=True,
        sync_status="Synced", health_status="Healthy", healthy_for="2h 5m",
        deployment_state="success", deployment_version="8", deployment_age="3h 10m",
        canary_phase="Succeeded",
    )  # fmt: skip
    repos[0].environments[0] = dataclasses.replace(staging, live=live)
    foreign = LiveOverview(revision="0badc0ffee00", sync_status="OutOfSync",
                           health_status="Degraded")  # fmt: skip
    production = repos[0].environments[1]
    repos[0].environments[1] = dataclasses.replace(production, live=foreign)
    page = signed_in(build(StubOperatorData(queue, repos), queue)).get("/").get_data(as_text=True)
    assert "8c4961a2b3c4</span>: Synced/Healthy, healthy for 2h 5m" in page
    assert "v8 success, 3h 10m ago" in page
    assert "<dt>Canary</dt><dd>Succeeded</dd>" in page
    assert "0badc0ffee00</span> (not merged by gitops-bot): OutOfSync/Degraded" in page
