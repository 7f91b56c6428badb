"""The webhook endpoints: verification, rejections, enqueueing, health and metrics."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder

from bot.core.events import CommentCreated, event_from_payload
from bot.gateways.queue import JobQueue
from bot.settings import Secret, Settings
from bot.web.app import create_app

GH_SECRET = "gh-webhook-secret"
MLFLOW_SECRET = "mlflow-webhook-secret"
DATABRICKS_SECRET = "databricks-webhook-secret"
METRICS_TOKEN = "metrics-bearer-token-for-tests"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}
NOW = 1_750_000_000.0
BOT = "gitops-bot[bot]"
REPOS = ("acme/gitops", "acme/gitops-eu")

COMMENT = {
    "action": "created",
    "issue": {"number": 7, "state": "open", "pull_request": {"url": "u"}},
    "comment": {
        "id": 99,
        "body": "/promote production",
        "user": {"login": "alice", "type": "User"},
        "author_association": "MEMBER",
    },
    "repository": {"full_name": "acme/gitops"},
    "installation": {"id": 5},
    "sender": {"login": "alice", "type": "User"},
}
MV_CREATED = {
    "entity": "model_version",
    "action": "created",
    "timestamp": "2025-06-15T15:06:40.000000+00:00",
    "data": {
        "name": "fraud-detector",
        "version": "8",
        "source": "s3://models/fraud/8",
        "run_id": "r1",
        "tags": {},
        "description": None,
    },
}


def make_settings(**overrides: Any) -> Settings:
    base = Settings(
        github_webhook_secret=Secret(GH_SECRET),
        mlflow_webhook_secret=Secret(MLFLOW_SECRET),
        databricks_webhook_secret=Secret(DATABRICKS_SECRET),
        metrics_token=Secret(METRICS_TOKEN),
        bot_login=BOT,
        mlflow_target_repos=REPOS,
        max_body_bytes=64 * 1024,
        timestamp_tolerance_s=300.0,
    )
    return replace(base, **overrides)


@pytest.fixture
def queue(tmp_path: Path) -> JobQueue:
    q = JobQueue.from_url(f"sqlite:///{tmp_path / 'jobs.db'}")
    q.migrate()
    return q


def build(queue: JobQueue, **overrides: Any) -> Flask:
    return create_app(make_settings(**overrides), queue, clock=lambda: NOW)


@pytest.fixture
def client(queue: JobQueue) -> FlaskClient:
    return build(queue).test_client()


def jobs(queue: JobQueue) -> list[dict[str, Any]]:
    return queue.recent(100)


def github_post(
    client: FlaskClient,
    payload: Any,
    *,
    event: str | None = "issue_comment",
    delivery: str | None = "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    secret: str = GH_SECRET,
    raw: bytes | None = None,
    signature: str | None = None,
) -> Any:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    sig = signature or "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers["X-Hub-Signature-256"] = sig
    if event is not None:
        headers["X-GitHub-Event"] = event
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    return client.post("/webhooks/github", data=body, headers=headers)


def mlflow_post(
    client: FlaskClient,
    payload: Any,
    *,
    delivery: str = "0b6f2a4c-8c52-4d3e-9a3b-1f8e2f0a7c11",
    timestamp: float = NOW,
    secret: str = MLFLOW_SECRET,
) -> Any:
    body = json.dumps(payload).encode()
    ts = str(int(timestamp))
    digest = hmac.new(secret.encode(), f"{delivery}.{ts}.".encode() + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": "v1," + base64.b64encode(digest.digest()).decode(),
    }
    return client.post("/webhooks/mlflow", data=body, headers=headers)


def databricks_post(client: FlaskClient, payload: Any, *, secret: str = DATABRICKS_SECRET) -> Any:
    body = json.dumps(payload).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Databricks-Signature": sig}
    return client.post("/webhooks/mlflow", data=body, headers=headers)


# --------------------------------------------------------------------------- GitHub


def test_refuses_to_start_without_a_github_secret(queue: JobQueue) -> None:
    with pytest.raises(ValueError, match="GITHUB_WEBHOOK_SECRET is not set"):
        build(queue, github_webhook_secret=Secret(""))


def test_valid_comment_creates_exactly_one_job(client: FlaskClient, queue: JobQueue) -> None:
    response = github_post(client, COMMENT)
    assert response.status_code == 202
    assert response.json == {"status": "queued"}
    [job] = jobs(queue)
    assert job["delivery_id"] == "github:72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert (job["source"], job["kind"], job["repo"]) == (
        "github",
        "issue_comment.created",
        "acme/gitops",
    )
    claimed = queue.claim("test-worker")
    assert claimed is not None
    event = event_from_payload(claimed.payload)
    assert isinstance(event, CommentCreated)
    assert (event.repo, event.issue_number, event.body) == ("acme/gitops", 7, "/promote production")
    assert (event.installation_id, event.is_pull_request) == (5, True)


def test_redelivery_is_a_duplicate(client: FlaskClient, queue: JobQueue) -> None:
    assert github_post(client, COMMENT).status_code == 202
    again = github_post(client, COMMENT)
    assert again.status_code == 200
    assert again.json == {"status": "duplicate"}
    assert len(jobs(queue)) == 1


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"secret": "wrong"}, 401, "X-Hub-Signature-256 does not match the request body"),
        ({"signature": "sha1=abc"}, 401, "malformed X-Hub-Signature-256 header"),
        ({"event": None}, 400, "missing X-GitHub-Event header"),
        ({"event": "Issue Comment!"}, 400, "malformed X-GitHub-Event header"),
        ({"delivery": None}, 400, "missing X-GitHub-Delivery header"),
        ({"delivery": "x" * 300}, 400, "malformed X-GitHub-Delivery header"),
        ({"raw": b"{not json"}, 400, "request body is not valid JSON"),
        ({"raw": b"[1, 2]"}, 400, "request body must be a JSON object"),
    ],
)
def test_github_rejections_have_their_own_status_and_message(
    client: FlaskClient, queue: JobQueue, kwargs: dict[str, Any], status: int, error: str
) -> None:
    response = github_post(client, COMMENT, **kwargs)
    assert response.status_code == status
    assert error in response.json["error"]
    assert jobs(queue) == []


def test_missing_signature_header_is_401(client: FlaskClient, queue: JobQueue) -> None:
    response = client.post(
        "/webhooks/github",
        data=json.dumps(COMMENT),
        headers={"X-GitHub-Event": "issue_comment", "X-GitHub-Delivery": "d1"},
    )
    assert response.status_code == 401
    assert response.json == {"error": "missing X-Hub-Signature-256 header"}
    assert jobs(queue) == []


def test_malformed_payload_names_the_field(client: FlaskClient, queue: JobQueue) -> None:
    bad = json.loads(json.dumps(COMMENT))
    bad["comment"]["id"] = "99"
    response = github_post(client, bad)
    assert response.status_code == 400
    assert response.json["error"] == (
        "malformed issue_comment payload: comment.id: expected an integer, got str"
    )
    assert jobs(queue) == []


def test_ignored_event_is_acknowledged_without_a_job(client: FlaskClient, queue: JobQueue) -> None:
    response = github_post(client, {**COMMENT, "action": "edited"})
    assert response.status_code == 200
    assert response.json["status"] == "ignored"
    assert "issue_comment.edited" in response.json["reason"]
    own = {**COMMENT, "sender": {"login": BOT, "type": "Bot"}}
    response = github_post(client, own, delivery="d-own")
    assert response.json["status"] == "ignored"
    assert "bot itself" in response.json["reason"]
    assert jobs(queue) == []


def test_ping_answers_pong_without_a_job(client: FlaskClient, queue: JobQueue) -> None:
    response = github_post(client, {"zen": "Design for failure.", "hook_id": 1}, event="ping")
    assert response.status_code == 200
    assert response.json == {"status": "pong"}
    assert jobs(queue) == []


def test_installation_event_is_queued_without_a_repo_lane(
    client: FlaskClient, queue: JobQueue
) -> None:
    payload = {
        "action": "created",
        "installation": {"id": 5, "account": {"login": "acme"}},
        "repositories": [{"full_name": "acme/gitops"}],
        "sender": {"login": "alice", "type": "User"},
    }
    assert github_post(client, payload, event="installation").status_code == 202
    [job] = jobs(queue)
    assert job["repo"] is None
    assert job["kind"] == "installation"


def test_oversized_body_is_413_and_creates_no_job(client: FlaskClient, queue: JobQueue) -> None:
    big = {**COMMENT, "padding": "x" * (64 * 1024)}
    response = github_post(client, big)
    assert response.status_code == 413
    assert response.json == {"error": "request body exceeds the 65536 byte limit"}
    assert jobs(queue) == []


def test_a_chunked_body_past_the_limit_is_413_not_a_signature_failure(queue: JobQueue) -> None:
    """A real HTTP server (chunked transfer encoding is a server concern): 10 MB in chunks,
    correctly signed, with no Content-Length."""
    body = json.dumps({**COMMENT, "padding": "x" * (10 * 1024 * 1024)}).encode()
    signature = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    server = make_server("127.0.0.1", 0, build(queue), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        response = requests.post(
            f"http://127.0.0.1:{server.server_port}/webhooks/github",
            data=(body[i : i + 65536] for i in range(0, len(body), 65536)),  # chunked
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "issue_comment",
                "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                "X-Hub-Signature-256": signature,
            },
            timeout=30,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 413
    assert response.json() == {"error": "request body exceeds the 65536 byte limit"}
    assert jobs(queue) == []


@pytest.mark.parametrize("depth", [65, 1000, 20000])
def test_signed_json_nested_too_deep_is_400_not_500(
    client: FlaskClient, queue: JobQueue, depth: int
) -> None:
    raw = b'{"action": "created", "deep": ' + b"[" * depth + b"]" * depth + b"}"
    response = github_post(client, None, raw=raw)
    assert response.status_code == 400
    assert response.json == {"error": "JSON nested more than 64 levels deep"}
    mlflow = mlflow_post(client, {"entity": "x", "data": json.loads("[" * 60 + "]" * 60)})
    assert mlflow.status_code != 500
    assert jobs(queue) == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"action": "created", "repository": {"full_name": "acme\\ud800/gitops"}}',
        b'{"action": "created", "comment": {"body": "/merge\\u0000"}}',
        b'{"action": "created", "\\udfff": 1}',
    ],
)
def test_json_no_database_can_store_is_400_not_a_misleading_503(
    client: FlaskClient, queue: JobQueue, raw: bytes
) -> None:
    response = github_post(client, None, raw=raw)
    assert response.status_code == 400
    assert "NUL characters or unpaired surrogates" in response.json["error"]
    assert jobs(queue) == []


def test_event_names_with_digits_are_acknowledged(client: FlaskClient, queue: JobQueue) -> None:
    payload = {"action": "created", "projects_v2_item": {"id": 1}, "sender": {"login": "alice"}}
    response = github_post(client, payload, event="projects_v2_item")
    assert response.status_code in (200, 202), response.json
    assert "malformed" not in str(response.json)


def test_queue_outage_is_503_so_the_sender_retries(tmp_path: Path) -> None:
    broken = JobQueue.from_url(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    client = build(broken).test_client()
    response = github_post(client, COMMENT)
    assert response.status_code == 503
    assert response.json == {"error": "job queue unavailable, retry later"}


# --------------------------------------------------------------------------- MLflow


def test_mlflow_event_fans_out_one_job_per_target_repo(
    client: FlaskClient, queue: JobQueue
) -> None:
    response = mlflow_post(client, MV_CREATED)
    assert response.status_code == 202
    assert response.json == {"status": "queued", "jobs": 2}
    found = sorted((j["delivery_id"], j["repo"], j["kind"]) for j in jobs(queue))
    assert found == [
        (f"mlflow:0b6f2a4c-8c52-4d3e-9a3b-1f8e2f0a7c11:{repo}", repo, "model_version.created")
        for repo in sorted(REPOS)
    ]
    again = mlflow_post(client, MV_CREATED)
    assert (again.status_code, again.json) == (200, {"status": "duplicate"})
    assert len(jobs(queue)) == 2


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"secret": "wrong"}, "X-MLflow-Signature does not match"),
        ({"timestamp": NOW - 301}, "X-MLflow-Timestamp is 301 s old, outside the 300 s window"),
        ({"timestamp": NOW + 600}, "X-MLflow-Timestamp is 600 s in the future"),
    ],
)
def test_mlflow_bad_signature_or_stale_timestamp_is_401(
    client: FlaskClient, queue: JobQueue, kwargs: dict[str, Any], error: str
) -> None:
    response = mlflow_post(client, MV_CREATED, **kwargs)
    assert response.status_code == 401
    assert error in response.json["error"]
    assert jobs(queue) == []


def test_mlflow_unsigned_delivery_is_401(client: FlaskClient, queue: JobQueue) -> None:
    response = client.post("/webhooks/mlflow", json=MV_CREATED)
    assert response.status_code == 401
    assert response.json == {"error": "missing X-MLflow-Signature header"}


def test_mlflow_known_event_we_do_not_act_on_is_200_ignored(
    client: FlaskClient, queue: JobQueue
) -> None:
    body = {**MV_CREATED, "entity": "registered_model", "data": {"name": "x", "tags": {}}}
    response = mlflow_post(client, body)
    assert response.status_code == 200
    assert response.json == {
        "status": "ignored",
        "reason": "MLflow event registered_model.created is not acted on",
    }
    assert jobs(queue) == []


def test_mlflow_unrecognisable_event_is_422(client: FlaskClient, queue: JobQueue) -> None:
    response = mlflow_post(client, {**MV_CREATED, "entity": "experiment"})
    assert response.status_code == 422
    assert response.json == {"error": "unsupported MLflow event 'experiment.created'"}
    assert jobs(queue) == []


def test_mlflow_malformed_known_event_is_400(client: FlaskClient, queue: JobQueue) -> None:
    body = {**MV_CREATED, "data": {**MV_CREATED["data"], "version": 8}}
    response = mlflow_post(client, body)
    assert response.status_code == 400
    assert response.json == {
        "error": "malformed mlflow payload: data.version: expected a string, got int"
    }
    assert jobs(queue) == []


def test_mlflow_without_configured_secret_is_503(queue: JobQueue) -> None:
    client = build(queue, mlflow_webhook_secret=Secret("")).test_client()
    response = mlflow_post(client, MV_CREATED)
    assert response.status_code == 503
    assert response.json == {
        "error": "mlflow webhooks are not enabled: MLFLOW_WEBHOOK_SECRET is not configured"
    }
    assert jobs(queue) == []


def test_mlflow_event_without_target_repos_is_503_not_dropped(queue: JobQueue) -> None:
    client = build(queue, mlflow_target_repos=()).test_client()
    response = mlflow_post(client, MV_CREATED)
    assert response.status_code == 503
    assert "MLFLOW_TARGET_REPOS" in response.json["error"]
    assert jobs(queue) == []


# --------------------------------------------------------------------------- Databricks


DATABRICKS_CREATED = {
    "event": "MODEL_VERSION_CREATED",
    "webhook_id": "c5596721253c4b429368cf6f4341b88a",
    "event_timestamp": 1589859029343,
    "model_name": "fraud-detector",
    "version": "8",
    "text": "A new model version was created.",
}


def test_databricks_dialect_dedupes_on_the_body_hash(client: FlaskClient, queue: JobQueue) -> None:
    response = databricks_post(client, DATABRICKS_CREATED)
    assert response.status_code == 202
    digest = hashlib.sha256(json.dumps(DATABRICKS_CREATED).encode()).hexdigest()
    assert sorted(j["delivery_id"] for j in jobs(queue)) == [
        f"databricks:{digest}:{repo}" for repo in sorted(REPOS)
    ]
    assert {j["source"] for j in jobs(queue)} == {"databricks"}
    assert databricks_post(client, DATABRICKS_CREATED).json == {"status": "duplicate"}


def test_databricks_bad_signature_is_401(client: FlaskClient, queue: JobQueue) -> None:
    response = databricks_post(client, DATABRICKS_CREATED, secret="wrong")
    assert response.status_code == 401
    assert response.json == {"error": "X-Databricks-Signature does not match the request body"}
    assert jobs(queue) == []


def test_databricks_without_configured_secret_is_503(queue: JobQueue) -> None:
    client = build(queue, databricks_webhook_secret=Secret("")).test_client()
    response = databricks_post(client, DATABRICKS_CREATED)
    assert response.status_code == 503
    assert "DATABRICKS_WEBHOOK_SECRET" in response.json["error"]


# --------------------------------------------------------------------------- operations


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json) == (200, {"status": "ready"})


def test_readyz_is_503_when_the_queue_is_unreachable(tmp_path: Path) -> None:
    broken = JobQueue.from_url(f"sqlite:///{tmp_path / 'missing' / 'jobs.db'}")
    response = build(broken).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "error": "job queue unavailable"}


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{{{wanted}}} in /metrics")


def test_metrics_count_deliveries_by_source_and_outcome(client: FlaskClient) -> None:
    github_post(client, COMMENT)
    github_post(client, COMMENT)
    github_post(client, COMMENT, secret="wrong", delivery="d-bad")
    mlflow_post(client, MV_CREATED, timestamp=NOW - 3600)
    text = client.get("/metrics", headers=METRICS_AUTH).get_data(as_text=True)
    total = "gitops_bot_webhook_deliveries_total"
    assert _sample(text, total, source="github", outcome="queued") == 1
    assert _sample(text, total, source="github", outcome="duplicate") == 1
    assert _sample(text, total, source="github", outcome="rejected_signature") == 1
    assert _sample(text, total, source="mlflow", outcome="rejected_timestamp") == 1
    assert (
        _sample(text, "gitops_bot_http_request_duration_seconds_count", endpoint="/webhooks/github")
        == 3
    )


def test_each_app_has_its_own_metrics_registry(queue: JobQueue) -> None:
    first, second = build(queue).test_client(), build(queue).test_client()
    github_post(first, COMMENT)
    text = second.get("/metrics", headers=METRICS_AUTH).get_data(as_text=True)
    assert 'outcome="queued"' not in text


@pytest.mark.parametrize(
    "path", ["/webhooks/github", "/webhooks/mlflow", "/webhooks/argocd", "/webhooks/flagger"]
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_webhook_path_answers_other_methods_405_naming_post(
    client: FlaskClient, queue: JobQueue, path: str, method: str
) -> None:
    response = client.open(path, method=method, data=b"{}")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert "POST" in response.json["error"]
    assert jobs(queue) == []


def test_an_unexpected_failure_taking_a_delivery_is_a_bare_500_counted_and_logged(
    client: FlaskClient,
    queue: JobQueue,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail: /srv/secret-path")

    monkeypatch.setattr("bot.web.intake.parse_github", broken)
    response = github_post(client, COMMENT)
    assert response.status_code == 500
    assert "internal detail" not in response.get_data(as_text=True)
    assert jobs(queue) == []
    assert "could not take github delivery github:72d3162e" in caplog.text
    text = client.get("/metrics", headers=METRICS_AUTH).get_data(as_text=True)
    total = "gitops_bot_webhook_deliveries_total"
    assert _sample(text, total, source="github", outcome="failed_internal") == 1


def test_a_body_cut_short_of_its_content_length_is_a_400_not_a_500(
    queue: JobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    app = build(queue)
    body = json.dumps(COMMENT).encode()
    environ = EnvironBuilder(
        path="/webhooks/github",
        method="POST",
        data=body,
        headers={"X-GitHub-Event": "issue_comment", "X-GitHub-Delivery": "d-cut"},
    ).get_environ()
    environ["CONTENT_LENGTH"] = str(len(body) + 100)  # the sender went away mid-body
    environ["wsgi.input"] = io.BytesIO(body)
    answered: list[str] = []
    chunks = app.wsgi_app(environ, lambda status, headers, *rest: answered.append(status))
    assert answered[0].startswith("400")
    assert b"".join(chunks).startswith(b'{"error":')
    assert "Traceback" not in caplog.text
    assert jobs(queue) == []
