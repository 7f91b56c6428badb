"""Worker loop: claims jobs, runs the handler under a heartbeated lease, records outcomes."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bot.core.errors import TransientError
from bot.gateways.queue import Job, JobQueue, backoff_delay

log = logging.getLogger(__name__)

# After a database error while claiming, wait this long (at least) before the next claim.
CLAIM_ERROR_PAUSE_S = 5.0


def one_line_error(exc: BaseException) -> str:
    """`Type: message` on one line: what the job table stores (never a traceback)."""
    message = " ".join(str(exc).split())
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


class Worker:
    """Runs up to `concurrency` jobs at once, each in its own thread."""

    def __init__(
        self,
        queue: JobQueue,
        handler: Callable[[Job], None],
        *,
        worker_id: str | None = None,
        concurrency: int = 2,
        lease_seconds: float = 60,
        poll_interval: float = 0.5,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease_seconds <= 0 or poll_interval <= 0:
            raise ValueError("lease_seconds and poll_interval must be positive")
        self.queue = queue
        self.handler = handler
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        )
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval

    def run_once(self) -> bool:
        """Claim and run at most one job in this thread; return whether one ran."""
        job = self.queue.claim(self.worker_id, self.lease_seconds)
        if job is None:
            return False
        self._execute(job)
        return True

    def run(self, stop: threading.Event) -> None:
        """Claim and run jobs until `stop` is set, then let the running jobs finish."""
        slots = threading.BoundedSemaphore(self.concurrency)
        # Set when a job finishes: its lane may now hold the next job, so claim without
        # waiting out the poll interval.
        finished = threading.Event()

        def on_done(_: object) -> None:
            slots.release()
            finished.set()

        log.info("worker %s started (concurrency %d)", self.worker_id, self.concurrency)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") as pool:
            while not stop.is_set():
                if not slots.acquire(timeout=self.poll_interval):
                    continue
                finished.clear()
                try:
                    job = self.queue.claim(self.worker_id, self.lease_seconds)
                except Exception:
                    slots.release()
                    log.exception("claiming a job failed; pausing")
                    stop.wait(max(self.poll_interval, CLAIM_ERROR_PAUSE_S))
                    continue
                if job is None:
                    slots.release()
                    finished.wait(self.poll_interval)
                    continue
                pool.submit(self._execute, job).add_done_callback(on_done)
            log.info("worker %s stopping: waiting for running jobs", self.worker_id)
        log.info("worker %s stopped", self.worker_id)

    def _execute(self, job: Job) -> None:
        context = {
            "job_id": job.id,
            "delivery_id": job.delivery_id,
            "kind": job.kind,
            "repo": job.repo,
            "attempt": job.attempts,
        }
        log.info(
            "job %d started: delivery=%s kind=%s repo=%s attempt=%d",
            job.id,
            job.delivery_id,
            job.kind,
            job.repo,
            job.attempts,
            extra=context,
        )
        started = time.monotonic()
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(job, done), name=f"heartbeat-{job.id}", daemon=True
        )
        beat.start()
        outcome: str
        error: str | None = None
        delay: float | None = None
        try:
            self.handler(job)
            outcome = "done"
        except TransientError as exc:
            error = one_line_error(exc)
            delay = backoff_delay(job.attempts, exc.retry_after)
            outcome = "retry" if job.attempts < self.queue.max_attempts else "failed"
            log.warning("job %d transient failure: %s", job.id, error, extra=context)
        except Exception as exc:
            error = one_line_error(exc)
            outcome = "failed"
            log.exception("job %d failed", job.id, extra=context)
        finally:
            # Stop heartbeating before recording: a late heartbeat would report a lost lease.
            done.set()
            beat.join()
        try:
            if outcome == "done":
                recorded = self.queue.complete(job)
            elif delay is not None:
                recorded = self.queue.retry(job, error or "", delay)
            else:
                recorded = self.queue.fail(job, error or "")
        except Exception:
            # The lease will expire and the job run again: every step is idempotent.
            log.exception("job %d: recording outcome %s failed", job.id, outcome, extra=context)
            outcome, recorded = "unrecorded", True
        if not recorded:
            outcome = "lease_lost"
        duration = time.monotonic() - started
        log.info(
            "job %d finished: outcome=%s duration=%.3fs%s",
            job.id,
            outcome,
            duration,
            f" retry_in={delay:.1f}s" if outcome == "retry" else "",
            extra={**context, "outcome": outcome, "duration_s": round(duration, 3)},
        )

    def _heartbeat(self, job: Job, done: threading.Event) -> None:
        interval = self.lease_seconds / 3
        while not done.wait(interval):
            try:
                alive = self.queue.heartbeat(job, self.lease_seconds)
            except Exception:
                log.exception("job %d: heartbeat failed", job.id)
                continue
            if not alive:
                log.warning("job %d: lease lost while running", job.id)
                return
