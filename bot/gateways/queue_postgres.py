"""PostgreSQL backend of the job queue: DB clock, per-repo advisory locks, SKIP LOCKED."""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
import weakref
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC
from typing import Any

import psycopg
from psycopg import Connection, sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from bot.gateways.group_commit import GroupCommitter
from bot.gateways.queue import (
    DEFAULT_MAX_ATTEMPTS,
    STATUSES,
    Job,
    JobQueue,
    NewJob,
    check_new_job,
    serialise_payload,
    truncate_error,
)
from bot.gateways.records import RECORD_TABLES, RECORDS_DDL

# How many lane candidates one claim tries before giving up (others hold their lanes).
CANDIDATES = 16
PING_TIMEOUT_S = 5.0
# A pooled connection idle longer than this is pinged before use (one round trip); one in
# steady use is not: a failure on it is retried once on a fresh connection instead.
IDLE_CHECK_S = 2.0
log = logging.getLogger(__name__)
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_DDL = """
CREATE TABLE IF NOT EXISTS {jobs} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    repo TEXT,
    payload JSONB NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_token TEXT,
    lease_owner TEXT,
    lease_expires_at TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS jobs_open ON {jobs} (id) WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_open_by_repo ON {jobs} (repo, id)
    WHERE status IN ('queued', 'running');
"""

# A job is runnable when queued and due, or running under an expired lease; its lane is free
# when no older job of its repo is due or running and no other job of it holds a live lease
# (an older job waiting out a retry delay lets newer ones pass).
# (The second test matters: identity values are handed out before commit, so a job with a
# smaller id can become visible after a newer one of the same repo was already claimed.)
_RUNNABLE = """
j.status IN ('queued', 'running')
AND ((j.status = 'queued' AND j.run_at <= now())
     OR (j.status = 'running' AND j.lease_expires_at < now()))
AND (j.repo IS NULL OR (
      NOT EXISTS (SELECT 1 FROM {jobs} o WHERE o.repo = j.repo AND o.id < j.id
                  AND (o.status = 'running' OR (o.status = 'queued' AND o.run_at <= now())))
  AND NOT EXISTS (SELECT 1 FROM {jobs} r WHERE r.repo = j.repo AND r.id <> j.id
                  AND r.status = 'running' AND r.lease_expires_at >= now())))
"""

_SWEEP_EXHAUSTED = """
UPDATE {jobs} SET status = 'failed', last_error = %(error)s, lease_token = NULL,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
WHERE status = 'running' AND lease_expires_at < now() AND attempts >= %(max_attempts)s
"""

# Only lane heads can be claimed: computing them once (one pass over the partial index) keeps
# a claim cheap when a backlog of thousands of jobs waits behind a few busy lanes.
_CANDIDATES = (
    "SELECT j.id, j.repo FROM {jobs} j WHERE (j.repo IS NULL OR j.id IN ("
    "SELECT min(h.id) FROM {jobs} h WHERE h.repo IS NOT NULL"
    " AND (h.status = 'running' OR (h.status = 'queued' AND h.run_at <= now()))"
    " GROUP BY h.repo)) AND " + _RUNNABLE + " ORDER BY j.id LIMIT %s"
)

# Runs in its own statement AFTER the lane's advisory lock is held, so its snapshot sees
# every claim committed by whoever held the lock before: the lane test cannot be stale.
_TAKE = (
    "UPDATE {jobs} SET status = 'running', attempts = attempts + 1, lease_token = %(token)s,"
    " lease_owner = %(owner)s, lease_expires_at = now() + %(lease)s * interval '1 second',"
    " updated_at = now()"
    " WHERE id = (SELECT j.id FROM {jobs} j WHERE j.id = %(id)s AND "
    + _RUNNABLE
    + " FOR UPDATE OF j SKIP LOCKED)"
    " RETURNING id, delivery_id, source, kind, repo, payload, attempts, lease_token"
)

_INSERT_ONE = (
    "INSERT INTO {jobs} (delivery_id, source, kind, repo, payload)"
    " VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT (delivery_id) DO NOTHING"
    " RETURNING delivery_id"
)

# one statement for a whole batch; ids follow the arrays' order (the order of arrival)
_INSERT_MANY = (
    "INSERT INTO {jobs} (delivery_id, source, kind, repo, payload)"
    " SELECT d, s, k, r, p::jsonb FROM unnest("
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
    " WITH ORDINALITY AS t(d, s, k, r, p, n)"
    " ORDER BY n ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id"
)

# delivery_id, source, kind, repo, serialised payload
_Row = tuple[str, str, str, str | None, str]

_OWNED = " WHERE id = %(id)s AND lease_token = %(token)s AND status = 'running'"


class PostgresJobQueue(JobQueue):
    """Job queue shared by any number of processes and hosts through one PostgreSQL."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        pool_size: int = 10,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.schema = schema
        self.max_attempts = max_attempts
        self._jobs = sql.Identifier(schema, "jobs") if schema else sql.Identifier("jobs")
        self._lane_salt = f"gitops-bot:{schema or ''}:"
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={"autocommit": True},
            check=self._check_if_idle,
            open=True,
            name="job-queue",
        )
        self._last_checkout: weakref.WeakKeyDictionary[Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self._insert_one = self._q(_INSERT_ONE)
        self._insert_many = self._q(_INSERT_MANY)
        # concurrent enqueues of this process share one transaction (one WAL flush)
        self._committer: GroupCommitter[_Row, bool] = GroupCommitter(self._insert_batch)

    def _check_if_idle(self, conn: Connection[Any]) -> None:
        """The pool's check on checkout: ping only a connection idle for a while."""
        now = time.monotonic()
        last = self._last_checkout.get(conn)
        self._last_checkout[conn] = now
        if conn.broken or conn.closed:
            raise psycopg.OperationalError("connection is broken")
        if last is None or now - last > IDLE_CHECK_S:
            ConnectionPool.check_connection(conn)

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(jobs=self._jobs)

    def _lane_key(self, repo: str) -> int:
        """A signed 64-bit advisory lock key for a repo lane (collisions only serialise)."""
        digest = hashlib.blake2b((self._lane_salt + repo).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    def migrate(self) -> None:
        with self._pool.connection() as conn, conn.transaction():
            # Serialise concurrent migrations: CREATE ... IF NOT EXISTS is not race-free.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lane_key("\0migrate"),))
            if self.schema:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
            conn.execute(self._q(_DDL))
            for statement in RECORDS_DDL:
                conn.execute(self._records_sql(statement))

    def _records_sql(self, statement: str) -> sql.Composed:
        tables = {
            t: sql.Identifier(self.schema, t) if self.schema else sql.Identifier(t)
            for t in RECORD_TABLES
        }
        # psycopg's sql.SQL would read `%(name)s` as literal text: compose the names only
        return sql.SQL(statement).format(**tables)

    def run_sql(self, statement: str, params: Mapping[str, object]) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            cur.execute(self._records_sql(statement), dict(params))
            return cur.fetchall() if cur.description is not None else []

    def enqueue(self, job: NewJob) -> bool:
        check_new_job(job)
        row = (job.delivery_id, job.source, job.kind, job.repo, serialise_payload(job.payload))
        return self._committer.submit(row)

    def _insert_batch(self, rows: Sequence[_Row]) -> list[bool | BaseException]:
        """Insert rows in one transaction: True per row stored, False per known delivery id.

        A connection that broke since its last use is replaced and the batch retried once
        (the insert is idempotent on delivery id). If the batch is refused for its data,
        each row is tried alone so that one bad row fails only its own delivery."""
        try:
            try:
                return list(self._insert_rows(rows))
            except psycopg.OperationalError as exc:
                if not _connection_lost(exc):
                    raise
                log.warning("job queue connection lost (%s): retrying once", type(exc).__name__)
                return list(self._insert_rows(rows))
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError):
            if len(rows) == 1:
                raise
        outcomes: list[bool | BaseException] = []
        for row in rows:
            try:
                outcomes.extend(self._insert_rows([row]))
            except psycopg.Error as exc:
                outcomes.append(exc)
        return outcomes

    def _insert_rows(self, rows: Sequence[_Row]) -> list[bool]:
        # one row: scalar parameters (adapting arrays costs more than the row); more: arrays
        params: Sequence[object]
        if len(rows) == 1:
            query, params = self._insert_one, rows[0]
        else:
            query, params = self._insert_many, tuple(list(c) for c in zip(*rows, strict=True))
        with self._pool.connection() as conn:  # autocommit: one statement, one transaction
            stored = {r[0] for r in conn.execute(query, params).fetchall()}
        outcomes = []
        for row in rows:  # a delivery id twice in one batch: the first one was stored
            outcomes.append(row[0] in stored)
            stored.discard(row[0])
        return outcomes

    def claim(self, worker_id: str, lease_seconds: float = 60) -> Job | None:
        with self._pool.connection() as conn:
            conn.execute(
                self._q(_SWEEP_EXHAUSTED),
                {
                    "max_attempts": self.max_attempts,
                    "error": f"lease expired on the last of {self.max_attempts} attempts",
                },
            )
            candidates = conn.execute(self._q(_CANDIDATES), (CANDIDATES,)).fetchall()
            take = self._q(_TAKE)
            for job_id, repo in candidates:
                with conn.transaction():
                    if repo is not None:
                        locked = conn.execute(
                            "SELECT pg_try_advisory_xact_lock(%s)", (self._lane_key(repo),)
                        ).fetchone()
                        if not locked or not locked[0]:
                            continue  # another worker is claiming in this lane right now
                    row = conn.execute(
                        take,
                        {
                            "id": job_id,
                            "token": uuid.uuid4().hex,
                            "owner": worker_id,
                            "lease": float(lease_seconds),
                        },
                    ).fetchone()
                if row is not None:
                    return Job(
                        id=row[0],
                        delivery_id=row[1],
                        source=row[2],
                        kind=row[3],
                        repo=row[4],
                        payload=row[5],
                        attempts=row[6],
                        lease_token=row[7],
                    )
        return None

    def _update_owned(self, job: Job, assignments: str, params: dict[str, Any]) -> bool:
        with self._pool.connection() as conn:
            cur = conn.execute(
                self._q("UPDATE {jobs} SET " + assignments + ", updated_at = now()" + _OWNED),
                {"id": job.id, "token": job.lease_token, **params},
            )
            return cur.rowcount == 1

    def heartbeat(self, job: Job, lease_seconds: float = 60) -> bool:
        return self._update_owned(
            job,
            "lease_expires_at = now() + %(lease)s * interval '1 second'",
            {"lease": float(lease_seconds)},
        )

    def complete(self, job: Job) -> bool:
        return self._update_owned(
            job, "status = 'done', lease_token = NULL, lease_expires_at = NULL", {}
        )

    def retry(self, job: Job, error: str, delay_seconds: float) -> bool:
        if job.attempts >= self.max_attempts:
            return self.fail(job, f"gave up after {job.attempts} attempts: {error}")
        return self._update_owned(
            job,
            "status = 'queued', run_at = now() + %(delay)s * interval '1 second',"
            " last_error = %(error)s, lease_token = NULL, lease_owner = NULL,"
            " lease_expires_at = NULL",
            {"delay": max(0.0, float(delay_seconds)), "error": truncate_error(error)},
        )

    def fail(self, job: Job, error: str) -> bool:
        return self._update_owned(
            job,
            "status = 'failed', last_error = %(error)s, lease_token = NULL,"
            " lease_expires_at = NULL",
            {"error": truncate_error(error)},
        )

    def counts(self, repos: Collection[str] | None = None) -> dict[str, int]:
        names = None if repos is None else sorted({r.lower() for r in repos})
        with self._pool.connection() as conn:
            rows = conn.execute(
                self._q(
                    "SELECT status, COUNT(*) FROM {jobs}"
                    " WHERE %(all)s OR lower(repo) = ANY(%(names)s::text[]) GROUP BY status"
                ),
                {"all": names is None, "names": names or []},
            ).fetchall()
        result = dict.fromkeys(STATUSES, 0)
        result.update({status: int(n) for status, n in rows})
        return result

    def recent(self, limit: int = 50, repos: Collection[str] | None = None) -> list[dict[str, Any]]:
        names = None if repos is None else sorted({r.lower() for r in repos})
        with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            rows = cur.execute(
                self._q(
                    "SELECT id, delivery_id, source, kind, repo, status, attempts, last_error,"
                    " created_at, updated_at FROM {jobs}"
                    " WHERE %(all)s OR lower(repo) = ANY(%(names)s::text[])"
                    " ORDER BY id DESC LIMIT %(limit)s"
                ),
                {"all": names is None, "names": names or [], "limit": limit},
            ).fetchall()
        for row in rows:
            for key in ("created_at", "updated_at"):
                row[key] = row[key].astimezone(UTC).isoformat()
        return rows

    def ping(self) -> None:
        with self._pool.connection(timeout=PING_TIMEOUT_S) as conn:
            conn.execute(self._q("SELECT 1 FROM {jobs} LIMIT 1")).fetchall()

    def close(self) -> None:
        self._pool.close()


def _connection_lost(exc: psycopg.OperationalError) -> bool:
    """Whether an error means a pooled connection died (not, say, a lock timeout, or no
    connection to be had at all: retrying that would only double the wait)."""
    if isinstance(exc, PoolTimeout):
        return False
    return exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P"))
