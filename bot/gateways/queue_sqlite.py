"""SQLite (WAL) backend of the job queue: claims serialised by BEGIN IMMEDIATE."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

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

BUSY_TIMEOUT_S = 30.0

# Durability of a commit. SQLite's synchronous=FULL syncs the WAL inside COMMIT, holding the
# write lock, so commits of all processes queue behind each other's flush. In WAL mode,
# NORMAL does every sync that FULL does except that one ("an additional sync of the WAL file
# after each transaction commit", sqlite.org/pragma.html#pragma_synchronous); the queue does
# that sync itself right after the lock is released and before any write returns, so a
# write is as durable as under FULL when it returns (a 202 survives a power cut), while the
# next writer appends meanwhile and concurrent flushes of one file share the disk's work.
_SYNCHRONOUS = "NORMAL"

# Timestamps are REAL Unix seconds from the Python clock of this host (one file, one host).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    repo TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at REAL NOT NULL,
    lease_token TEXT,
    lease_owner TEXT,
    lease_expires_at REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (id) WHERE status IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_open_by_repo ON jobs (repo, id)
    WHERE status IN ('queued', 'running');
"""

_SWEEP_EXHAUSTED = """
UPDATE jobs SET status = 'failed', last_error = :error, lease_token = NULL,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = :now
WHERE status = 'running' AND lease_expires_at < :now AND attempts >= :max_attempts
"""

# Only lane heads can be claimed: computing them once (one pass over the partial index) keeps
# a claim cheap when a backlog of thousands of jobs waits behind a few busy lanes.
_PICK = """
SELECT j.id FROM jobs j
WHERE (j.repo IS NULL OR j.id IN (
        SELECT min(h.id) FROM jobs h WHERE h.repo IS NOT NULL
        AND (h.status = 'running' OR (h.status = 'queued' AND h.run_at <= :now))
        GROUP BY h.repo))
  AND j.status IN ('queued', 'running')
  AND ((j.status = 'queued' AND j.run_at <= :now)
       OR (j.status = 'running' AND j.lease_expires_at < :now))
  AND (j.repo IS NULL OR (
        NOT EXISTS (SELECT 1 FROM jobs o WHERE o.repo = j.repo AND o.id < j.id
                    AND (o.status = 'running' OR (o.status = 'queued' AND o.run_at <= :now)))
    AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.repo = j.repo AND r.id <> j.id
                    AND r.status = 'running' AND r.lease_expires_at >= :now)))
ORDER BY j.id
LIMIT 1
"""

_TAKE = """
UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_token = :token,
    lease_owner = :owner, lease_expires_at = :expires, updated_at = :now
WHERE id = :id
RETURNING id, delivery_id, source, kind, repo, payload, attempts, lease_token
"""

_INSERT = (
    "INSERT INTO jobs (delivery_id, source, kind, repo, payload, run_at, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING"
)

# delivery_id, source, kind, repo, serialised payload
_Row = tuple[str, str, str, str | None, str]

_OWNED = "id = :id AND lease_token = :token AND status = 'running'"
_PYFORMAT = re.compile(r"%\((\w+)\)s")


def _sqlite_statement(statement: str) -> str:
    """A records statement in SQLite's dialect: plain table names, `:name` parameters."""
    return _PYFORMAT.sub(r":\1", statement.format(**{t: t for t in RECORD_TABLES}))


class SqliteJobQueue(JobQueue):
    """Job queue in one SQLite file; safe across threads and processes on one host."""

    def __init__(self, path: str, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.path = path
        self.max_attempts = max_attempts
        self._local = threading.local()
        # concurrent enqueues of this process share one transaction (one WAL fsync)
        self._committer: GroupCommitter[_Row, bool] = GroupCommitter(
            self._insert_batch, turn=self._writer_turn, flush=self._sync_wal
        )
        self._synced_wal_inode: int | None = None
        self._turn_lock = threading.Lock()
        self._turn_fd: int | None = None
        self._turn_pid: int | None = None

    @staticmethod
    def path_from_url(url: str) -> str:
        """`sqlite:///rel.db` -> ./rel.db, `sqlite:////abs.db` -> /abs.db (absolute path)."""
        prefix = "sqlite:///"
        if not url.startswith(prefix):
            raise ValueError("SQLite URL must look like sqlite:///relative.db or sqlite:////abs.db")
        raw = unquote(url[len(prefix) :].split("?", 1)[0])
        if not raw or raw == ":memory:" or raw.startswith("file:"):
            raise ValueError(
                "in-memory SQLite is not supported by the job queue (each connection would "
                "see its own database): use a file path"
            )
        return os.path.abspath(raw)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread and process, kept open: closing the last connection to a
        # WAL database checkpoints it, which made every enqueue ~10x slower. Never shared
        # across threads, and a forked child (gunicorn) opens its own.
        local = self._local
        if getattr(local, "pid", None) != os.getpid() or local.conn is None:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=True
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS}")
            local.conn, local.pid = conn, os.getpid()
        yield local.conn

    @contextlib.contextmanager
    def _write(self, *, turn_held: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database lock from its first statement, durable
        when the block ends (with `turn_held`, the caller holds the turn and syncs)."""
        turn = contextlib.nullcontext() if turn_held else self._writer_turn()
        with self._connect() as conn:
            changes = conn.total_changes
            with turn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            if not turn_held and conn.total_changes != changes:  # nothing written: no sync
                self._sync_wal()

    def _sync_wal(self) -> None:
        """Flush the WAL to disk: every commit appended to it so far becomes durable (see
        `_SYNCHRONOUS`). The file is opened by name each time, so a WAL that SQLite deleted
        and created again is the one synced; its directory entry is synced once per file."""
        wal = self.path + "-wal"
        try:
            fd = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # checkpointed into the database file (synced) and removed
            return
        try:
            os.fdatasync(fd)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if inode != self._synced_wal_inode:
            directory = os.open(os.path.dirname(wal) or ".", os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            self._synced_wal_inode = inode

    @contextlib.contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """Writers of this database take turns on a lock file first: the kernel wakes the next
        one the moment the lock is free, where SQLite's busy handler would poll with sleeps
        of up to 100 ms (an idle writer of another process paid them). SQLite's own locking
        still guards correctness; this only orders the waiting."""
        with self._turn_lock:
            if self._turn_pid != os.getpid():  # first write in this (forked) process
                if self._turn_fd is not None:
                    os.close(self._turn_fd)
                self._turn_fd = os.open(self.path + "-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
                self._turn_pid = os.getpid()
            assert self._turn_fd is not None
            fcntl.flock(self._turn_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._turn_fd, fcntl.LOCK_UN)

    def migrate(self) -> None:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            for statement in RECORDS_DDL:
                conn.execute(_sqlite_statement(statement))
        self._sync_wal()

    def run_sql(self, statement: str, params: Mapping[str, object]) -> list[dict[str, Any]]:
        with self._write() as conn:
            rows = conn.execute(_sqlite_statement(statement), dict(params)).fetchall()
        return [dict(row) for row in rows]

    def enqueue(self, job: NewJob) -> bool:
        check_new_job(job)
        row = (job.delivery_id, job.source, job.kind, job.repo, serialise_payload(job.payload))
        return self._committer.submit(row)

    def _insert_batch(self, rows: Sequence[_Row]) -> list[bool]:
        """Insert rows in one transaction: True per row stored, False per known delivery id.
        The group committer holds the writer's turn around it."""
        now = time.time()
        if len(rows) == 1:  # the common case: most batches hold one delivery
            # one statement is its own transaction: one call into SQLite, so one release of
            # the GIL to take back under contention, not three (BEGIN, INSERT, COMMIT). Safe
            # without BEGIN IMMEDIATE: the writers' turn is held, and a statement that
            # starts a transaction takes the write lock on a fresh snapshot
            with self._connect() as conn:
                return [conn.execute(_INSERT, (*rows[0], now, now, now)).rowcount == 1]
        with self._write(turn_held=True) as conn:
            return [conn.execute(_INSERT, (*row, now, now, now)).rowcount == 1 for row in rows]

    def claim(self, worker_id: str, lease_seconds: float = 60) -> Job | None:
        now = time.time()
        with self._write() as conn:
            conn.execute(
                _SWEEP_EXHAUSTED,
                {
                    "now": now,
                    "max_attempts": self.max_attempts,
                    "error": f"lease expired on the last of {self.max_attempts} attempts",
                },
            )
            row = conn.execute(_PICK, {"now": now}).fetchone()
            if row is None:
                return None
            taken = conn.execute(
                _TAKE,
                {
                    "id": row["id"],
                    "token": uuid.uuid4().hex,
                    "owner": worker_id,
                    "expires": now + lease_seconds,
                    "now": now,
                },
            ).fetchone()
        return Job(
            id=taken["id"],
            delivery_id=taken["delivery_id"],
            source=taken["source"],
            kind=taken["kind"],
            repo=taken["repo"],
            payload=json.loads(taken["payload"]),
            attempts=taken["attempts"],
            lease_token=taken["lease_token"],
        )

    def _update_owned(self, job: Job, assignments: str, params: dict[str, Any]) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE jobs SET {assignments}, updated_at = :now WHERE {_OWNED}",
                {"id": job.id, "token": job.lease_token, "now": time.time(), **params},
            )
            return cur.rowcount == 1

    def heartbeat(self, job: Job, lease_seconds: float = 60) -> bool:
        return self._update_owned(
            job, "lease_expires_at = :expires", {"expires": time.time() + lease_seconds}
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
            "status = 'queued', run_at = :run_at, last_error = :error, lease_token = NULL, "
            "lease_owner = NULL, lease_expires_at = NULL",
            {"run_at": time.time() + max(0.0, delay_seconds), "error": truncate_error(error)},
        )

    def fail(self, job: Job, error: str) -> bool:
        return self._update_owned(
            job,
            "status = 'failed', last_error = :error, lease_token = NULL, lease_expires_at = NULL",
            {"error": truncate_error(error)},
        )

    def counts(self, repos: Collection[str] | None = None) -> dict[str, int]:
        where, params = _repo_filter(repos)
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT status, COUNT(*) FROM jobs{where} GROUP BY status", params
            ).fetchall()
        result = dict.fromkeys(STATUSES, 0)
        result.update({status: n for status, n in rows})
        return result

    def recent(self, limit: int = 50, repos: Collection[str] | None = None) -> list[dict[str, Any]]:
        where, params = _repo_filter(repos)
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, delivery_id, source, kind, repo, status, attempts, last_error, "
                f"created_at, updated_at FROM jobs{where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        result = []
        for row in rows:
            item = dict(row)
            for key in ("created_at", "updated_at"):
                item[key] = datetime.fromtimestamp(item[key], UTC).isoformat()
            result.append(item)
        return result

    def ping(self) -> None:
        if not os.path.exists(self.path):
            raise RuntimeError(f"job database {self.path} does not exist (run migrate)")
        with self._connect() as conn:
            conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None


def _repo_filter(repos: Collection[str] | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause keeping only jobs of `repos` (None: every job; empty: none)."""
    if repos is None:
        return "", ()
    names = tuple(sorted({r.lower() for r in repos}))
    if not names:
        return " WHERE 0", ()
    return f" WHERE lower(repo) IN ({', '.join('?' * len(names))})", names
