"""The web app: webhook intake (`bot.web.intake`) in front of Flask, which serves health,
readiness and metrics (and the operator page, mounted by the runtime)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

from bot.gateways.queue import JobQueue
from bot.web.intake import WebSettings, bearer_matches, secret_bytes, webhook_intake
from bot.web.metrics import Metrics

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["WebSettings", "create_app"]

log = logging.getLogger(__name__)


def create_app(
    settings: WebSettings,
    queue: JobQueue,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """Build the web app. Raises ValueError when no GitHub webhook secret is configured."""
    m = metrics if metrics is not None else Metrics()
    intake = webhook_intake(settings, queue, m, clock=clock)
    metrics_token = secret_bytes(settings.metrics_token)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = intake.max_body  # the operator page's forms
    app.extensions["gitops_bot_metrics"] = m
    flask_wsgi = app.wsgi_app

    def route(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in intake.paths:
            return intake(environ, start_response)
        return flask_wsgi(environ, start_response)

    app.wsgi_app = route  # type: ignore[method-assign]

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
        return jsonify({"error": exc.description or exc.name}), exc.code or 500

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
