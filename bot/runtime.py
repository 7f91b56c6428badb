"""Wire settings, queue, gateways, web app and workers into running processes."""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from flask import Flask

from bot.settings import Settings, SettingsError, load_settings

log = logging.getLogger("bot")


@dataclass
class Runtime:
    settings: Settings
    queue: Any
    services: Any
    metrics: Any
    budgets: Any = None  # bot.gateways.rate_budget.RateBudgets


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # PyGithub and urllib3 log request/response bodies (installation tokens) at DEBUG.
    for noisy in ("github", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    # the access log prints request lines: Flagger's token travels in its webhook URL
    logging.getLogger("werkzeug").addFilter(redact_url_tokens)


_URL_TOKEN = re.compile(r"([?&]token=)[^&\s\"']*")


def redact_url_tokens(record: logging.LogRecord) -> bool:
    """Logging filter: `?token=<secret>` in a record's message becomes `?token=***`."""
    message = record.getMessage()
    if "token=" in message:
        record.msg, record.args = _URL_TOKEN.sub(r"\1***", message), None
    return True


def build_runtime(settings: Settings | None = None) -> Runtime:
    """Everything a web or worker process needs; fails fast on missing settings."""
    from bot.gateways.argocd import ArgoCDClient
    from bot.gateways.github import GitHubApp
    from bot.gateways.kustomize import Renderer
    from bot.gateways.mlflow import MlflowClient
    from bot.gateways.queue import JobQueue
    from bot.gateways.rate_budget import BudgetPolicy, RateBudgets
    from bot.gateways.rate_budget import attach as attach_budgets
    from bot.gateways.records import PromotionRecords
    from bot.gateways.render_cache import RenderCache
    from bot.jobs.dispatch import Services
    from bot.web.metrics import Metrics

    settings = settings or load_settings()
    if not settings.github_app_id or not settings.github_private_key:
        raise SettingsError("GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or _PATH) are required")
    if not settings.bot_login:
        # the bot recognises its own pull requests and events by `<slug>[bot]`
        raise SettingsError("GITHUB_APP_SLUG is required (the App's slug, e.g. gitops-bot)")
    queue = JobQueue.from_url(settings.database_url)
    queue.migrate()
    slug = settings.bot_login[: -len("[bot]")] if settings.bot_login else None
    github = GitHubApp(
        settings.github_app_id,
        settings.github_private_key.get(),
        settings.github_api_url,
        app_slug=slug,
        etag_cache_bytes=settings.github_etag_cache_mib * 1024 * 1024,
    )
    metrics = Metrics()
    github.counter.listener = lambda operation, status: metrics.github_calls.labels(
        operation=operation, status=status
    ).inc()
    budgets = RateBudgets(
        BudgetPolicy(
            floor=settings.github_rate_floor,
            reserve_share=settings.github_rate_reserve,
            reconcile_share=settings.reconcile_rate_share,
        ),
        listener=metrics.observe_rate_window,
    )
    attach_budgets(github, budgets)
    cache = RenderCache(
        max_bytes=settings.render_cache_mib * 1024 * 1024,
        listener=lambda hit: metrics.render_cache.labels(result="hit" if hit else "miss").inc(),
    )
    renderer = Renderer(
        binary=settings.kustomize_bin,
        isolation=settings.render_network_isolation,
        cache=cache if settings.render_cache_mib > 0 else None,
    )
    render_pair = measured_render_pair(renderer.render_pair, metrics)
    services = Services(
        github=github,
        # the bot's own edits of default-branch content: still no plugins/exec/helm
        render_pair=render_pair,
        untrusted_render_pair=render_pair,
        records=PromotionRecords(queue),
        mlflow=(
            MlflowClient(
                settings.mlflow_tracking_uri,
                artifacts_destination=settings.mlflow_artifacts_destination,
            )
            if settings.mlflow_tracking_uri
            else None
        ),
        bot_login=settings.bot_login,
        app_slug=slug,
        on_refused=lambda kind: metrics.refusals.labels(kind=kind).inc(),
        argocd_url=settings.argocd_url,
        argocd=(
            ArgoCDClient(settings.argocd_server, settings.argocd_token.get())
            if settings.argocd_server
            else None
        ),
    )
    return Runtime(
        settings=settings, queue=queue, services=services, metrics=metrics, budgets=budgets
    )


def measured_render_pair(render_pair: Any, metrics: Any) -> Any:
    """Count Kustomize builds by outcome and time each base+head render."""

    def render(base: Any, head: Any, overlays: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        results = render_pair(base, head, overlays, **kwargs)
        metrics.render_duration.observe(time.monotonic() - started)
        for pair in results.values():
            for result in pair:
                outcome = (
                    "ok" if result.ok else "timeout" if "timed out" in result.error else "error"
                )
                metrics.renders.labels(outcome=outcome).inc()
        return results

    return render


def job_handler(runtime: Runtime) -> Any:
    """The worker's handler: dispatch, with job metrics; reconcile paced by the rate budget."""
    from bot.jobs.dispatch import handle_job

    def handle(job: Any) -> None:
        started = time.monotonic()
        outcome = "error"
        try:
            if job.kind == "reconcile":
                outcome = _paced_reconcile(runtime, job, handle_job)
            else:
                handle_job(runtime.services, job.kind, job.repo, dict(job.payload))
                outcome = "done"
        finally:
            runtime.metrics.jobs.labels(kind=job.kind, outcome=outcome).inc()
            runtime.metrics.job_duration.labels(kind=job.kind).observe(time.monotonic() - started)

    return handle


def _paced_reconcile(runtime: Runtime, job: Any, handle_job: Any) -> str:
    """Run a reconcile job within its share of the installation's rate budget: skip it
    while the installation is over the share (or under the reserve) and stop it where it
    gets there; the next reconcile tick after the window's reset catches up."""
    from bot.gateways.rate_budget import RECONCILE, RateBudgetExceeded, spending_on

    budgets = runtime.budgets
    if budgets is not None and job.repo:
        installation = runtime.services.github.installation_id(job.repo)
        wait = budgets.reconcile_wait(installation)
        if wait > 0:
            runtime.metrics.reconcile_held_back.inc()
            log.info(
                "reconcile of %s skipped: over its share of installation %s's GitHub rate "
                "budget for %.0f s more",
                job.repo,
                installation,
                wait,
            )
            return "skipped"
    try:
        with spending_on(RECONCILE):
            handle_job(runtime.services, job.kind, job.repo, dict(job.payload))
    except RateBudgetExceeded as exc:
        runtime.metrics.reconcile_held_back.inc()
        log.info("reconcile of %s stopped: %s", job.repo, exc)
        return "skipped"
    return "done"


def web_app(runtime: Runtime) -> Flask:
    from bot.gateways.github_user import GitHubOAuth
    from bot.web.app import create_app
    from bot.web.operator import GitHubOperatorData, install_operator_page

    settings = runtime.settings
    app = create_app(settings, runtime.queue, metrics=runtime.metrics)
    data = GitHubOperatorData(
        runtime.services.github,
        runtime.queue,
        settings.mlflow_target_repos,
        bot_login=settings.bot_login,
    )
    oauth = None
    if settings.signin_enabled:
        oauth = GitHubOAuth(
            settings.github_client_id,
            settings.github_client_secret,
            settings.github_web_url,
            settings.github_api_url,
        )
    else:
        log.warning("operator page disabled: GITHUB_CLIENT_ID is not set (docs/deploy.md §1.1)")
    install_operator_page(
        app, data, oauth=oauth, settings=settings, repos=settings.mlflow_target_repos
    )
    return app


def create_wsgi_app() -> Flask:
    """Entry point for gunicorn: `gunicorn 'bot.runtime:create_wsgi_app()'`."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return web_app(build_runtime(settings))


def start_reconcile_timer(runtime: Runtime, stop: threading.Event) -> threading.Thread | None:
    """Enqueue a reconcile job per repository every interval (dedupe by time bucket)."""
    from bot.gateways.queue import NewJob

    interval = runtime.settings.reconcile_interval_s
    settings = runtime.settings
    repos = list(dict.fromkeys((*settings.mlflow_target_repos, *settings.argocd_target_repos)))
    if interval <= 0 or not repos:
        return None

    def loop() -> None:
        while not stop.wait(interval):
            bucket = int(time.time() // interval)
            for repo in repos:
                job = NewJob(f"reconcile:{repo}:{bucket}", "internal", "reconcile", repo, {})
                try:
                    runtime.queue.enqueue(job)
                except Exception:
                    log.exception("could not enqueue reconcile for %s", repo)

    thread = threading.Thread(target=loop, name="reconcile", daemon=True)
    thread.start()
    return thread


def _start_workers(runtime: Runtime, stop: threading.Event) -> threading.Thread:
    from bot.worker import Worker

    worker = Worker(
        runtime.queue,
        job_handler(runtime),
        concurrency=runtime.settings.worker_concurrency,
        lease_seconds=runtime.settings.worker_lease_s,
    )
    thread = threading.Thread(target=worker.run, args=(stop,), name="worker", daemon=True)
    thread.start()
    return thread


def _install_signal_handlers(stop: threading.Event, on_stop: Any = None) -> None:
    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()
        if on_stop is not None:
            on_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def start_metrics_listener(runtime: Runtime) -> Any:
    """Serve /metrics on METRICS_LISTEN (loopback by default) in a thread; None when off."""
    from werkzeug.serving import make_server

    from bot.web.metrics import metrics_app

    listen = runtime.settings.metrics_listen
    if listen is None:
        return None
    host, port = listen
    try:
        server = make_server(host, port, metrics_app(runtime.metrics), threaded=True)
    except (OSError, SystemExit) as exc:  # Werkzeug exits on an address in use
        reason = exc.strerror if isinstance(exc, OSError) else "address in use or unavailable"
        raise SettingsError(
            f"METRICS_LISTEN {host}:{port}: cannot listen ({reason}); "
            "choose another address or set METRICS_LISTEN=off"
        ) from None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return server


def serve(host: str = "127.0.0.1", port: int = 8080, workers: bool = True) -> int:
    """Web server plus in-process workers: the embedded single-process deployment."""
    from werkzeug.serving import make_server

    settings = load_settings()
    configure_logging(settings.log_level)
    runtime = build_runtime(settings)
    app = web_app(runtime)
    metrics_server = start_metrics_listener(runtime)
    stop = threading.Event()
    threads = [_start_workers(runtime, stop)] if workers else []
    start_reconcile_timer(runtime, stop)
    server = make_server(host, port, app, threaded=True)

    def shutdown() -> None:
        server.shutdown()
        if metrics_server is not None:
            metrics_server.shutdown()

    _install_signal_handlers(stop, lambda: threading.Thread(target=shutdown).start())
    log.info("gitops-bot listening on http://%s:%d", host, server.server_port)
    server.serve_forever()
    for thread in threads:
        thread.join(timeout=60)
    return 0


def run_worker() -> int:
    """Workers only (scale them separately from the web replicas)."""
    settings = load_settings()
    configure_logging(settings.log_level)
    runtime = build_runtime(settings)
    stop = threading.Event()
    _install_signal_handlers(stop)
    start_reconcile_timer(runtime, stop)
    from bot.worker import Worker

    Worker(
        runtime.queue,
        job_handler(runtime),
        concurrency=settings.worker_concurrency,
        lease_seconds=settings.worker_lease_s,
    ).run(stop)
    return 0


def replay(path: Path, *, event: str | None, source: str) -> int:
    """Run one stored webhook body through the parser and the handler, synchronously."""
    from bot.core.events import Ignored, parse_github, parse_mlflow

    settings = load_settings()
    configure_logging(settings.log_level)
    runtime = build_runtime(settings)
    payload = json.loads(path.read_text(encoding="utf-8"))
    handle = partial(_replay_one, runtime)
    if source == "github":
        if not event:
            raise SettingsError("--event is required for GitHub payloads (the X-GitHub-Event name)")
        parsed = parse_github(event, payload, bot_login=settings.bot_login)
        if isinstance(parsed, Ignored):
            print(f"ignored: {parsed.reason}")
            return 0
        handle(parsed.KIND, parsed.repo or None, parsed.to_payload())
        return 0
    parsed_ml = parse_mlflow(payload)
    if isinstance(parsed_ml, Ignored):
        print(f"ignored: {parsed_ml.reason}")
        return 0
    for repo in settings.mlflow_target_repos:
        handle(parsed_ml.KIND, repo, parsed_ml.to_payload())
    return 0


def _replay_one(runtime: Runtime, kind: str, repo: str | None, payload: dict[str, Any]) -> None:
    from bot.jobs.dispatch import handle_job

    log.info("replaying %s for %s (%s)", kind, repo, uuid.uuid4().hex[:8])
    handle_job(runtime.services, kind, repo, payload)
