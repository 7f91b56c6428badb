"""/metrics: a bearer token on the public app (404 without one), a loopback listener in serve."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from bot_harness import mlflow_headers, mlflow_model_version_created
from bot_process import BotProcess, bot_env
from flask.testing import FlaskClient

from bot.gateways.queue import JobQueue
from bot.settings import Secret, Settings, SettingsError, load_settings
from bot.web.app import create_app

TOKEN = "metrics-token-3f9a1c77e2"
BASE = Settings(github_webhook_secret=Secret("whsec-metrics-tests"))


@pytest.fixture
def queue(tmp_path: Path) -> JobQueue:
    q = JobQueue.from_url(f"sqlite:///{tmp_path / 'jobs.db'}")
    q.migrate()
    return q


def client(queue: JobQueue, token: str = TOKEN) -> FlaskClient:
    return create_app(replace(BASE, metrics_token=Secret(token)), queue).test_client()


def test_metrics_answer_200_with_the_bearer_token(queue: JobQueue) -> None:
    response = client(queue).get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "gitops_bot_webhook_deliveries" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer tökén"},
    ],
    ids=["none", "wrong", "longer", "prefix", "basic", "bare", "empty", "non-ascii"],
)
def test_metrics_answer_401_without_the_right_token(queue: JobQueue, headers: Any) -> None:
    response = client(queue).get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_data(as_text=True)
    assert "gitops_bot_" not in body and TOKEN not in body


def test_metrics_are_404_on_the_public_app_when_no_token_is_configured(queue: JobQueue) -> None:
    app = create_app(BASE, queue).test_client()
    assert app.get("/metrics").status_code == 404
    assert app.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
    assert app.get("/healthz").status_code == 200  # health stays public


def test_metrics_listen_setting_parses_host_port_and_off() -> None:
    env = {"GITHUB_WEBHOOK_SECRET": "x"}
    assert load_settings(env).metrics_listen == ("127.0.0.1", 9102)
    assert load_settings({**env, "METRICS_LISTEN": "0.0.0.0:9200"}).metrics_listen == (
        "0.0.0.0",
        9200,
    )
    assert load_settings({**env, "METRICS_LISTEN": "[::1]:9102"}).metrics_listen == ("::1", 9102)
    assert load_settings({**env, "METRICS_LISTEN": "off"}).metrics_listen is None
    for bad in ("9102", "localhost:", "host:port", ":9102", "127.0.0.1:70000"):
        with pytest.raises(SettingsError, match="METRICS_LISTEN must be host:port"):
            load_settings({**env, "METRICS_LISTEN": bad})


@pytest.fixture
def served_github(fake_github: Any, gitops_repo: str) -> str:
    return str(fake_github.serve())


def test_serve_exposes_metrics_on_its_loopback_listener_not_on_the_web_port(
    fake_github: Any, gitops_repo: str, served_github: str, tmp_path: Path
) -> None:
    env = bot_env(fake_github, served_github, f"sqlite:///{tmp_path / 'bot.db'}", (gitops_repo,))
    bot = BotProcess.serve(env, tmp_path / "serve.log", workers=False).start()
    try:
        body = json.dumps(mlflow_model_version_created("fraud-detector", "8", "s3://m/8")).encode()
        posted = requests.post(
            f"{bot.url}/webhooks/mlflow", data=body, headers=mlflow_headers(body), timeout=5
        )
        assert posted.status_code == 202
        assert requests.get(f"{bot.url}/metrics", timeout=5).status_code == 404
        listener = f"http://{bot.env['METRICS_LISTEN']}"
        text = requests.get(f"{listener}/metrics", timeout=5).text
        assert 'gitops_bot_webhook_deliveries_total{outcome="queued",source="mlflow"} 1.0' in text
        assert requests.get(f"{listener}/", timeout=5).status_code == 404  # metrics only
    finally:
        bot.stop()
    assert "Traceback" not in bot.log(), bot.log()


def test_serve_refuses_to_start_when_the_metrics_address_is_taken(
    fake_github: Any, gitops_repo: str, served_github: str, tmp_path: Path
) -> None:
    host, port = served_github.removeprefix("http://").split(":")
    env = bot_env(
        fake_github,
        served_github,
        f"sqlite:///{tmp_path / 'bot.db'}",
        (gitops_repo,),
        METRICS_LISTEN=f"{host}:{port}",  # the fake GitHub's own port: in use
    )
    bot = BotProcess.serve(env, tmp_path / "serve.log", workers=False)
    with pytest.raises(RuntimeError, match="exited early"):
        bot.start()
    assert f"METRICS_LISTEN {host}:{port}: cannot listen" in bot.log()
    assert "Traceback" not in bot.log()
