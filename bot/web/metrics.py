"""Prometheus metrics on a per-app registry, shared by the web layer and the worker."""

from __future__ import annotations

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """All gitops-bot metrics, registered on one (non-global) CollectorRegistry.

    Label sets (keep values from a small fixed vocabulary, never user input):
    - deliveries{source, outcome}: source github|mlflow|databricks|argocd|flagger; outcome
      queued|duplicate|ignored|pong|confirmed|not_confirmed|rejected_<reason>
    - request_duration{endpoint}: Flask route rule, or "unmatched"
    - jobs{kind, outcome}: outcome done|retry|failed
    - job_duration{kind}
    - github_calls{operation, status}: status is the HTTP status code or "error"
    - github_rate_remaining: last X-RateLimit-Remaining seen
    - renders{outcome}: ok|error|timeout
    - render_duration
    - render_cache{result}: hit|miss
    - refusals{kind}: registry events not promoted; kind stale_version|stale_alias|
      unservable_location
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.deliveries = Counter(
            "gitops_bot_webhook_deliveries",
            "Webhook deliveries received, by source and outcome",
            ["source", "outcome"],
            registry=r,
        )
        self.request_duration = Histogram(
            "gitops_bot_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["endpoint"],
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.jobs = Counter(
            "gitops_bot_jobs", "Jobs finished by the worker", ["kind", "outcome"], registry=r
        )
        self.job_duration = Histogram(
            "gitops_bot_job_duration_seconds",
            "Time to run one job attempt",
            ["kind"],
            buckets=_SLOW_BUCKETS,
            registry=r,
        )
        self.github_calls = Counter(
            "gitops_bot_github_api_calls",
            "GitHub API requests made",
            ["operation", "status"],
            registry=r,
        )
        self.github_rate_remaining = Gauge(
            "gitops_bot_github_rate_limit_remaining",
            "Last X-RateLimit-Remaining value GitHub returned",
            registry=r,
        )
        self.renders = Counter(
            "gitops_bot_kustomize_renders",
            "Renders used (built by Kustomize or taken from the render cache)",
            ["outcome"],
            registry=r,
        )
        self.render_cache = Counter(
            "gitops_bot_render_cache_lookups",
            "Render cache lookups by result; hit / (hit + miss) is the hit rate",
            ["result"],
            registry=r,
        )
        self.render_duration = Histogram(
            "gitops_bot_kustomize_render_duration_seconds",
            "Time to run one Kustomize build",
            buckets=_SLOW_BUCKETS,
            registry=r,
        )

        self.refusals = Counter(
            "gitops_bot_promotion_refusals",
            "Registry events not promoted (older than what an environment runs, a moved alias,"
            " a location the environment cannot serve)",
            ["kind"],
            registry=r,
        )

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


def metrics_app(metrics: Metrics) -> Flask:
    """The metrics listener's app: GET /metrics only, no authentication (keep it on loopback)."""
    app = Flask(__name__)

    @app.get("/metrics")
    def exposition() -> Response:
        return Response(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)

    return app
