"""Flask app: verify and parse webhook deliveries, enqueue typed events, answer fast."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Protocol

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from bot.core.canary import confirm_promotion, parse_flagger
from bot.core.events import (
    Ignored,
    PayloadError,
    Ping,
    UnsupportedEvent,
    parse_databricks,
    parse_github,
    parse_mlflow,
)
from bot.core.feedback import parse_argocd
from bot.core.signatures import (
    DATABRICKS_HEADER,
    GITHUB_HEADER,
    MLFLOW_DELIVERY_HEADER,
    MLFLOW_SIGNATURE_HEADER,
    MLFLOW_TIMESTAMP_HEADER,
    SignatureError,
    verify_databricks,
    verify_github,
    verify_mlflow,
)
from bot.gateways.queue import JobQueue, NewJob
from bot.gateways.records import PromotionRecords
from bot.web.json_body import JsonRefused, parse_json_object
from bot.web.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_TOLERANCE_S = 300.0
_DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_GITHUB_EVENT = re.compile(r"[a-z0-9_]{1,64}")


class WebSettings(Protocol):
    """What the web layer reads from `bot.settings.Settings` (secrets: bytes, str or Secret)."""

    @property
    def github_webhook_secret(self) -> object: ...
    @property
    def mlflow_webhook_secret(self) -> object: ...
    @property
    def databricks_webhook_secret(self) -> object: ...
    @property
    def bot_login(self) -> str | None: ...
    @property
    def mlflow_target_repos(self) -> tuple[str, ...]: ...
    @property
    def max_body_bytes(self) -> int: ...
    @property
    def timestamp_tolerance_s(self) -> float: ...
    @property
    def metrics_token(self) -> object: ...
    @property
    def argocd_webhook_secret(self) -> object: ...
    @property
    def argocd_target_repos(self) -> tuple[str, ...]: ...
    @property
    def flagger_webhook_token(self) -> object: ...


class Rejected(Exception):
    """A delivery refused with an HTTP status, a specific message and a metrics outcome."""

    def __init__(self, status: int, message: str, outcome: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.outcome = outcome


def secret_bytes(value: object) -> bytes | None:
    """A configured secret as bytes, or None when unset/empty (accepts bytes, str, Secret)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str):
        raw = value.encode()
    elif hasattr(value, "encode"):
        raw = value.encode()
        if not isinstance(raw, bytes):
            raise TypeError("secret.encode() must return bytes")
    else:
        raise TypeError(f"unsupported secret type {type(value).__name__}")
    return raw or None


def bearer_matches(header: str | None, token: bytes) -> bool:
    """Whether an Authorization header is `Bearer <token>`, compared in constant time."""
    scheme, _, credential = (header or "").partition(" ")
    supplied = credential.strip().encode("utf-8", "replace")
    return scheme.lower() == "bearer" and hmac.compare_digest(supplied, token)


def _reject(status: int, message: str, outcome: str) -> NoReturn:
    raise Rejected(status, message, outcome)


def _read_body(max_bytes: int) -> bytes:
    """The body, counted as it is read: a chunked body (no Content-Length) that grows past
    the limit is a 413 too, never a silently cut body that fails its signature."""
    too_large = f"request body exceeds the {max_bytes} byte limit"
    if request.content_length is not None and request.content_length > max_bytes:
        _reject(413, too_large, "rejected_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := request.stream.read(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                _reject(413, too_large, "rejected_too_large")
            chunks.append(chunk)
    except RequestEntityTooLarge:
        _reject(413, too_large, "rejected_too_large")
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        return parse_json_object(body)
    except JsonRefused as exc:
        _reject(400, str(exc), "rejected_json")


_FIXED_BODIES = {
    status: f'{{"status":"{status}"}}\n'.encode() for status in ("queued", "duplicate", "pong")
}


def json_body(body: dict[str, Any]) -> bytes:
    """The answer's JSON text, as Flask's `jsonify` writes it (the common ones prebuilt)."""
    if len(body) == 1 and (fixed := _FIXED_BODIES.get(str(body.get("status")))) is not None:
        return fixed
    return (json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n").encode()


_GITHUB_REPO_URL = re.compile(
    r"(?:https://[^/@\s]+/|git@[^:/\s]+:|ssh://git@[^/\s]+/)([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)"
    r"(?:\.git)?/?"
)


def _repo_of_url(url: str) -> str:
    """`owner/name` (lower case) of a git URL Argo CD syncs from, or "" when not one."""
    found = _GITHUB_REPO_URL.fullmatch(url.strip())
    return found.group(1).lower() if found else ""


def _signature_rejection(exc: SignatureError) -> NoReturn:
    outcome = "rejected_timestamp" if exc.problem in ("expired", "future") else "rejected_signature"
    _reject(401, exc.reason, outcome)


def create_app(
    settings: WebSettings,
    queue: JobQueue,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """Build the web app. Raises ValueError when no GitHub webhook secret is configured."""
    github_secret = secret_bytes(settings.github_webhook_secret)
    if not github_secret:
        raise ValueError(
            "GITHUB_WEBHOOK_SECRET is not set: refusing to accept unsigned GitHub webhooks"
        )
    mlflow_secret = secret_bytes(settings.mlflow_webhook_secret)
    databricks_secret = secret_bytes(settings.databricks_webhook_secret)
    bot_login = settings.bot_login
    target_repos = tuple(settings.mlflow_target_repos)
    max_body = int(settings.max_body_bytes or DEFAULT_MAX_BODY_BYTES)
    tolerance = float(settings.timestamp_tolerance_s or DEFAULT_TOLERANCE_S)
    m = metrics if metrics is not None else Metrics()
    metrics_token = secret_bytes(settings.metrics_token)
    argocd_secret = secret_bytes(getattr(settings, "argocd_webhook_secret", None))
    argocd_repos = tuple(getattr(settings, "argocd_target_repos", ()) or target_repos)
    flagger_token = secret_bytes(getattr(settings, "flagger_webhook_token", None))

    app = Flask(__name__)
    # one byte more than we accept: Werkzeug cuts a chunked body at this limit without a
    # word, so `_read_body` must be able to see the byte that makes it too large
    app.config["MAX_CONTENT_LENGTH"] = max_body + 1
    app.extensions["gitops_bot_metrics"] = m

    def enqueue(job: NewJob) -> bool:
        try:
            return queue.enqueue(job)
        except Exception as exc:  # the queue is down: the sender must retry, nothing is lost
            log.error("enqueue failed for %s: %s", job.delivery_id, type(exc).__name__)
            _reject(503, "job queue unavailable, retry later", "rejected_queue")

    def delivery_header(name: str, source: str) -> str:
        value = request.headers.get(name)
        if value is None or not value.strip():
            _reject(400, f"missing {name} header", "rejected_headers")
        if not _DELIVERY_ID.fullmatch(value):
            _reject(400, f"malformed {name} header", "rejected_headers")
        g.delivery = f"{source}:{value}"
        return value

    def respond(source: str, outcome: str, status: int, body: dict[str, Any]) -> Response:
        m.delivery(source, outcome).inc()
        return Response(json_body(body), status, mimetype="application/json")

    def guarded(source: str, handler: Callable[[], Response]) -> Response:
        g.delivery = "-"
        try:
            return handler()
        except Rejected as exc:
            log.warning(
                "rejected %s delivery %s: %d %s", source, g.delivery, exc.status, exc.message
            )
            return respond(source, exc.outcome, exc.status, {"error": exc.message})

    # ------------------------------------------------------------------ GitHub

    def github() -> Response:
        body = _read_body(max_body)
        try:
            verify_github(github_secret, body, request.headers.get(GITHUB_HEADER))
        except SignatureError as exc:
            _signature_rejection(exc)
        delivery = delivery_header("X-GitHub-Delivery", "github")
        event_name = request.headers.get("X-GitHub-Event")
        if event_name is None or not event_name.strip():
            _reject(400, "missing X-GitHub-Event header", "rejected_headers")
        if not _GITHUB_EVENT.fullmatch(event_name):
            _reject(400, "malformed X-GitHub-Event header", "rejected_headers")
        payload = _json_object(body)
        try:
            event = parse_github(event_name, payload, bot_login=bot_login)
        except PayloadError as exc:
            _reject(400, f"malformed {event_name} payload: {exc}", "rejected_payload")
        if isinstance(event, Ping):
            return respond("github", "pong", 200, {"status": "pong"})
        if isinstance(event, Ignored):
            return respond("github", "ignored", 200, {"status": "ignored", "reason": event.reason})
        queued = enqueue(
            NewJob(
                delivery_id=f"github:{delivery}",
                source="github",
                kind=event.KIND,
                repo=event.repo or None,
                payload=event.to_payload(),
            )
        )
        if not queued:
            return respond("github", "duplicate", 200, {"status": "duplicate"})
        # DEBUG: the job row is the durable record of every accepted delivery (operator page)
        log.debug("queued github %s delivery %s for %s", event.KIND, delivery, event.repo or "-")
        return respond("github", "queued", 202, {"status": "queued"})

    # ------------------------------------------------------------------ MLflow / Databricks

    def registry() -> Response:
        databricks = DATABRICKS_HEADER in request.headers
        source = "databricks" if databricks else "mlflow"
        secret = databricks_secret if databricks else mlflow_secret
        if not secret:
            variable = "DATABRICKS_WEBHOOK_SECRET" if databricks else "MLFLOW_WEBHOOK_SECRET"
            _reject(
                503,
                f"{source} webhooks are not enabled: {variable} is not configured",
                "rejected_unconfigured",
            )
        body = _read_body(max_body)
        if databricks:
            try:
                verify_databricks(secret, body, request.headers.get(DATABRICKS_HEADER))
            except SignatureError as exc:
                _signature_rejection(exc)
            # Databricks sends no delivery id; its body carries webhook id and event time.
            delivery = hashlib.sha256(body).hexdigest()
            g.delivery = f"databricks:{delivery[:16]}"
        else:
            try:
                verify_mlflow(
                    secret,
                    request.headers.get(MLFLOW_DELIVERY_HEADER),
                    request.headers.get(MLFLOW_TIMESTAMP_HEADER),
                    body,
                    request.headers.get(MLFLOW_SIGNATURE_HEADER),
                    now=clock(),
                    tolerance_s=tolerance,
                )
            except SignatureError as exc:
                _signature_rejection(exc)
            delivery = delivery_header(MLFLOW_DELIVERY_HEADER, "mlflow")
        payload = _json_object(body)
        try:
            event = parse_databricks(payload) if databricks else parse_mlflow(payload)
        except UnsupportedEvent as exc:
            _reject(422, str(exc), "rejected_unsupported")
        except PayloadError as exc:
            _reject(400, f"malformed {source} payload: {exc}", "rejected_payload")
        if isinstance(event, Ignored):
            return respond(source, "ignored", 200, {"status": "ignored", "reason": event.reason})
        if not target_repos:
            _reject(
                503,
                "no target repository configured for registry events (MLFLOW_TARGET_REPOS)",
                "rejected_unconfigured",
            )
        return fan_out(source, delivery, event.KIND, event.to_payload(), target_repos)

    # ------------------------------------------------------------------ Argo CD

    def argocd() -> Response:
        if not argocd_secret:
            _reject(
                503,
                "argocd webhooks are not enabled: ARGOCD_WEBHOOK_SECRET is not configured",
                "rejected_unconfigured",
            )
        body = _read_body(max_body)
        header = request.headers.get("Authorization")
        if not header or not header.strip():
            _reject(
                401,
                "missing Authorization header (Argo CD's webhook service must send "
                "'Authorization: Bearer <ARGOCD_WEBHOOK_SECRET>')",
                "rejected_signature",
            )
        if not bearer_matches(header, argocd_secret):
            _reject(
                401, "Authorization is not 'Bearer <the configured secret>'", "rejected_signature"
            )
        payload = _json_object(body)
        try:
            note = parse_argocd(payload)
        except PayloadError as exc:
            _reject(400, f"malformed argocd payload: {exc}", "rejected_payload")
        if not argocd_repos:
            _reject(
                503,
                "no target repository configured for Argo CD notifications "
                "(ARGOCD_TARGET_REPOS or MLFLOW_TARGET_REPOS)",
                "rejected_unconfigured",
            )
        named = _repo_of_url(note.repo_url)
        repos = [r for r in argocd_repos if r.lower() == named] if named else []
        # Argo CD sends no delivery id: identical bodies within a minute are one delivery
        digest = hashlib.sha256(body).hexdigest()[:32]
        g.delivery = f"argocd:{digest[:16]}"
        key = f"{digest}:{int(clock() // 60)}"
        return fan_out("argocd", key, note.KIND, note.to_payload(), repos or argocd_repos)

    def fan_out(
        source: str, key: str, kind: str, payload: dict[str, Any], repos: Sequence[str]
    ) -> Response:
        """One job per target repository for a delivery (deduplicated on `key`)."""
        queued = 0
        for repo in repos:
            queued += enqueue(
                NewJob(
                    delivery_id=f"{source}:{key}:{repo}",
                    source=source,
                    kind=kind,
                    repo=repo,
                    payload=payload,
                )
            )
        if not queued:
            return respond(source, "duplicate", 200, {"status": "duplicate"})
        log.info("queued %s %s delivery %s for %d repos", source, kind, g.delivery, queued)
        return respond(source, "queued", 202, {"status": "queued", "jobs": queued})

    # ------------------------------------------------------------------ Flagger

    def flagger() -> Response:
        if not flagger_token:
            _reject(
                503,
                "flagger webhooks are not enabled: FLAGGER_WEBHOOK_TOKEN is not configured",
                "rejected_unconfigured",
            )
        body = _read_body(max_body)
        # Flagger sends no headers of its own: the token travels in the webhook URL
        supplied = request.args.get("token", "").encode("utf-8", "replace")
        if not supplied:
            _reject(
                401,
                "missing token (point Flagger's event webhook at "
                "/webhooks/flagger?token=<FLAGGER_WEBHOOK_TOKEN>)",
                "rejected_signature",
            )
        if not hmac.compare_digest(supplied, flagger_token):
            _reject(401, "token is not the configured FLAGGER_WEBHOOK_TOKEN", "rejected_signature")
        payload = _json_object(body)
        try:
            event = parse_flagger(payload)
        except PayloadError as exc:
            _reject(400, f"malformed flagger payload: {exc}", "rejected_payload")
        if not argocd_repos:
            _reject(
                503,
                "no target repository configured for Flagger events "
                "(ARGOCD_TARGET_REPOS or MLFLOW_TARGET_REPOS)",
                "rejected_unconfigured",
            )
        digest = hashlib.sha256(body).hexdigest()[:32]  # the body carries Flagger's timestamp
        g.delivery = f"flagger:{digest[:16]}"
        return fan_out("flagger", digest, event.KIND, event.to_payload(), argocd_repos)

    @app.post("/webhooks/flagger")
    def flagger_webhook() -> Response:
        return guarded("flagger", flagger)

    def confirm() -> Response:
        """Flagger's confirm-promotion hook: answered from the bot's own records (no GitHub
        call): 200 only when the canary rolls out a promotion the bot merged that is still
        current, and Argo CD reports its environment Synced on it and not Degraded."""
        if not flagger_token:
            _reject(
                503,
                "flagger webhooks are not enabled: FLAGGER_WEBHOOK_TOKEN is not configured",
                "rejected_unconfigured",
            )
        body = _read_body(max_body)
        supplied = request.args.get("token", "").encode("utf-8", "replace")
        if not supplied or not hmac.compare_digest(supplied, flagger_token):
            _reject(401, "missing or wrong token (FLAGGER_WEBHOOK_TOKEN)", "rejected_signature")
        payload = _json_object(body)
        name, namespace = payload.get("name"), payload.get("namespace")
        if not isinstance(name, str) or not isinstance(namespace, str):
            _reject(
                400, "malformed flagger payload: name and namespace expected", "rejected_payload"
            )
        records = PromotionRecords(queue)
        target = records.canary_target(namespace, name)
        if target is None:
            ok, reason = (
                False,
                (
                    "gitops-bot has seen no event of this canary "
                    "(point Flagger's event webhook at it too)"
                ),
            )
        else:
            repo, environment, sha = target
            deployment = records.deployment(repo, environment, sha)
            health = records.health(repo, environment)
            if deployment is None:
                ok, reason = False, f"no deployment of {sha[:7]} to {environment}"
            elif health is None:
                ok, reason = False, f"Argo CD has not reported on {environment} yet"
            else:
                ok, reason = confirm_promotion(
                    environment=environment,
                    version=deployment.version,
                    deployment_state=deployment.state,
                    running_version=health.version,
                    sync_status=health.sync_status,
                    health_status=health.health_status,
                )
        if ok:
            return respond("flagger", "confirmed", 200, {"status": "confirmed", "reason": reason})
        return respond("flagger", "not_confirmed", 403, {"status": "waiting", "reason": reason})

    @app.post("/webhooks/flagger/confirm-promotion")
    def flagger_confirm_promotion() -> Response:
        return guarded("flagger", confirm)

    @app.post("/webhooks/argocd")
    def argocd_webhook() -> Response:
        return guarded("argocd", argocd)

    @app.post("/webhooks/github")
    def github_webhook() -> Response:
        return guarded("github", github)

    @app.post("/webhooks/mlflow")
    def mlflow_webhook() -> Response:
        return guarded("databricks" if DATABRICKS_HEADER in request.headers else "mlflow", registry)

    # ------------------------------------------------------------------ operations

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        try:
            queue.ping()
        except Exception as exc:
            log.warning("readiness check failed: job queue unavailable (%s)", type(exc).__name__)
            return jsonify({"status": "unavailable", "error": "job queue unavailable"}), 503
        return jsonify({"status": "ready"}), 200

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        if metrics_token is None:  # served on the loopback metrics listener only
            response = jsonify({"error": "not found"})
            response.status_code = 404
            return response
        if not bearer_matches(request.headers.get("Authorization"), metrics_token):
            response = jsonify({"error": "a valid bearer token is required"})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return Response(m.exposition(), content_type=CONTENT_TYPE_LATEST)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        if status == 413:
            m.delivery("unknown", "rejected_too_large").inc()
        return jsonify({"error": exc.description or exc.name}), status

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.get("started")
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            m.duration(endpoint).observe(time.perf_counter() - started)
        return response

    return app
