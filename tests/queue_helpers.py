"""Job-queue test helpers: per-run PostgreSQL schemas and a worker process to spawn or kill.

Run as a script, this module is a worker process:
    python queue_helpers.py <url> <schema|-> <name> <outdir> record|hang <lease_s>
`record` runs jobs until `<outdir>/enqueued` exists and no job is open, appending one JSON
line per job run to `<outdir>/runs-<name>.jsonl`; `hang` records an idempotent side effect
for the first job it claims, marks `<outdir>/started-<name>` and then hangs (to be killed).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from bot.gateways.queue import Job, JobQueue
from bot.worker import Worker

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
HERE = Path(__file__).resolve()


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema for one test, dropped afterwards (parallel runs never collide)."""
    name = f"qtest_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def open_queue(backend: str, where: Path | str, **kwargs: object) -> JobQueue:
    """A migrated queue: `where` is a directory (SQLite) or a schema name (PostgreSQL)."""
    if backend == "sqlite":
        queue = JobQueue.from_url(f"sqlite:///{Path(where) / 'jobs.db'}", **kwargs)  # type: ignore[arg-type]
    else:
        queue = JobQueue.from_url(PG_URL, schema=str(where), **kwargs)  # type: ignore[arg-type]
    queue.migrate()
    return queue


def record_effect(backend: str, where: Path | str, delivery_id: str) -> None:
    """An idempotent side effect keyed by delivery id (like 'find the PR before creating')."""
    if backend == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(Path(where) / "effects.db", timeout=30)) as c:
            c.execute("CREATE TABLE IF NOT EXISTS effects (delivery_id TEXT PRIMARY KEY)")
            c.execute("INSERT OR IGNORE INTO effects VALUES (?)", (delivery_id,))
            c.commit()
    else:
        with psycopg.connect(PG_URL, autocommit=True) as c:
            c.execute(
                f'CREATE TABLE IF NOT EXISTS "{where}".effects (delivery_id TEXT PRIMARY KEY)'
            )
            c.execute(
                f'INSERT INTO "{where}".effects VALUES (%s) ON CONFLICT DO NOTHING', (delivery_id,)
            )


def effects(backend: str, where: Path | str) -> list[str]:
    if backend == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(Path(where) / "effects.db")) as c:
            return [r[0] for r in c.execute("SELECT delivery_id FROM effects")]
    with psycopg.connect(PG_URL, autocommit=True) as c:
        return [r[0] for r in c.execute(f'SELECT delivery_id FROM "{where}".effects')]


def spawn_worker(
    backend: str, where: Path | str, name: str, outdir: Path, mode: str, lease: float
) -> subprocess.Popen[bytes]:
    url = f"sqlite:///{Path(where) / 'jobs.db'}" if backend == "sqlite" else PG_URL
    schema = "-" if backend == "sqlite" else str(where)
    args = [sys.executable, str(HERE), url, schema, name, str(outdir), mode, str(lease)]
    return subprocess.Popen(args, cwd=HERE.parent.parent)


def read_runs(outdir: Path) -> list[dict[str, object]]:
    runs = []
    for path in sorted(outdir.glob("runs-*.jsonl")):
        runs.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return runs


def _main(url: str, schema: str, name: str, outdir: str, mode: str, lease: str) -> None:
    out = Path(outdir)
    queue = JobQueue.from_url(url, schema=None if schema == "-" else schema, max_attempts=3)
    lock = threading.Lock()
    runs = (out / f"runs-{name}.jsonl").open("a")

    def record(job: Job) -> None:
        start = time.monotonic_ns()  # system-wide on Linux: comparable across processes
        time.sleep(random.uniform(0.002, 0.015))
        end = time.monotonic_ns()
        line = {
            "id": job.id,
            "repo": job.repo,
            "seq": job.payload["seq"],
            "start": start,
            "end": end,
            "worker": name,
            "thread": threading.get_ident(),
        }
        with lock:
            runs.write(json.dumps(line) + "\n")
            runs.flush()

    def hang(job: Job) -> None:
        backend = "sqlite" if url.startswith("sqlite") else "postgresql"
        record_effect(backend, Path(url[len("sqlite:///") :]).parent if schema == "-" else schema,
                      job.delivery_id)  # fmt: skip
        (out / f"started-{name}").write_text(str(job.id))
        time.sleep(600)

    worker = Worker(
        queue,
        record if mode == "record" else hang,
        worker_id=name,
        concurrency=2,
        lease_seconds=float(lease),
        poll_interval=0.01,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    if mode == "hang":
        thread.join()  # never returns: the test kills this process
    while True:
        time.sleep(0.05)
        counts = queue.counts()
        if (out / "enqueued").exists() and counts["queued"] + counts["running"] == 0:
            break
    stop.set()
    thread.join()
    queue.close()


if __name__ == "__main__":
    _main(*sys.argv[1:])
