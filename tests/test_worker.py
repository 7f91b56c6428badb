"""Worker loop on a real queue: outcomes, backoff, heartbeats, parallelism, graceful stop."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from queue_helpers import open_queue, pg_schema

from bot.core.errors import TransientError
from bot.gateways.queue import Job, JobQueue, NewJob
from bot.worker import Worker, one_line_error


@pytest.fixture(params=["sqlite", "postgresql"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobQueue]:
    if request.param == "sqlite":
        with open_queue("sqlite", tmp_path, max_attempts=3) as q:
            yield q
    else:
        with pg_schema() as schema, open_queue("postgresql", schema, max_attempts=3) as q:
            yield q


_ids = itertools.count()


def enqueue(queue: JobQueue, repo: str | None = "acme/gitops", **payload: object) -> str:
    delivery = f"github:w{next(_ids)}"
    assert queue.enqueue(NewJob(delivery, "github", "issue_comment", repo, payload))
    return delivery


def row(queue: JobQueue, delivery_id: str) -> dict[str, object]:
    return next(r for r in queue.recent(1000) if r["delivery_id"] == delivery_id)


def test_run_once_completes_a_job_the_handler_accepts(queue: JobQueue) -> None:
    delivery = enqueue(queue, n=7)
    seen: list[Job] = []
    worker = Worker(queue, seen.append)
    assert worker.run_once() is True
    assert [j.payload for j in seen] == [{"n": 7}]
    assert row(queue, delivery)["status"] == "done"
    assert worker.run_once() is False


def test_transient_error_requeues_the_job_with_backoff(queue: JobQueue) -> None:
    delivery = enqueue(queue)

    def handler(job: Job) -> None:
        raise TransientError("GitHub secondary rate limit", retry_after=3600)

    assert Worker(queue, handler).run_once() is True
    stored = row(queue, delivery)
    assert (stored["status"], stored["attempts"]) == ("queued", 1)
    assert stored["last_error"] == "TransientError: GitHub secondary rate limit"
    assert queue.claim("other") is None  # waits out Retry-After


def test_transient_error_on_the_last_attempt_fails_the_job(queue: JobQueue) -> None:
    delivery = enqueue(queue)

    def handler(job: Job) -> None:
        raise TransientError("502 from GitHub", retry_after=None)

    for _ in range(2):  # two earlier attempts failed transiently (max_attempts=3)
        job = queue.claim("earlier")
        assert job is not None
        queue.retry(job, "earlier", 0)
    assert Worker(queue, handler).run_once() is True
    stored = row(queue, delivery)
    assert stored["status"] == "failed"
    assert stored["last_error"] == "gave up after 3 attempts: TransientError: 502 from GitHub"


def test_other_errors_fail_the_job_with_one_line_and_log_the_traceback(
    queue: JobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    delivery = enqueue(queue, token="payload-secret")

    def handler(job: Job) -> None:
        raise ValueError("environment\n'prod' missing")

    with caplog.at_level(logging.INFO, logger="bot.worker"):
        assert Worker(queue, handler).run_once() is True
    stored = row(queue, delivery)
    assert stored["status"] == "failed"
    assert stored["last_error"] == "ValueError: environment 'prod' missing"
    assert "Traceback" not in str(stored["last_error"])
    failure = next(r for r in caplog.records if r.exc_info)
    assert failure.exc_info is not None and failure.exc_info[0] is ValueError
    outcomes = [(r.delivery_id, r.outcome) for r in caplog.records if hasattr(r, "outcome")]
    assert outcomes == [(delivery, "failed")]
    assert "payload-secret" not in caplog.text


def test_heartbeats_keep_a_long_job_from_being_claimed_twice(queue: JobQueue) -> None:
    enqueue(queue)
    stolen: list[Job | None] = []

    def slow(job: Job) -> None:
        for _ in range(10):  # 2 s, well past the lease
            time.sleep(0.2)
            stolen.append(queue.claim("thief", lease_seconds=60))

    assert Worker(queue, slow, lease_seconds=1.2).run_once() is True
    assert stolen == [None] * 10
    assert queue.counts()["done"] == 1


def test_run_executes_jobs_of_different_repos_concurrently_and_stops_gracefully(
    queue: JobQueue,
) -> None:
    deliveries = [enqueue(queue, repo) for repo in ("acme/a", "acme/b", "acme/c")]
    together = threading.Barrier(3, timeout=10)
    release = threading.Event()
    finished: list[str] = []

    def handler(job: Job) -> None:
        together.wait()  # breaks (and fails the job) unless all three run at once
        release.wait(10)
        finished.append(job.delivery_id)

    stop = threading.Event()
    worker = Worker(queue, handler, concurrency=3, poll_interval=0.02)
    runner = threading.Thread(target=worker.run, args=(stop,))
    runner.start()
    deadline = time.monotonic() + 10
    while queue.counts()["running"] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    runner.join(0.3)
    assert runner.is_alive()  # still waiting for its running jobs
    release.set()
    runner.join(10)
    assert not runner.is_alive()
    assert sorted(finished) == sorted(deliveries)
    assert [row(queue, d)["status"] for d in deliveries] == ["done"] * 3


def test_run_keeps_going_after_a_job_fails(queue: JobQueue) -> None:
    bad, good = enqueue(queue, "acme/a", ok=False), enqueue(queue, "acme/a", ok=True)
    stop = threading.Event()

    def handler(job: Job) -> None:
        if not job.payload["ok"]:
            raise RuntimeError("broken")
        stop.set()

    Worker(queue, handler, concurrency=1, poll_interval=0.02).run(stop)
    assert (row(queue, bad)["status"], row(queue, good)["status"]) == ("failed", "done")


def test_one_line_error_flattens_whitespace() -> None:
    assert one_line_error(ValueError("a\n  b\tc")) == "ValueError: a b c"
    assert one_line_error(RuntimeError()) == "RuntimeError"
