"""The intake floor: a bare Flask endpoint that only checks X-Hub-Signature-256 and answers 202.

    gunicorn -w 2 -b 127.0.0.1:8081 'bench.floor_app:create_wsgi_app()'   # from the repo root

It reads the body, verifies the HMAC with the secret in GITHUB_WEBHOOK_SECRET (the same
variable the bot reads) and returns 202: no parsing, no queue, no metrics. Whatever the bot
does on top of this is the cost `bench/intake.py` measures.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from flask import Flask, Response, request

ACCEPTED = b'{"status":"queued"}\n'


def create_app(secret: bytes) -> Flask:
    """The floor app for `secret` (must not be empty)."""
    if not secret:
        raise ValueError("the floor app needs a non-empty webhook secret")
    app = Flask(__name__)

    @app.post("/webhooks/github")
    def github_webhook() -> Response:
        body = request.get_data()
        given = request.headers.get("X-Hub-Signature-256", "")
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            return Response(b'{"error":"bad signature"}\n', 401, mimetype="application/json")
        return Response(ACCEPTED, 202, mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"ok"}\n', mimetype="application/json")

    return app


def create_wsgi_app() -> Flask:
    """Entry point for gunicorn; the secret comes from GITHUB_WEBHOOK_SECRET."""
    return create_app(os.environ.get("GITHUB_WEBHOOK_SECRET", "").encode())
