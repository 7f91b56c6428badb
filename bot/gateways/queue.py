"""Durable job queue: the public API shared by the SQLite and PostgreSQL backends.

Semantics (both backends):
- `enqueue` is idempotent on `delivery_id` (unique constraint) and durable when it returns.
- `claim` takes the oldest runnable job — queued with `run_at <= now`, or running with an
  expired lease (its worker died) — whose repo lane is free. Lanes run one job at a time, in
  order: a job of repo R is claimable only when no OLDER job of R is due or running and no
  other job of R is running under a live lease. A job waiting out a retry delay does not
  hold up the newer jobs of its repo (a user's `/help` must not wait minutes behind a GitHub
  outage); order does not need it: promotions are monotonic by version (`bot.core.ordering`)
  and every other job re-reads the state it acts on. Once due, it goes first again.
  Jobs without a repo (`repo=None`) have no lane and run in parallel with anything.
- Every claim increments `attempts` and issues a fresh `lease_token`; heartbeat, complete,
  retry and fail act only while the token matches, so a worker whose lease expired and whose
  job was claimed again cannot overwrite the new run's outcome.
- After `max_attempts` claims a retry becomes a failure; a job whose lease expired with its
  attempts exhausted (its worker keeps dying) is failed instead of being claimed again.
"""

from __future__ import annotations

import abc
import json
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

STATUSES = ("queued", "running", "done", "failed")
MAX_ERROR_CHARS = 2000
DEFAULT_MAX_ATTEMPTS = 8

BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 300.0
RETRY_AFTER_CAP_S = 3600.0


@dataclass(frozen=True)
class NewJob:
    """A delivery accepted for processing."""

    delivery_id: str  # globally unique, e.g. "github:<X-GitHub-Delivery>"
    source: str  # "github" | "mlflow" | "databricks" | "internal"
    kind: str  # e.g. "issue_comment", "model_version.created", "reconcile"
    repo: str | None  # "owner/name": one job of a repo at a time, in order; None = no lane
    payload: Mapping[str, Any]  # JSON-serialisable


@dataclass(frozen=True)
class Job:
    """A claimed job; `lease_token` proves the claim to the queue."""

    id: int
    delivery_id: str
    source: str
    kind: str
    repo: str | None
    payload: dict[str, Any]
    attempts: int
    lease_token: str


def backoff_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds to wait before the next attempt, after `attempts` attempts so far.

    Exponential (2 s, 4 s, 8 s ... capped at 5 min) with "equal jitter" so that jobs failing
    together do not retry together. A server-sent `retry_after` is a floor (capped at 1 h).
    """
    exp = BACKOFF_BASE_S * 2.0 ** max(0, min(attempts, 30) - 1)
    delay = min(BACKOFF_CAP_S, exp)
    jittered = delay / 2 + random.uniform(0, delay / 2)
    if retry_after is not None and retry_after > 0:
        return max(min(retry_after, RETRY_AFTER_CAP_S), jittered)
    return jittered


def truncate_error(error: str) -> str:
    """Clip an error message to what the table stores."""
    if len(error) <= MAX_ERROR_CHARS:
        return error
    return error[: MAX_ERROR_CHARS - 1] + "…"


def check_new_job(job: NewJob) -> None:
    """Reject a job the queue could not process later (clear message, no payload echo)."""
    for name in ("delivery_id", "source", "kind"):
        value = getattr(job, name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"job {name} must be a non-empty string")
    if job.repo is not None and (not isinstance(job.repo, str) or "/" not in job.repo):
        raise ValueError(f"job repo must be 'owner/name' or None, got {job.repo!r}")
    if not isinstance(job.payload, Mapping):
        raise ValueError("job payload must be a mapping")


def serialise_payload(payload: Mapping[str, Any]) -> str:
    """A job payload as compact JSON text (ValueError when it is not JSON-serialisable)."""
    try:
        return json.dumps(dict(payload), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"job payload is not JSON-serialisable: {exc}") from None


class JobQueue(abc.ABC):
    """A durable queue of jobs; see the module docstring for the semantics."""

    max_attempts: int

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        schema: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        pool_size: int = 10,
    ) -> JobQueue:
        """Open the queue at `url`.

        - `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` (SQLAlchemy's
          convention: the path is what follows `sqlite:///`). `:memory:` is refused: every
          connection would see its own empty database.
        - `postgresql://...` (or `postgres://...`): any libpq URL. `schema` puts the table in
          that schema (created by `migrate`); without it, unqualified names follow the
          connection's `search_path` (e.g. `?options=-csearch_path%3Dbot`).
        """
        if url.startswith("sqlite:"):
            if schema is not None:
                raise ValueError("the schema option applies to PostgreSQL only")
            from bot.gateways.queue_sqlite import SqliteJobQueue

            return SqliteJobQueue(SqliteJobQueue.path_from_url(url), max_attempts=max_attempts)
        if url.startswith(("postgresql:", "postgres:")):
            from bot.gateways.queue_postgres import PostgresJobQueue

            return PostgresJobQueue(
                url, schema=schema, max_attempts=max_attempts, pool_size=pool_size
            )
        scheme = url.split(":", 1)[0] if ":" in url else "(none)"
        raise ValueError(
            f"unsupported database URL scheme {scheme!r}: use sqlite:///path or postgresql://..."
        )

    @abc.abstractmethod
    def migrate(self) -> None:
        """Create the schema if missing (idempotent, safe to run from several replicas)."""

    @abc.abstractmethod
    def enqueue(self, job: NewJob) -> bool:
        """Store the job; False if its delivery id was already accepted."""

    @abc.abstractmethod
    def claim(self, worker_id: str, lease_seconds: float = 60) -> Job | None:
        """Lease the oldest runnable job whose repo lane is free, or return None."""

    @abc.abstractmethod
    def heartbeat(self, job: Job, lease_seconds: float = 60) -> bool:
        """Extend the lease; False if it was lost (the job was claimed again or finished)."""

    @abc.abstractmethod
    def complete(self, job: Job) -> bool:
        """Mark the job done; False if the lease was lost."""

    @abc.abstractmethod
    def retry(self, job: Job, error: str, delay_seconds: float) -> bool:
        """Requeue after a transient failure (fails it once attempts are exhausted).

        Returns False if the lease was lost.
        """

    @abc.abstractmethod
    def fail(self, job: Job, error: str) -> bool:
        """Mark the job permanently failed; False if the lease was lost."""

    @abc.abstractmethod
    def counts(self, repos: Collection[str] | None = None) -> dict[str, int]:
        """Number of jobs by status (every status present, zero included); with `repos`,
        only jobs of those repositories (compared case-insensitively)."""

    @abc.abstractmethod
    def recent(self, limit: int = 50, repos: Collection[str] | None = None) -> list[dict[str, Any]]:
        """Newest jobs first, without payloads, timestamps as ISO-8601 UTC strings; with
        `repos`, only jobs of those repositories (compared case-insensitively)."""

    @abc.abstractmethod
    def run_sql(self, statement: str, params: Mapping[str, object]) -> list[dict[str, Any]]:
        """Run one statement of `bot.gateways.records` (psycopg `%(name)s` parameters,
        `{table}` names) in its own transaction; rows as dicts."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise if the database is unreachable."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
