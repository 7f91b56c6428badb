"""Sign in with GitHub in front of the operator page: OAuth state, signed cookies, logout,
per-user repositories, settings, and no secret in any answer or log (Flask test client)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fakegithub import FakeGitHub
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from signin_helpers import SESSION_COOKIE, session_cookie, session_data

from bot.core.deployed import Deployed
from bot.gateways.github_user import GitHubOAuth
from bot.gateways.queue import JobQueue, NewJob
from bot.settings import Secret, Settings, SettingsError, load_settings
from bot.web.app import create_app
from bot.web.operator import EnvOverview, RepoOverview, install_operator_page

BOT_URL = "http://bot.test"
CALLBACK = f"{BOT_URL}/oauth/callback"
SESSION_SECRET = "operator-session-secret-5b1e0c9d7a3f42e8"
OURS, THEIRS = "acme/gitops", "acme/secret-ops"
OURS_URI, THEIRS_URI = "s3://ours-bucket/fraud/8/model", "s3://theirs-bucket/ledger/3/model"
THEIRS_ERROR = "ledger-job-error-7781"


def overview(repo: str, uri: str) -> RepoOverview:
    deployed = Deployed("prod", "m", "8", uri, ())
    env = EnvOverview("prod", "k8s/prod", False, "no approval required", [deployed])
    return RepoOverview(repo, "main", "abc1234def", [env], [])


@dataclass
class TwoRepos:
    queue: JobQueue
    repos: list[RepoOverview] = field(
        default_factory=lambda: [overview(OURS, OURS_URI), overview(THEIRS, THEIRS_URI)]
    )

    def repositories(self) -> list[RepoOverview]:
        return self.repos

    def jobs(self, limit: int, repos: Any) -> list[dict[str, Any]]:
        return self.queue.recent(limit, repos=repos)

    def job_counts(self, repos: Any) -> dict[str, int]:
        return self.queue.counts(repos=repos)


@pytest.fixture
def queue(tmp_path: Path) -> JobQueue:
    q = JobQueue.from_url(f"sqlite:///{tmp_path / 'jobs.db'}", max_attempts=1)
    q.migrate()
    q.enqueue(NewJob("ours:1", "github", "issue_comment", OURS, {}))
    q.enqueue(NewJob("theirs:1", "mlflow", "model_version.created", THEIRS, {}))
    q.enqueue(NewJob("theirs:2", "mlflow", "model_version.created", THEIRS, {}))
    first = q.claim("w")
    assert first is not None
    q.complete(first)
    second = q.claim("w")
    assert second is not None and second.repo == THEIRS
    q.fail(second, THEIRS_ERROR)
    return q


@pytest.fixture
def github(fake_github: FakeGitHub) -> FakeGitHub:
    fake_github.create_repo(OURS, files={"README.md": b"ours\n"})
    fake_github.create_repo(THEIRS, files={"README.md": b"theirs\n"})
    fake_github.create_repo("acme/unconfigured", files={"README.md": b"x\n"})
    fake_github.set_permission(OURS, "alice", "read")
    fake_github.set_permission("acme/unconfigured", "alice", "admin")
    fake_github.set_permission(THEIRS, "bob", "write")
    fake_github.register_callback(CALLBACK)
    return fake_github


def signin_settings(fake: FakeGitHub, **overrides: Any) -> Settings:
    base = Settings(
        github_webhook_secret=Secret("whsec-signin-tests"),
        mlflow_target_repos=(OURS, THEIRS),
        github_client_id=fake.client_id,
        github_client_secret=Secret(fake.client_secret),
        session_secret=Secret(SESSION_SECRET),
        public_url=BOT_URL,
        github_web_url="https://github.com",
        github_api_url=fake.api_url,
    )
    return replace(base, **overrides)


def build(fake: FakeGitHub, queue: JobQueue, **overrides: Any) -> Flask:
    settings = signin_settings(fake, **overrides)
    app = create_app(settings, queue)
    oauth = GitHubOAuth(
        settings.github_client_id,
        settings.github_client_secret,
        settings.github_web_url,
        settings.github_api_url,
    )
    install_operator_page(
        app, TwoRepos(queue), oauth=oauth, settings=settings, repos=settings.mlflow_target_repos
    )
    return app


@pytest.fixture
def app(github: FakeGitHub, queue: JobQueue) -> Flask:
    return build(github, queue)


# --------------------------------------------------------------------------- the flow


def start(client: FlaskClient) -> str:
    """GET /login: the URL of GitHub's consent page the browser is sent to."""
    response = client.get("/login")
    assert response.status_code == 302
    return str(response.headers["Location"])


def github_answers(authorize_url: str) -> str:
    """The browser at GitHub's authorize URL: the callback path+query GitHub redirects to."""
    response = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    location = str(response.headers["Location"])
    assert location.startswith(CALLBACK + "?"), location
    return location[len(BOT_URL) :]


def sign_in(client: FlaskClient, fake: FakeGitHub, login: str) -> None:
    fake.sign_in_web(login)
    response = client.get(github_answers(start(client)))
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"] == "/"


def page(client: FlaskClient) -> str:
    response = client.get("/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def assert_signed_out(client: FlaskClient) -> None:
    html = page(client)
    assert 'href="/login"' in html and "Sign in with GitHub" in html
    for secret_data in (OURS, THEIRS, OURS_URI, THEIRS_URI, THEIRS_ERROR, "issue_comment"):
        assert secret_data not in html
    api = client.get("/api/status")
    assert api.status_code == 401
    assert api.get_json() == {"error": "sign in first: /login"}


def cookie_value(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(SESSION_COOKIE)
    return None if cookie is None else cookie.value


def exchanges(fake: FakeGitHub) -> int:
    return len(fake.calls_to("POST", r"^/login/oauth/access_token$"))


# --------------------------------------------------------------------------- signed out / in


def test_signed_out_visitors_get_a_sign_in_link_and_no_repository_data(app: Flask) -> None:
    assert_signed_out(app.test_client())


def test_login_redirects_to_githubs_authorize_page_with_client_redirect_and_state(
    app: Flask, github: FakeGitHub
) -> None:
    client = app.test_client()
    url = urlsplit(start(client))
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://github.com/login/oauth/authorize"
    query = parse_qs(url.query)
    assert query["client_id"] == [github.client_id]
    assert query["redirect_uri"] == [CALLBACK]
    assert len(query["state"][0]) >= 32
    assert start(client) != start(client)  # a new state every time


def test_signed_in_user_sees_only_the_repositories_github_says_they_can_read(
    app: Flask, github: FakeGitHub
) -> None:
    alice = app.test_client()
    sign_in(alice, github, "alice")
    html = page(alice)
    assert "Signed in as" in html and "alice" in html
    assert OURS in html and OURS_URI in html and "issue_comment" in html
    for theirs in (THEIRS, THEIRS_URI, THEIRS_ERROR, "acme/unconfigured"):
        assert theirs not in html, theirs
    status = alice.get("/api/status").get_json()
    assert status["viewer"] == "alice"
    assert [r["repo"] for r in status["repositories"]] == [OURS]
    assert [j["repo"] for j in status["jobs"]] == [OURS]
    assert status["job_counts"]["done"] == 1 and sum(status["job_counts"].values()) == 1

    bob = app.test_client()
    sign_in(bob, github, "bob")
    html = page(bob)
    assert THEIRS in html and THEIRS_URI in html and THEIRS_ERROR in html
    assert OURS_URI not in html and f">{OURS}<" not in html
    status = bob.get("/api/status").get_json()
    assert [r["repo"] for r in status["repositories"]] == [THEIRS]
    assert status["job_counts"] == {"queued": 1, "running": 0, "done": 0, "failed": 1}


def test_a_user_who_can_read_no_configured_repository_sees_none(
    app: Flask, github: FakeGitHub
) -> None:
    carol = app.test_client()
    sign_in(carol, github, "carol")  # no role anywhere
    status = carol.get("/api/status").get_json()
    assert status["repositories"] == [] and status["jobs"] == []
    assert sum(status["job_counts"].values()) == 0
    assert OURS_URI not in page(carol)


def test_session_cookie_is_signed_httponly_samesite_lax_bounded_and_holds_no_token(
    app: Flask, github: FakeGitHub
) -> None:
    client = app.test_client()
    github.sign_in_web("alice")
    response = client.get(github_answers(start(client)))
    [set_cookie] = response.headers.getlist("Set-Cookie")
    attributes = [part.strip().lower() for part in set_cookie.split(";")]
    assert attributes[0].startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in attributes and "samesite=lax" in attributes
    assert any(a.startswith("expires=") for a in attributes)
    assert "secure" not in attributes  # http PUBLIC_URL; https below
    data = app.session_interface.get_signing_serializer(app).loads(cookie_value(client))  # type: ignore[attr-defined]
    assert set(data) == {"_permanent", "login", "repos", "exp", "csrf"}
    assert data["login"] == "alice" and data["repos"] == [OURS]
    assert not any(token in set_cookie for token in github.user_tokens)


def test_cookies_are_secure_when_the_public_url_is_https(
    github: FakeGitHub, queue: JobQueue
) -> None:
    github.register_callback("https://bot.test/oauth/callback")
    client = build(github, queue, public_url="https://bot.test").test_client()
    response = client.get("/login", base_url="https://bot.test")
    assert "; Secure" in response.headers["Set-Cookie"]


# --------------------------------------------------------------------------- forged cookies


def test_a_tampered_session_cookie_is_rejected(app: Flask, github: FakeGitHub) -> None:
    client = app.test_client()
    sign_in(client, github, "alice")
    good = cookie_value(client)
    assert good is not None
    payload, _, rest = good.partition(".")
    forged = {
        "payload": payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + rest,
        "signature": good[:-3] + ("xyz" if not good.endswith("xyz") else "abc"),
        "unsigned": payload,
        "garbage": "not-a-cookie",
    }
    for kind, value in forged.items():
        attacker = app.test_client()
        attacker.set_cookie(SESSION_COOKIE, value, domain="localhost")
        assert THEIRS not in page(attacker), kind
        assert attacker.get("/api/status").status_code == 401, kind


def test_a_cookie_signed_with_another_secret_is_rejected(app: Flask) -> None:
    data = session_data("mallory", [OURS, THEIRS])
    for secret in ("guessed-secret", SESSION_SECRET[:-1]):
        other = URLSafeTimedSerializer(secret, salt="cookie-session", signer_kwargs={
            "key_derivation": "hmac", "digest_method": __import__("hashlib").sha1})  # fmt: skip
        client = app.test_client()
        client.set_cookie(SESSION_COOKIE, other.dumps(data), domain="localhost")
        assert client.get("/api/status").status_code == 401
        assert_signed_out(client)
    genuine = app.test_client()  # the same data signed with the app's secret is accepted
    genuine.set_cookie(SESSION_COOKIE, session_cookie(app, data), domain="localhost")
    assert genuine.get("/api/status").status_code == 200


def test_an_expired_session_is_rejected_even_with_a_valid_signature(app: Flask) -> None:
    client = app.test_client()
    expired = session_data("alice", [OURS], lifetime_s=-1)
    client.set_cookie(SESSION_COOKIE, session_cookie(app, expired), domain="localhost")
    assert_signed_out(client)


# --------------------------------------------------------------------------- OAuth state


def test_a_callback_whose_state_does_not_match_is_rejected(app: Flask, github: FakeGitHub) -> None:
    client = app.test_client()
    github.sign_in_web("alice")
    callback = github_answers(start(client))
    state = parse_qs(urlsplit(callback).query)["state"][0]
    tampered = callback.replace(state, state[:-4] + ("AAAA" if state[-4:] != "AAAA" else "BBBB"))
    response = client.get(tampered)
    assert response.status_code == 400
    assert "not started here or was already used" in response.get_data(as_text=True)
    assert exchanges(github) == 0  # the code was never exchanged
    assert_signed_out(client)
    assert client.get(callback).status_code == 400  # the state was spent by the failed try


def test_a_callback_in_a_browser_that_did_not_start_the_sign_in_is_rejected(
    app: Flask, github: FakeGitHub
) -> None:
    victim, attacker = app.test_client(), app.test_client()
    github.sign_in_web("bob")
    callback = github_answers(start(attacker))  # login CSRF: the attacker's code, the victim
    assert victim.get(callback).status_code == 400
    assert exchanges(github) == 0
    assert_signed_out(victim)


def test_a_replayed_state_is_rejected(app: Flask, github: FakeGitHub) -> None:
    client = app.test_client()
    github.sign_in_web("alice")
    authorize = start(client)
    before_callback = cookie_value(client)  # the cookie that carries the state
    assert before_callback is not None
    callback = github_answers(authorize)
    assert client.get(callback).status_code == 303
    assert client.get(callback).status_code == 400  # same browser, state already spent
    replay = app.test_client()  # the old cookie and the same URL, elsewhere
    replay.set_cookie(SESSION_COOKIE, before_callback, domain="localhost")
    assert replay.get(callback).status_code == 400
    assert exchanges(github) == 1
    assert_signed_out(replay)


def test_a_denied_authorization_signs_nobody_in(app: Flask, github: FakeGitHub) -> None:
    client = app.test_client()
    state = parse_qs(urlsplit(start(client)).query)["state"][0]
    response = client.get(f"/oauth/callback?error=access_denied&state={state}")
    assert response.status_code == 403
    assert "GitHub did not sign you in (access_denied)" in response.get_data(as_text=True)
    assert_signed_out(client)


def test_a_code_github_refuses_shows_why_and_signs_nobody_in(
    app: Flask, github: FakeGitHub
) -> None:
    client = app.test_client()
    github.sign_in_web("alice")
    callback = github_answers(start(client))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    github._grants.pop(code)  # e.g. expired at GitHub
    response = client.get(callback)
    assert response.status_code == 502
    assert "GitHub refused the sign-in (bad_verification_code)" in response.get_data(as_text=True)
    assert_signed_out(client)


# --------------------------------------------------------------------------- logout


def test_get_logout_does_not_sign_out(app: Flask, github: FakeGitHub) -> None:
    client = app.test_client()
    sign_in(client, github, "alice")
    assert client.get("/logout").status_code == 405
    assert OURS_URI in page(client)


def test_starting_another_sign_in_signs_nobody_out(app: Flask, github: FakeGitHub) -> None:
    client = app.test_client()
    sign_in(client, github, "alice")
    start(client)  # e.g. a link to /login from another site, followed
    assert OURS_URI in page(client)
    client.get("/oauth/callback?state=wrong&code=abc")  # and a failed callback
    assert OURS_URI in page(client)


def test_logout_needs_the_pages_csrf_token(app: Flask, github: FakeGitHub) -> None:
    client = app.test_client()
    sign_in(client, github, "alice")
    for form in ({}, {"csrf": "guess"}):
        assert client.post("/logout", data=form).status_code == 400
        assert OURS_URI in page(client)
    html = page(client)
    token = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    response = client.post("/logout", data={"csrf": token})
    assert (response.status_code, response.headers["Location"]) == (303, "/")
    assert_signed_out(client)


# --------------------------------------------------------------------------- configuration


def test_without_a_client_id_the_page_is_disabled_not_public(queue: JobQueue) -> None:
    app = create_app(Settings(github_webhook_secret=Secret("whsec")), queue)
    install_operator_page(app, TwoRepos(queue), oauth=None, settings=Settings(), repos=(OURS,))
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "GITHUB_CLIENT_ID" in html and OURS not in html and 'href="/login"' not in html
    assert client.get("/api/status").status_code == 404
    assert client.get("/login").status_code == 404
    assert client.get("/healthz").status_code == 200


SIGNIN_ENV = {
    "GITHUB_WEBHOOK_SECRET": "x",
    "GITHUB_CLIENT_ID": "Iv1.abc",
    "GITHUB_CLIENT_SECRET": "client-secret-value-123",
    "SESSION_SECRET": "s" * 32,
    "PUBLIC_URL": "https://bot.example.com/",
}


def test_signin_settings_are_all_or_nothing_with_clear_errors() -> None:
    settings = load_settings(SIGNIN_ENV)
    assert settings.signin_enabled and settings.public_url == "https://bot.example.com"
    assert settings.github_web_url == "https://github.com"
    assert "client-secret-value-123" not in repr(settings) and "s" * 32 not in repr(settings)
    ghes = load_settings({**SIGNIN_ENV, "GITHUB_API_URL": "https://ghe.acme.io/api/v3"})
    assert ghes.github_web_url == "https://ghe.acme.io"
    problems = {
        "GITHUB_CLIENT_SECRET is required": {"GITHUB_CLIENT_SECRET": ""},
        "SESSION_SECRET must be at least 32 characters": {"SESSION_SECRET": "short"},
        "PUBLIC_URL is required": {"PUBLIC_URL": ""},
        "PUBLIC_URL must be an http": {"PUBLIC_URL": "bot.example.com"},
        "PUBLIC_URL must be scheme://host": {"PUBLIC_URL": "https://bot.example.com/ops"},
        "GITHUB_CLIENT_SECRET is set but GITHUB_CLIENT_ID is not": {"GITHUB_CLIENT_ID": ""},
        "SESSION_LIFETIME_SECONDS must be positive": {"SESSION_LIFETIME_SECONDS": "0"},
    }
    for message, change in problems.items():
        with pytest.raises(SettingsError, match=message) as caught:
            load_settings({**SIGNIN_ENV, **change})
        assert "client-secret-value-123" not in str(caught.value)
    assert not load_settings({"GITHUB_WEBHOOK_SECRET": "x"}).signin_enabled


# --------------------------------------------------------------------------- no secrets


def test_no_secret_appears_in_any_answer_or_log(
    app: Flask, github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def keep(response: Any) -> Any:
        seen.append(response.get_data(as_text=True))
        seen.append(str(response.headers))
        return response

    client = app.test_client()
    keep(client.get("/"))
    keep(client.get("/api/status"))
    github.sign_in_web("alice")
    callback = github_answers(keep(client.get("/login")).headers["Location"])
    keep(client.get(callback))
    keep(client.get(callback))  # replay
    keep(client.get("/"))
    keep(client.get("/api/status"))
    keep(client.post("/logout", data={"csrf": "wrong"}))
    github.sign_in_web("bob")
    bad = github_answers(keep(client.get("/login")).headers["Location"])
    github._grants.clear()
    keep(client.get(bad))  # refused by GitHub
    assert github.user_tokens, "the flow should have issued a user token"
    secrets = [github.client_secret, SESSION_SECRET, *github.user_tokens]
    for secret in secrets:
        assert not any(secret in text for text in seen)
        assert secret not in caplog.text
    assert "alice can read 1 of 2 configured repositories" in caplog.text
