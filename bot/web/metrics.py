"""Prometheus metrics on a per-app registry, shared by the web layer and the worker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from bot.gateways.rate_budget import RateWindow

_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """All gitops-bot metrics, registered on one (non-global) CollectorRegistry.

    Label sets (keep values from a small fixed vocabulary, never user input):
    - deliveries{source, outcome}: source github|mlflow|databricks|argocd|flagger; outcome
      queued|duplicate|ignored|pong|confirmed|not_confirmed|rejected_<reason>|failed_internal
      (rejected_request: Werkzeug refused the request itself)
    - request_duration{endpoint}: webhook path or Flask route rule, or "unmatched"
    - jobs{kind, outcome}: outcome done|retry|failed
    - job_duration{kind}
    - github_calls{operation, status}: status is the HTTP status code or "error"
    - github_rate_remaining{installation}, github_rate_limit{installation},
      github_rate_reset{installation}: the last rate-limit headers of each installation
    - reconcile_held_back: reconcile runs skipped or stopped by the rate budget
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
            "GitHub REST calls left in the installation's current window (X-RateLimit-Remaining)",
            ["installation"],
            registry=r,
        )
        self.github_rate_limit = Gauge(
            "gitops_bot_github_rate_limit",
            "Size of the installation's GitHub REST window (X-RateLimit-Limit)",
            ["installation"],
            registry=r,
        )
        self.github_rate_reset = Gauge(
            "gitops_bot_github_rate_limit_reset_timestamp_seconds",
            "When the installation's GitHub REST window refills (X-RateLimit-Reset)",
            ["installation"],
            registry=r,
        )
        self.reconcile_held_back = Counter(
            "gitops_bot_reconcile_held_back",
            "Reconcile runs skipped or cut short to keep within the installation's rate budget",
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

        self._delivery_children: dict[tuple[str, str], Any] = {}
        self._duration_children: dict[str, Any] = {}
        self.refusals = Counter(
            "gitops_bot_promotion_refusals",
            "Registry events not promoted (older than what an environment runs, a moved alias,"
            " a location the environment cannot serve)",
            ["kind"],
            registry=r,
        )

    def delivery(self, source: str, outcome: str) -> Any:
        """The `deliveries` counter of one source and outcome (looked up once, then cached)."""
        key = (source, outcome)
        child = self._delivery_children.get(key)
        if child is None:
            child = self._delivery_children[key] = self.deliveries.labels(
                source=source, outcome=outcome
            )
        return child

    def duration(self, endpoint: str) -> Any:
        """The `request_duration` histogram of one endpoint (looked up once, then cached)."""
        child = self._duration_children.get(endpoint)
        if child is None:
            child = self._duration_children[endpoint] = self.request_duration.labels(
                endpoint=endpoint
            )
        return child

    def observe_rate_window(self, installation_id: int, window: RateWindow) -> None:
        """Publish one installation's rate-limit window (the rate budget's listener)."""
        label = str(installation_id)
        self.github_rate_remaining.labels(installation=label).set(window.remaining)
        self.github_rate_limit.labels(installation=label).set(window.limit)
        self.github_rate_reset.labels(installation=label).set(window.reset)

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
