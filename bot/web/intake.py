"""Webhook intake as a plain WSGI application: verify, parse, enqueue, answer.

The webhook endpoints are the hot path (every delivery of every repository), so they skip
Flask's request machinery (contexts, routing, hooks): `create_app` mounts this in front of
the Flask app, which keeps the operator page, health and metrics endpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

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

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

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


def _read_body(req: Request, max_bytes: int) -> bytes:
    """The body, counted as it is read: a chunked body (no Content-Length) that grows past
    the limit is a 413 too, never a silently cut body that fails its signature."""
    too_large = f"request body exceeds the {max_bytes} byte limit"
    if req.content_length is not None and req.content_length > max_bytes:
        _reject(413, too_large, "rejected_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := req.stream.read(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                _reject(413, too_large, "rejected_too_large")
            chunks.append(chunk)
    except RequestEntityTooLarge:
        _reject(413, too_large, "rejected_too_large")
    return b"".join(chunks)


_Parsed = TypeVar("_Parsed")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        return parse_json_object(body)
    except JsonRefused as exc:
        _reject(400, str(exc), "rejected_json")


def _parsed(body: bytes, parse: Callable[[dict[str, Any]], _Parsed], what: str) -> _Parsed:
    """The body as JSON, then as `what`'s payload; a 400 naming `what` when it is neither."""
    payload = _json_object(body)
    try:
        return parse(payload)
    except PayloadError as exc:
        _reject(400, f"malformed {what} payload: {exc}", "rejected_payload")


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


def _enabled(secret: bytes | None, source: str, variable: str) -> bytes:
    """The secret of a webhook source, or a 503 saying which setting enables it."""
    if not secret:
        _reject(
            503,
            f"{source} webhooks are not enabled: {variable} is not configured",
            "rejected_unconfigured",
        )
    return secret


def _signature_rejection(exc: SignatureError) -> NoReturn:
    outcome = "rejected_timestamp" if exc.problem in ("expired", "future") else "rejected_signature"
    _reject(401, exc.reason, outcome)


class Call:
    """One delivery being taken: the name the log gives it once its id is known."""

    __slots__ = ("delivery",)

    def __init__(self) -> None:
        self.delivery = "-"


Handler = Callable[[Request, Call], Response]


class WebhookIntake:
    """The webhook endpoints (POST only) as one WSGI application."""

    def __init__(
        self,
        routes: dict[str, tuple[Callable[[Request], str], Handler]],
        metrics: Metrics,
        max_body: int,
    ) -> None:
        self._routes = routes
        self._metrics = metrics
        self.paths = frozenset(routes)
        self.max_body = max_body

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        path = environ.get("PATH_INFO", "")
        source_of, handler = self._routes[path]
        req = Request(environ)
        # one byte more than we accept: Werkzeug cuts a chunked body at this limit without a
        # word, so `_read_body` must be able to see the byte that makes it too large
        req.max_content_length = self.max_body + 1
        if req.method != "POST":
            response = Response(
                json_body({"error": "method not allowed: webhooks are POSTed"}),
                405,
                mimetype="application/json",
                headers={"Allow": "POST"},
            )
        else:
            response = self._take(req, source_of(req), handler)
        self._metrics.duration(path).observe(time.perf_counter() - started)
        return response(environ, start_response)

    def _take(self, req: Request, source: str, handler: Handler) -> Response:
        call = Call()
        try:
            return handler(req, call)
        except Rejected as exc:
            log.warning(
                "rejected %s delivery %s: %d %s", source, call.delivery, exc.status, exc.message
            )
            outcome, status, body = exc.outcome, exc.status, {"error": exc.message}
        except HTTPException as exc:  # Werkzeug's own, e.g. the client went away mid-body
            log.warning("rejected %s delivery %s: %s", source, call.delivery, exc)
            outcome, status = "rejected_request", exc.code or 400
            body = {"error": exc.description or exc.name}
        except Exception:
            log.exception("could not take %s delivery %s", source, call.delivery)
            error = InternalServerError.description
            outcome, status, body = "failed_internal", 500, {"error": error}
        self._metrics.delivery(source, outcome).inc()
        return Response(json_body(body), status, mimetype="application/json")


def webhook_intake(
    settings: WebSettings,
    queue: JobQueue,
    metrics: Metrics,
    *,
    clock: Callable[[], float] = time.time,
) -> WebhookIntake:
    """The intake for these settings. Raises ValueError when no GitHub webhook secret is
    configured."""
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
    argocd_secret = secret_bytes(getattr(settings, "argocd_webhook_secret", None))
    argocd_repos = tuple(getattr(settings, "argocd_target_repos", ()) or target_repos)
    flagger_token = secret_bytes(getattr(settings, "flagger_webhook_token", None))

    def enqueue(job: NewJob) -> bool:
        try:
            return queue.enqueue(job)
        except Exception as exc:  # the queue is down: the sender must retry, nothing is lost
            log.error("enqueue failed for %s: %s", job.delivery_id, type(exc).__name__)
            _reject(503, "job queue unavailable, retry later", "rejected_queue")

    def delivery_header(req: Request, call: Call, name: str, source: str) -> str:
        value = req.headers.get(name)
        if value is None or not value.strip():
            _reject(400, f"missing {name} header", "rejected_headers")
        if not _DELIVERY_ID.fullmatch(value):
            _reject(400, f"malformed {name} header", "rejected_headers")
        call.delivery = f"{source}:{value}"
        return value

    def respond(source: str, outcome: str, status: int, body: dict[str, Any]) -> Response:
        metrics.delivery(source, outcome).inc()
        return Response(json_body(body), status, mimetype="application/json")

    # ------------------------------------------------------------------ GitHub

    def github(req: Request, call: Call) -> Response:
        body = _read_body(req, max_body)
        try:
            verify_github(github_secret, body, req.headers.get(GITHUB_HEADER))
        except SignatureError as exc:
            _signature_rejection(exc)
        delivery = delivery_header(req, call, "X-GitHub-Delivery", "github")
        event_name = req.headers.get("X-GitHub-Event")
        if event_name is None or not event_name.strip():
            _reject(400, "missing X-GitHub-Event header", "rejected_headers")
        if not _GITHUB_EVENT.fullmatch(event_name):
            _reject(400, "malformed X-GitHub-Event header", "rejected_headers")
        event = _parsed(
            body, lambda payload: parse_github(event_name, payload, bot_login=bot_login), event_name
        )
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

    def registry(req: Request, call: Call) -> Response:
        databricks = DATABRICKS_HEADER in req.headers
        source = "databricks" if databricks else "mlflow"
        configured = databricks_secret if databricks else mlflow_secret
        variable = "DATABRICKS_WEBHOOK_SECRET" if databricks else "MLFLOW_WEBHOOK_SECRET"
        secret = _enabled(configured, source, variable)
        body = _read_body(req, max_body)
        if databricks:
            try:
                verify_databricks(secret, body, req.headers.get(DATABRICKS_HEADER))
            except SignatureError as exc:
                _signature_rejection(exc)
            # Databricks sends no delivery id; its body carries webhook id and event time.
            delivery = hashlib.sha256(body).hexdigest()
            call.delivery = f"databricks:{delivery[:16]}"
        else:
            try:
                verify_mlflow(
                    secret,
                    req.headers.get(MLFLOW_DELIVERY_HEADER),
                    req.headers.get(MLFLOW_TIMESTAMP_HEADER),
                    body,
                    req.headers.get(MLFLOW_SIGNATURE_HEADER),
                    now=clock(),
                    tolerance_s=tolerance,
                )
            except SignatureError as exc:
                _signature_rejection(exc)
            delivery = delivery_header(req, call, MLFLOW_DELIVERY_HEADER, "mlflow")
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
        return fan_out(call, source, delivery, event.KIND, event.to_payload(), target_repos)

    # ------------------------------------------------------------------ Argo CD

    def require_argocd_repos(senders: str) -> None:
        if not argocd_repos:
            _reject(
                503,
                f"no target repository configured for {senders} "
                "(ARGOCD_TARGET_REPOS or MLFLOW_TARGET_REPOS)",
                "rejected_unconfigured",
            )

    def argocd(req: Request, call: Call) -> Response:
        bearer = _enabled(argocd_secret, "argocd", "ARGOCD_WEBHOOK_SECRET")
        body = _read_body(req, max_body)
        header = req.headers.get("Authorization")
        if not header or not header.strip():
            _reject(
                401,
                "missing Authorization header (Argo CD's webhook service must send "
                "'Authorization: Bearer <ARGOCD_WEBHOOK_SECRET>')",
                "rejected_signature",
            )
        if not bearer_matches(header, bearer):
            _reject(
                401, "Authorization is not 'Bearer <the configured secret>'", "rejected_signature"
            )
        note = _parsed(body, parse_argocd, "argocd")
        require_argocd_repos("Argo CD notifications")
        named = _repo_of_url(note.repo_url)
        repos = [r for r in argocd_repos if r.lower() == named] if named else []
        # Argo CD sends no delivery id: identical bodies within a minute are one delivery
        digest = hashlib.sha256(body).hexdigest()[:32]
        call.delivery = f"argocd:{digest[:16]}"
        key = f"{digest}:{int(clock() // 60)}"
        return fan_out(call, "argocd", key, note.KIND, note.to_payload(), repos or argocd_repos)

    def fan_out(
        call: Call, source: str, key: str, kind: str, payload: dict[str, Any], repos: Sequence[str]
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
        log.info("queued %s %s delivery %s for %d repos", source, kind, call.delivery, queued)
        return respond(source, "queued", 202, {"status": "queued", "jobs": queued})

    # ------------------------------------------------------------------ Flagger

    def flagger(req: Request, call: Call) -> Response:
        token = _enabled(flagger_token, "flagger", "FLAGGER_WEBHOOK_TOKEN")
        body = _read_body(req, max_body)
        # Flagger sends no headers of its own: the token travels in the webhook URL
        supplied = req.args.get("token", "").encode("utf-8", "replace")
        if not supplied:
            _reject(
                401,
                "missing token (point Flagger's event webhook at "
                "/webhooks/flagger?token=<FLAGGER_WEBHOOK_TOKEN>)",
                "rejected_signature",
            )
        if not hmac.compare_digest(supplied, token):
            _reject(401, "token is not the configured FLAGGER_WEBHOOK_TOKEN", "rejected_signature")
        event = _parsed(body, parse_flagger, "flagger")
        require_argocd_repos("Flagger events")
        digest = hashlib.sha256(body).hexdigest()[:32]  # the body carries Flagger's timestamp
        call.delivery = f"flagger:{digest[:16]}"
        return fan_out(call, "flagger", digest, event.KIND, event.to_payload(), argocd_repos)

    def confirm(req: Request, call: Call) -> Response:
        """Flagger's confirm-promotion hook: answered from the bot's own records (no GitHub
        call): 200 only when the canary rolls out a promotion the bot merged that is still
        current, and Argo CD reports its environment Synced on it and not Degraded."""
        token = _enabled(flagger_token, "flagger", "FLAGGER_WEBHOOK_TOKEN")
        body = _read_body(req, max_body)
        supplied = req.args.get("token", "").encode("utf-8", "replace")
        if not supplied or not hmac.compare_digest(supplied, token):
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

    def registry_source(req: Request) -> str:
        return "databricks" if DATABRICKS_HEADER in req.headers else "mlflow"

    return WebhookIntake(
        {
            "/webhooks/github": (lambda _: "github", github),
            "/webhooks/mlflow": (registry_source, registry),
            "/webhooks/argocd": (lambda _: "argocd", argocd),
            "/webhooks/flagger": (lambda _: "flagger", flagger),
            "/webhooks/flagger/confirm-promotion": (lambda _: "flagger", confirm),
        },
        metrics,
        max_body,
    )
