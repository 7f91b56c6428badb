"""Job queue on real SQLite and PostgreSQL: dedupe, lanes, leases, retries, crashes, races."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import PoolTimeout
from queue_helpers import (
    PG_URL,
    effects,
    open_queue,
    pg_schema,
    read_runs,
    spawn_worker,
)

from bot.gateways import queue_postgres
from bot.gateways.queue import (
    BACKOFF_CAP_S,
    MAX_ERROR_CHARS,
    JobQueue,
    NewJob,
    backoff_delay,
)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def where(backend: str, tmp_path: Path) -> Iterator[Path | str]:
    """Where the backend keeps its tables: a directory or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield tmp_path
    else:
        with pg_schema() as schema:
            yield schema


@pytest.fixture
def queue(backend: str, where: Path | str) -> Iterator[JobQueue]:
    q = open_queue(backend, where)
    yield q
    q.close()


_ids = itertools.count()


def new(repo: str | None = "acme/gitops", kind: str = "issue_comment", **payload: object) -> NewJob:
    return NewJob(f"github:{next(_ids)}", "github", kind, repo, payload)


def status_of(queue: JobQueue, job_id: int) -> dict[str, object]:
    return next(row for row in queue.recent(1000) if row["id"] == job_id)


# --- intake -----------------------------------------------------------------------------------


def test_enqueue_accepts_a_delivery_id_only_once(queue: JobQueue) -> None:
    job = NewJob("github:abc-123", "github", "issue_comment", "acme/gitops", {"n": 1})
    assert queue.enqueue(job) is True
    assert queue.enqueue(job) is False
    assert queue.enqueue(NewJob("github:abc-123", "github", "other", None, {})) is False
    assert queue.counts() == {"queued": 1, "running": 0, "done": 0, "failed": 0}
    claimed = queue.claim("w1")
    assert claimed is not None
    assert (claimed.delivery_id, claimed.kind, claimed.payload) == (
        "github:abc-123",
        "issue_comment",
        {"n": 1},
    )


def test_migrate_is_idempotent_and_keeps_jobs(queue: JobQueue) -> None:
    queue.enqueue(new())
    queue.migrate()
    assert queue.counts()["queued"] == 1


def test_enqueue_rejects_a_payload_that_is_not_json(queue: JobQueue) -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        queue.enqueue(NewJob("github:x", "github", "k", None, {"when": object()}))
    with pytest.raises(ValueError, match="delivery_id"):
        queue.enqueue(NewJob(" ", "github", "k", None, {}))
    assert sum(queue.counts().values()) == 0


def test_recent_lists_jobs_newest_first_without_payload(queue: JobQueue) -> None:
    first, second = new(secret="s3cr3t"), new(repo=None, kind="reconcile")
    queue.enqueue(first)
    queue.enqueue(second)
    rows = queue.recent(10)
    assert [r["delivery_id"] for r in rows] == [second.delivery_id, first.delivery_id]
    assert set(rows[0]) == {
        "id", "delivery_id", "source", "kind", "repo", "status", "attempts", "last_error",
        "created_at", "updated_at",
    }  # fmt: skip
    assert "s3cr3t" not in repr(rows)
    assert str(rows[1]["created_at"]).endswith("+00:00")
    assert len(queue.recent(1)) == 1


def test_recent_and_counts_keep_only_the_given_repositories(queue: JobQueue) -> None:
    jobs = [new(repo=repo) for repo in ("acme/a", "Acme/A", "acme/b", None)]
    for job in jobs:
        queue.enqueue(job)
    mine = queue.recent(10, repos=["ACME/a"])
    assert [r["delivery_id"] for r in mine] == [jobs[1].delivery_id, jobs[0].delivery_id]
    assert [r["delivery_id"] for r in queue.recent(1, repos=["acme/a"])] == [jobs[1].delivery_id]
    assert queue.recent(10, repos=[]) == []
    assert len(queue.recent(10)) == 4
    assert queue.counts(repos=["acme/b"])["queued"] == 1
    assert sum(queue.counts(repos=[]).values()) == 0
    assert queue.counts()["queued"] == 4


def test_ping_passes_on_a_migrated_database(queue: JobQueue) -> None:
    queue.ping()


# --- lanes --------------------------------------------------------------------------------------


def test_jobs_of_one_repo_run_one_at_a_time_in_order(queue: JobQueue) -> None:
    a1, a2, a3 = new("acme/a", n=1), new("acme/a", n=2), new("acme/a", n=3)
    for job in (a1, a2, a3):
        queue.enqueue(job)
    first = queue.claim("w1")
    assert first is not None and first.delivery_id == a1.delivery_id
    assert queue.claim("w2") is None  # lane busy
    assert queue.complete(first)
    second = queue.claim("w2")
    assert second is not None and second.delivery_id == a2.delivery_id
    assert queue.fail(second, "boom")  # a failure frees the lane too
    third = queue.claim("w1")
    assert third is not None and third.delivery_id == a3.delivery_id


def test_jobs_of_different_repos_and_without_repo_run_in_parallel(queue: JobQueue) -> None:
    jobs = [new("acme/a"), new("acme/a"), new("acme/b"), new(None), new(None)]
    for job in jobs:
        queue.enqueue(job)
    claimed = [queue.claim(f"w{i}") for i in range(5)]
    running = {j.delivery_id for j in claimed if j is not None}
    assert running == {jobs[0].delivery_id, jobs[2].delivery_id, jobs[3].delivery_id,
                       jobs[4].delivery_id}  # fmt: skip
    assert queue.counts()["running"] == 4


def test_a_job_waiting_to_retry_lets_newer_jobs_of_its_repo_pass_one_at_a_time(
    queue: JobQueue,
) -> None:
    a1, a2, a3, b1 = new("acme/a"), new("acme/a"), new("acme/a"), new("acme/b")
    for job in (a1, a2, a3, b1):
        queue.enqueue(job)
    first = queue.claim("w1")
    assert first is not None and first.delivery_id == a1.delivery_id
    assert queue.retry(first, "GitHub answered 502", delay_seconds=3600)
    passing = queue.claim("w1")
    assert passing is not None and passing.delivery_id == a2.delivery_id  # not held up
    other = queue.claim("w2")
    assert other is not None and other.delivery_id == b1.delivery_id
    assert queue.claim("w3") is None  # a3 waits: a2 holds the lane
    assert queue.complete(passing)
    third = queue.claim("w3")
    assert third is not None and third.delivery_id == a3.delivery_id
    row = status_of(queue, first.id)
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "queued",
        1,
        "GitHub answered 502",
    )


def test_a_retried_job_goes_first_again_once_it_is_due(queue: JobQueue) -> None:
    a1, a2 = new("acme/a"), new("acme/a")
    for job in (a1, a2):
        queue.enqueue(job)
    first = queue.claim("w1")
    assert first is not None
    assert queue.retry(first, "GitHub answered 502", delay_seconds=0)
    again = queue.claim("w1")
    assert again is not None and again.delivery_id == a1.delivery_id
    assert queue.claim("w2") is None  # the lane is busy again


# --- leases -------------------------------------------------------------------------------------


def test_expired_lease_is_claimed_again_and_the_old_token_cannot_finish(queue: JobQueue) -> None:
    queue.enqueue(new("acme/a"))
    stale = queue.claim("dead-worker", lease_seconds=0.3)
    assert stale is not None
    assert queue.claim("w2") is None
    time.sleep(0.5)
    fresh = queue.claim("w2", lease_seconds=60)
    assert fresh is not None
    assert (fresh.id, fresh.attempts) == (stale.id, 2)
    assert fresh.lease_token != stale.lease_token
    assert queue.heartbeat(stale) is False
    assert queue.complete(stale) is False
    assert queue.fail(stale, "late") is False
    assert queue.retry(stale, "late", 0) is False
    assert status_of(queue, fresh.id)["status"] == "running"
    assert queue.complete(fresh) is True
    assert status_of(queue, fresh.id)["status"] == "done"
    assert queue.complete(fresh) is False  # finished jobs are not touched again


def test_heartbeat_extends_the_lease(queue: JobQueue) -> None:
    queue.enqueue(new("acme/a"))
    job = queue.claim("w1", lease_seconds=0.3)
    assert job is not None
    assert queue.heartbeat(job, lease_seconds=60) is True
    time.sleep(0.5)
    assert queue.claim("w2") is None
    assert queue.complete(job)


def test_retry_with_no_delay_runs_again_with_the_next_attempt(queue: JobQueue) -> None:
    queue.enqueue(new("acme/a"))
    job = queue.claim("w1")
    assert job is not None
    assert queue.retry(job, "rate limited", 0)
    again = queue.claim("w1")
    assert again is not None and (again.id, again.attempts) == (job.id, 2)


def test_retry_turns_into_failure_after_max_attempts(backend: str, where: Path | str) -> None:
    with open_queue(backend, where, max_attempts=2) as queue:
        a1, a2 = new("acme/a"), new("acme/a")
        queue.enqueue(a1)
        queue.enqueue(a2)
        for _ in range(2):
            job = queue.claim("w1")
            assert job is not None and job.delivery_id == a1.delivery_id
            queue.retry(job, "502 Bad Gateway", 0)
        row = status_of(queue, job.id)
        assert row["status"] == "failed"
        assert row["last_error"] == "gave up after 2 attempts: 502 Bad Gateway"
        nxt = queue.claim("w1")  # the lane moves on
        assert nxt is not None and nxt.delivery_id == a2.delivery_id


def test_a_job_whose_worker_keeps_dying_fails_after_max_attempts(
    backend: str, where: Path | str
) -> None:
    with open_queue(backend, where, max_attempts=1) as queue:
        queue.enqueue(new("acme/a"))
        job = queue.claim("dead", lease_seconds=0.2)
        assert job is not None
        time.sleep(0.4)
        assert queue.claim("w2") is None
        row = status_of(queue, job.id)
        assert row["status"] == "failed"
        assert "lease expired" in str(row["last_error"])


def test_last_error_is_truncated(queue: JobQueue) -> None:
    queue.enqueue(new())
    job = queue.claim("w1")
    assert job is not None
    queue.fail(job, "x" * 10_000)
    stored = str(status_of(queue, job.id)["last_error"])
    assert len(stored) == MAX_ERROR_CHARS and stored.startswith("xxx")


# --- backoff and URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 2, 3, 5, 8, 50])
def test_backoff_grows_exponentially_with_jitter_up_to_a_cap(attempts: int) -> None:
    ceiling = min(BACKOFF_CAP_S, 2.0 * 2 ** (attempts - 1))
    delays = [backoff_delay(attempts, None) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1


def test_backoff_honours_retry_after() -> None:
    assert backoff_delay(1, 120.0) == 120.0
    assert backoff_delay(1, 10**9) == 3600.0  # a silly Retry-After does not park a job for years
    assert 150 <= backoff_delay(20, 1.0) <= BACKOFF_CAP_S  # the exponential floor still applies


def test_sqlite_url_paths_follow_the_sqlalchemy_convention(tmp_path: Path) -> None:
    from bot.gateways.queue_sqlite import SqliteJobQueue

    assert SqliteJobQueue.path_from_url(f"sqlite:///{tmp_path}/q.db") == f"{tmp_path}/q.db"
    assert SqliteJobQueue.path_from_url("sqlite:///rel/q.db") == os.path.abspath("rel/q.db")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite://", "sqlite:///"),
        ("mysql://x/y", "unsupported database URL scheme 'mysql'"),
    ],
)
def test_unusable_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JobQueue.from_url(url)


def test_sqlite_ping_fails_when_the_database_is_missing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        JobQueue.from_url(f"sqlite:///{tmp_path}/missing.db").ping()


def test_postgres_ping_fails_when_the_server_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(queue_postgres, "PING_TIMEOUT_S", 0.5)
    queue = JobQueue.from_url("postgresql://postgres@127.0.0.1:1/test")
    with queue, pytest.raises(PoolTimeout):
        queue.ping()


# --- PostgreSQL specifics -------------------------------------------------------------------------


def test_postgres_late_committed_older_job_waits_for_the_running_one() -> None:
    """Identity ids are taken before commit: an older job can appear behind a running one."""
    with pg_schema() as schema, open_queue("postgresql", schema) as queue:
        with psycopg.connect(PG_URL) as slow:  # a web replica whose insert commits late
            slow.execute(
                f'INSERT INTO "{schema}".jobs (delivery_id, source, kind, repo, payload)'
                " VALUES ('github:late', 'github', 'k', 'acme/a', '{}')"
            )
            queue.enqueue(NewJob("github:early", "github", "k", "acme/a", {}))
            running = queue.claim("w1")
            assert running is not None and running.delivery_id == "github:early"
            slow.commit()
        late_id = next(r["id"] for r in queue.recent() if r["delivery_id"] == "github:late")
        assert late_id < running.id
        assert queue.claim("w2") is None  # older, but the lane is held by a live lease
        queue.complete(running)
        nxt = queue.claim("w2")
        assert nxt is not None and nxt.delivery_id == "github:late"


def test_postgres_claim_skips_a_lane_another_claimer_is_locking() -> None:
    """Claims of one repo serialise on an advisory lock, then re-check with a fresh snapshot."""
    with pg_schema() as schema, open_queue("postgresql", schema) as queue:
        assert isinstance(queue, queue_postgres.PostgresJobQueue)
        queue.enqueue(NewJob("github:a", "github", "k", "acme/a", {}))
        queue.enqueue(NewJob("github:b", "github", "k", "acme/b", {}))
        with psycopg.connect(PG_URL) as other:  # a claimer mid-transaction in lane acme/a
            other.execute("SELECT pg_advisory_xact_lock(%s)", (queue._lane_key("acme/a"),))
            got = queue.claim("w1")
            assert got is not None and got.delivery_id == "github:b"
            assert queue.claim("w1") is None
            other.commit()
        got = queue.claim("w1")
        assert got is not None and got.delivery_id == "github:a"


# --- several processes ---------------------------------------------------------------------------


def _assert_exactly_once_in_order(queue: JobQueue, runs: list[dict], total: int) -> dict:
    assert queue.counts() == {"queued": 0, "running": 0, "done": total, "failed": 0}
    ids = [r["id"] for r in runs]
    assert len(ids) == total and len(set(ids)) == total  # every job ran exactly once
    by_repo: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        if run["repo"] is not None:
            by_repo[run["repo"]].append(run)
    for lane in by_repo.values():
        lane.sort(key=lambda r: r["start"])
        assert [r["seq"] for r in lane] == sorted(r["seq"] for r in lane)  # FIFO per repo
        for before, after in itertools.pairwise(lane):
            assert before["end"] < after["start"]  # never two of one repo at once
    events = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs])
    peak = max(itertools.accumulate(delta for _, delta in events))
    workers = {r["worker"] for r in runs}
    return {"peak_parallel_jobs": peak, "workers_that_ran_jobs": len(workers)}


def _run_processes(
    backend: str,
    where: Path | str,
    outdir: Path,
    processes: int,
    repos: int,
    per_repo: int,
    unlaned: int,
) -> tuple[int, float]:
    queue = open_queue(backend, where)
    workers = [
        spawn_worker(backend, where, f"p{i}", outdir, "record", 5.0) for i in range(processes)
    ]
    started = time.monotonic()
    jobs = [new(f"acme/repo{r}", seq=n) for n in range(per_repo) for r in range(repos)]
    jobs += [new(None, kind="reconcile", seq=n) for n in range(unlaned)]
    for job in jobs:  # enqueued while the workers already claim
        assert queue.enqueue(job)
    (outdir / "enqueued").touch()
    for proc in workers:
        assert proc.wait(timeout=60) == 0
    elapsed = time.monotonic() - started
    stats = _assert_exactly_once_in_order(queue, read_runs(outdir), len(jobs))
    print(f"\n{backend}: {len(jobs)} jobs, {processes} processes x 2 threads: {stats}, "
          f"{elapsed:.2f}s")  # fmt: skip
    queue.close()
    return len(jobs), elapsed


def test_postgres_worker_processes_run_each_job_once_and_repos_in_order(tmp_path: Path) -> None:
    with pg_schema() as schema:
        _run_processes("postgresql", schema, tmp_path, processes=4, repos=5, per_repo=60,
                       unlaned=20)  # fmt: skip


def test_sqlite_worker_processes_run_each_job_once_and_repos_in_order(tmp_path: Path) -> None:
    _run_processes("sqlite", tmp_path, tmp_path, processes=2, repos=3, per_repo=40, unlaned=10)


def test_a_killed_worker_job_is_finished_by_another_exactly_once(
    backend: str, where: Path | str, tmp_path: Path
) -> None:
    from bot.worker import Worker

    lease = 1.5
    queue = open_queue(backend, where)
    job = new("acme/a", seq=0)
    queue.enqueue(job)
    proc = spawn_worker(backend, where, "doomed", tmp_path, "hang", lease)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "started-doomed").exists():
            assert time.monotonic() < deadline, "the worker process never started the job"
            assert proc.poll() is None
            time.sleep(0.05)
        time.sleep(lease * 1.4)
        assert queue.claim("thief") is None  # its heartbeat keeps the lease alive
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    calls = []

    def handler(claimed: object) -> None:
        calls.append(claimed)
        from queue_helpers import record_effect

        record_effect(backend, where, job.delivery_id)

    survivor = Worker(queue, handler, worker_id="survivor", lease_seconds=lease)
    deadline = time.monotonic() + 20
    while not survivor.run_once():
        assert time.monotonic() < deadline, "the dead worker's job was never claimed again"
        time.sleep(0.1)
    row = status_of(queue, int((tmp_path / "started-doomed").read_text()))
    assert (row["status"], row["attempts"]) == ("done", 2)
    assert len(calls) == 1
    assert effects(backend, where) == [job.delivery_id]  # done twice, took effect once
    assert queue.claim("survivor") is None
    queue.close()


def test_sqlite_database_uses_wal(tmp_path: Path) -> None:
    open_queue("sqlite", tmp_path).close()
    with contextlib.closing(sqlite3.connect(tmp_path / "jobs.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_every_sqlite_queue_write_reaches_the_disk_after_it_committed_and_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue runs SQLite with synchronous=NORMAL and syncs the WAL itself, outside the
    write lock: a write may return (a 202 may go out) only after a WAL flush that began once
    the write was committed, or a power cut could take back an acknowledged delivery."""
    queue = open_queue("sqlite", tmp_path)
    db = tmp_path / "jobs.db"
    committed_when_flushed: list[list[tuple[object, ...]]] = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == f"{db}-wal":
            with contextlib.closing(sqlite3.connect(db)) as reader:
                committed_when_flushed.append(
                    reader.execute("SELECT delivery_id, status FROM jobs").fetchall()
                    + reader.execute("SELECT flag FROM pr_flags").fetchall()
                )
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)

    def on_disk_after(write: object) -> list[tuple[object, ...]]:
        committed_when_flushed.clear()
        assert callable(write)
        write()
        assert committed_when_flushed, "returned without flushing the WAL"
        return committed_when_flushed[-1]

    job = new()
    assert on_disk_after(lambda: queue.enqueue(job)) == [(job.delivery_id, "queued")]
    claimed: list[object] = []
    assert on_disk_after(lambda: claimed.append(queue.claim("w1"))) == [
        (job.delivery_id, "running")
    ]
    flag = "INSERT INTO {pr_flags} (repo, number, flag) VALUES (%(repo)s, 1, 'merged')"
    assert on_disk_after(lambda: queue.run_sql(flag, {"repo": "acme/gitops"}))[-1] == ("merged",)
    assert on_disk_after(lambda: queue.complete(claimed[0]))[0] == (job.delivery_id, "done")  # type: ignore[arg-type]
    assert on_disk_after(lambda: queue.enqueue(job)) == [  # a known delivery, flushed too
        (job.delivery_id, "done"),
        ("merged",),
    ]
    committed_when_flushed.clear()
    assert queue.claim("w1") is None
    assert committed_when_flushed == []  # a claim that wrote nothing costs no flush
    with queue._connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA synchronous").fetchone()[0] >= 1  # never OFF
    queue.close()
