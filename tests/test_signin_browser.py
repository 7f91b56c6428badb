"""The whole "Sign in with GitHub" flow in headless Chromium, against the fake GitHub's OAuth
endpoints over HTTP: signed out sees nothing, each user sees only what they can read."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bot_harness import GITHUB_SECRET
from browser import Browser
from conftest import EXAMPLE_REPO
from fakegithub import FakeGitHub
from flask import Flask
from werkzeug.serving import make_server

from bot.gateways.queue import NewJob
from bot.runtime import build_runtime, web_app
from bot.settings import load_settings
from bot.web.signin import SESSION_COOKIE

OURS, THEIRS = "acme/gitops", "acme/ledger-ops"
STAGING = "k8s/overlays/staging/model-config.yaml"
OURS_URI = "s3://acme-ml-models/fraud-detector/6/artifacts/model"  # the example's staging
THEIRS_URI = "s3://ledger-private-models/fraud-detector/6/artifacts/model"
THEIRS_ERROR = "ledger settlement job exploded"


@pytest.fixture
def github(fake_github: FakeGitHub) -> FakeGitHub:
    for repo in (OURS, THEIRS):
        fake_github.create_repo(repo, source_dir=EXAMPLE_REPO, default_branch="main")
    config = fake_github.file_at(THEIRS, "main", STAGING)
    assert config is not None and OURS_URI.encode() in config
    fake_github.push_commit(
        THEIRS, "main", {STAGING: config.replace(OURS_URI.encode(), THEIRS_URI.encode())}
    )
    fake_github.set_permission(OURS, "alice", "read")
    fake_github.set_permission(THEIRS, "bob", "maintain")
    return fake_github


@pytest.fixture
def bot_url(github: FakeGitHub, tmp_path: Path) -> Iterator[str]:
    """The bot's web app (real runtime, sign-in on) served over HTTP, GitHub over HTTP."""
    github_url = github.serve()
    server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = load_settings(
        {
            "GITHUB_APP_ID": str(github.app_id),
            "GITHUB_PRIVATE_KEY": github.private_key_pem,
            "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
            "GITHUB_APP_SLUG": github.app_slug,
            "GITHUB_API_URL": github_url,
            "MLFLOW_TARGET_REPOS": f"{OURS},{THEIRS}",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "GITHUB_CLIENT_ID": github.client_id,
            "GITHUB_CLIENT_SECRET": github.client_secret,
            "SESSION_SECRET": "browser-test-session-secret-0123456789abcdef",
            "PUBLIC_URL": url,
        }
    )
    runtime = build_runtime(settings)
    runtime.queue.enqueue(NewJob("theirs:1", "mlflow", "model_version.created", THEIRS, {}))
    job = runtime.queue.claim("w")
    assert job is not None
    runtime.queue.fail(job, THEIRS_ERROR)
    runtime.queue.enqueue(NewJob("ours:1", "github", "issue_comment", OURS, {}))
    server.app = web_app(runtime)
    github.register_callback(f"{url}/oauth/callback")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=10)


def assert_nothing_of_any_repository(html: str) -> None:
    for text in (OURS, THEIRS, OURS_URI, THEIRS_URI, THEIRS_ERROR, "issue_comment", "staging"):
        assert text not in html, text


def sign_in_as(browser: Browser, github: FakeGitHub, bot_url: str, login: str) -> str:
    """Click "Sign in with GitHub" as `login` (signed in on GitHub); the page we land on."""
    github.sign_in_web(login)
    browser.click("#sign-in")
    assert browser.url() == f"{bot_url}/", browser.url()
    return browser.html()


def sign_out(browser: Browser, bot_url: str) -> str:
    browser.click("#sign-out")
    assert browser.url() == f"{bot_url}/", browser.url()
    return browser.html()


def session_cookie(browser: Browser) -> dict[str, Any] | None:
    return next((c for c in browser.cookies() if c["name"] == SESSION_COOKIE), None)


def test_sign_in_with_github_in_a_browser_shows_each_user_only_their_repositories(
    github: FakeGitHub, bot_url: str, tmp_path: Path
) -> None:
    with Browser(tmp_path / "profile") as browser:
        browser.goto(f"{bot_url}/")
        signed_out = browser.html()
        assert "Sign in with GitHub" in signed_out
        assert_nothing_of_any_repository(signed_out)
        browser.goto(f"{bot_url}/api/status")
        assert json.loads(browser.text()) == {"error": "sign in first: /login"}

        browser.goto(f"{bot_url}/")
        alice = sign_in_as(browser, github, bot_url, "alice")
        assert "Signed in as" in alice and "alice" in alice
        assert OURS in alice and OURS_URI in alice and "issue_comment" in alice
        for theirs in (THEIRS, THEIRS_URI, THEIRS_ERROR, "model_version.created"):
            assert theirs not in alice, theirs
        cookie = session_cookie(browser)
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert cookie["expires"] > 0  # bounded, not a browser-session cookie
        browser.goto(f"{bot_url}/api/status")
        status = json.loads(browser.text())
        assert [r["repo"] for r in status["repositories"]] == [OURS]
        assert status["repositories"][0]["error"] is None  # read from GitHub for real

        browser.goto(f"{bot_url}/")
        after_logout = sign_out(browser, bot_url)
        assert "Sign in with GitHub" in after_logout
        assert_nothing_of_any_repository(after_logout)
        assert session_cookie(browser) is None
        browser.goto(f"{bot_url}/api/status")
        assert json.loads(browser.text()) == {"error": "sign in first: /login"}

        browser.goto(f"{bot_url}/")
        bob = sign_in_as(browser, github, bot_url, "bob")
        assert THEIRS in bob and THEIRS_URI in bob and THEIRS_ERROR in bob
        assert OURS_URI not in bob and "issue_comment" not in bob
        assert "Sign in with GitHub" in sign_out(browser, bot_url)

    # the browser really went through GitHub's authorize page and the code exchange
    assert len(github.calls_to("GET", r"^/login/oauth/authorize$")) == 2
    assert len(github.calls_to("POST", r"^/login/oauth/access_token$")) == 2


def test_a_browser_signed_out_of_github_stops_at_githubs_sign_in_page(
    github: FakeGitHub, bot_url: str, tmp_path: Path
) -> None:
    with Browser(tmp_path / "profile") as browser:
        browser.goto(f"{bot_url}/")
        github.sign_in_web(None)
        browser.click("#sign-in")
        assert browser.url().startswith(github.served_urls[0] + "/login/oauth/authorize?")
        assert "Sign in to GitHub" in browser.html()
        browser.goto(f"{bot_url}/")
        assert_nothing_of_any_repository(browser.html())
