"""The whole bot in one process: signed deliveries through the Flask app, a real SQLite queue,
the worker's handler, the GitHub gateway talking to the shared fake GitHub."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

from bot.runtime import build_runtime, job_handler, web_app
from bot.settings import load_settings
from bot.worker import Worker

GITHUB_SECRET = "gh-webhook-secret-for-tests"
MLFLOW_SECRET = "mlflow-webhook-secret-for-tests"
METRICS_TOKEN = "metrics-token-for-tests"
ARGOCD_SECRET = "argocd-webhook-secret-for-tests"
FLAGGER_TOKEN = "flagger-webhook-token-for-tests"


class Clock:
    """The bot's injected clock: starts now, moves only when a test says so."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def mlflow_headers(
    body: bytes,
    secret: str = MLFLOW_SECRET,
    delivery_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    delivery_id = delivery_id or str(uuid.uuid4())
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": str(timestamp),
        "X-MLflow-Signature": f"v1,{digest}",
    }


def github_headers(event: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def mlflow_model_version_created(name: str, version: str, source: str, run_id: str = "") -> dict:
    return {
        "entity": "model_version",
        "action": "created",
        "timestamp": "2026-11-26T12:00:00Z",
        "data": {
            "name": name,
            "version": version,
            "source": source,
            "run_id": run_id or None,
            "tags": {},
            "description": None,
        },
    }


class BotHarness:
    def __init__(self, fake: Any, tmp_path: Path, repos: tuple[str, ...], **env: str) -> None:
        settings = load_settings(
            {
                "GITHUB_APP_ID": str(fake.app_id),
                "GITHUB_PRIVATE_KEY": fake.private_key_pem,
                "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
                "GITHUB_APP_SLUG": fake.app_slug,
                "MLFLOW_WEBHOOK_SECRET": MLFLOW_SECRET,
                "MLFLOW_TARGET_REPOS": ",".join(repos),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
                "GITHUB_API_URL": fake.api_url,
                "METRICS_TOKEN": METRICS_TOKEN,
                "ARGOCD_WEBHOOK_SECRET": ARGOCD_SECRET,
                "FLAGGER_WEBHOOK_TOKEN": FLAGGER_TOKEN,
                **env,
            }
        )
        self.fake = fake
        self.runtime = build_runtime(settings)
        self.queue = self.runtime.queue
        self.github = self.runtime.services.github
        self.github.sleep = lambda _seconds: None  # retries without waiting
        self.app = web_app(self.runtime)
        self.client = self.app.test_client()
        self.worker = Worker(self.queue, job_handler(self.runtime), lease_seconds=30)
        self.clock = Clock()
        self.runtime.services.clock = self.clock  # soak times and deployment ages

    def deliver_flagger(self, payload: dict, token: str | None = FLAGGER_TOKEN) -> Any:
        """POST a Flagger event webhook body (tests/flagger_fixtures.py builds them)."""
        url = "/webhooks/flagger" + (f"?token={token}" if token is not None else "")
        body = json.dumps(payload).encode()
        return self.client.post(url, data=body, headers={"Content-Type": "application/json"})

    def deliver_argocd(self, body: bytes, secret: str = ARGOCD_SECRET) -> Any:
        """POST an Argo CD Notifications body (tests/argocd_fixtures.py renders them)."""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"}
        return self.client.post("/webhooks/argocd", data=body, headers=headers)

    def deliver_mlflow(self, payload: dict, delivery_id: str | None = None) -> Any:
        body = json.dumps(payload).encode()
        return self.client.post(
            "/webhooks/mlflow", data=body, headers=mlflow_headers(body, delivery_id=delivery_id)
        )

    def deliver_github(self, event: str, payload: dict, delivery: str | None = None) -> Any:
        body = json.dumps(payload).encode()
        return self.client.post(
            "/webhooks/github", data=body, headers=github_headers(event, body, delivery)
        )

    def metrics_text(self) -> str:
        """/metrics of the bot's web app, read with its bearer token."""
        response = self.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200, response.status_code
        return response.get_data(as_text=True)

    def drain(self, limit: int = 50) -> int:
        ran = 0
        while ran < limit and self.worker.run_once():
            ran += 1
        return ran

    def jobs(self) -> list[dict]:
        return self.queue.recent(200)

    def failed_jobs(self) -> list[dict]:
        return [j for j in self.jobs() if j["status"] not in ("done",)]
