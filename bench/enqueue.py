"""Benchmark durable enqueues into the SQLite job queue alone, from several processes at once.

Every side runs `--processes` processes of `--threads` threads each, all writing into one
SQLite file as fast as they can for `--duration` seconds; a write counts once it returned,
which is once it is on disk. Sides, in turns over `--rounds` rounds (the order alternating):

- **floor**: what a durable insert costs without the queue: each write one autocommit
  `INSERT` of the same row into a table with one unique key, `synchronous=FULL`;
- **queue**: `SqliteJobQueue.enqueue` of this checkout (group commit, the WAL synced outside
  SQLite's write lock, flushes shared);
- **base** (with `--base DIR`): the same from another checkout (`git worktree add DIR REV`).

No HTTP and no load generator: this isolates what the durable write costs when several
processes write at once, which `intake.py` cannot show on a host whose two cores the client,
both servers and the disk's interrupts share. Checked: each side's table holds exactly the
rows whose writes returned.

    .venv/bin/python bench/enqueue.py [--processes 2,4] [--threads 1,4] [--duration 3]
        [--rounds 3] [--base DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STARTUP_S = 2.0  # time for a writer process to start and import before the turn begins
PAYLOAD = {"command": "/promote fraud-detector 8 to staging", "body": "x" * 300}
FLOOR_TABLE = (
    "CREATE TABLE IF NOT EXISTS jobs"
    " (id INTEGER PRIMARY KEY, delivery_id TEXT UNIQUE, payload TEXT)"
)


def _writer(side: str, root: str, path: str, threads: int, start: float, seconds: float) -> int:
    """One process of a side: `threads` threads writing from `start` (wall clock, the same
    for every process of the turn) until the time is up; the count."""
    sys.path.insert(0, root)
    written = [0] * threads

    if side == "floor":
        body = json.dumps(PAYLOAD)
        local = threading.local()

        def write_one() -> None:
            conn = local.__dict__.get("conn")
            if conn is None:
                conn = sqlite3.connect(path, isolation_level=None, timeout=30)
                conn.execute("PRAGMA synchronous=FULL")
                local.conn = conn
            conn.execute(
                "INSERT INTO jobs (delivery_id, payload) VALUES (?, ?)",
                (f"bench:{uuid.uuid4().hex}", body),
            )

    else:
        from bot.gateways.queue import JobQueue, NewJob

        queue = JobQueue.from_url(f"sqlite:///{path}")

        def write_one() -> None:
            queue.enqueue(
                NewJob(
                    f"bench:{uuid.uuid4().hex}", "github", "issue_comment", "acme/gitops", PAYLOAD
                )
            )

    time.sleep(max(0.0, start - time.time()))  # every process imported: go together
    deadline = time.monotonic() + seconds

    def loop(index: int) -> None:
        while time.monotonic() < deadline:
            write_one()
            written[index] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(written)


def prepare(side: str, root: Path, path: Path) -> None:
    if side == "floor":
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(FLOOR_TABLE)
        return
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from bot.gateways.queue import JobQueue;"
        "JobQueue.from_url('sqlite:///' + sys.argv[2]).migrate()"
    )
    subprocess.run([sys.executable, "-c", code, str(root), str(path)], check=True)


def run_side(
    side: str, root: Path, path: Path, processes: int, threads: int, seconds: float
) -> float:
    """Writes per second of one side over one turn."""
    start = time.time() + STARTUP_S
    command = [sys.executable, __file__, "--write", side, str(root), str(path), str(threads)]
    procs = [
        subprocess.Popen([*command, str(start), str(seconds)], stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    total = 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 120)
        if p.returncode != 0:
            raise SystemExit(f"{side}: a writer process exited with {p.returncode}")
        total += int(out)
    return total / seconds


def rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    sides = {"floor": ROOT, "queue": ROOT}
    if args.base is not None:
        sides["base"] = args.base.resolve()
    report: dict[str, Any] = {"configurations": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for processes in args.processes:
            for threads in args.threads:
                paths = {s: tmp / f"{s}-{processes}x{threads}.db" for s in sides}
                for side, root in sides.items():
                    prepare(side, root, paths[side])
                rates: dict[str, list[float]] = {s: [] for s in sides}
                for number in range(args.rounds):
                    order = list(sides) if number % 2 == 0 else list(reversed(sides))
                    for side in order:
                        rates[side].append(
                            run_side(
                                side, sides[side], paths[side], processes, threads, args.duration
                            )
                        )
                expected = {s: round(sum(r) * args.duration) for s, r in rates.items()}
                stored = {s: rows(paths[s]) for s in sides}
                if stored != expected:
                    raise SystemExit(f"rows stored {stored} != writes returned {expected}")
                config: dict[str, Any] = {
                    "processes": processes,
                    "threads": threads,
                    "per_second": {s: round(statistics.median(r)) for s, r in rates.items()},
                    "queue_to_floor": statistics.median(
                        q / f for q, f in zip(rates["queue"], rates["floor"], strict=True)
                    ),
                }
                line = (
                    f"{processes} processes x {threads} threads: "
                    + ", ".join(f"{s} {v}/s" for s, v in config["per_second"].items())
                    + f"; queue/floor {config['queue_to_floor']:.2f}x"
                )
                if "base" in sides:
                    config["queue_to_base"] = statistics.median(
                        q / b for q, b in zip(rates["queue"], rates["base"], strict=True)
                    )
                    line += f", queue/base {config['queue_to_base']:.2f}x"
                print(line, flush=True)
                report["configurations"].append(config)
    return report


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--write"]:  # one writer process of a side (run_side starts them)
        side, root, path, threads, start, seconds = argv[1:]
        print(_writer(side, root, path, int(threads), float(start), float(seconds)))
        return {}
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=_counts, default=[2, 4], help="e.g. 2,4")
    parser.add_argument("--threads", type=_counts, default=[1, 4], help="per process, e.g. 1,4")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per side and turn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", type=Path, default=None, help="another checkout to compare")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    print(
        f"SQLite WAL on {tempfile.gettempdir()}; {args.duration:g} s per side and turn, "
        f"{args.rounds} rounds\n",
        flush=True,
    )
    report = measure(args)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
