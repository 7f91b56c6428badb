"""Benchmark webhook intake under gunicorn against a bare HMAC-checking Flask endpoint (floor).

Both sides run under the same gunicorn settings on loopback and receive the same stream of
signed, distinct `issue_comment.created` deliveries (real payloads from
@octokit/webhooks-examples with a `/promote` comment, a fresh comment id and delivery id
each). The bot side is the real web app (`bot.runtime:create_wsgi_app()`: verify, parse,
enqueue in the durable queue); the floor (`bench/floor_app.py`) only checks the HMAC.

Reported: deliveries/s and p50/p99 latency for each side and the bot/floor ratios, measured
in the same run. Checked: every bot delivery got 202, the queue holds exactly one job per
distinct delivery, and nothing contacted the (dummy) GitHub API.

    .venv/bin/python bench/intake.py [--duration 5] [--threads 8] [--workers 2]
        [--worker-threads 1] [--requests N] [--rounds 4] [--diagnose] [--base DIR]
        [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import socket
import socketserver
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "tests/corpora/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
SECRET = "bench-intake-webhook-secret"
COMMAND = "/promote fraud-detector 8 to staging"
ID_PLACEHOLDER = 987654321012345  # replaced per delivery in the serialised body
WARMUP = 40


# --------------------------------------------------------------------------- deliveries


def comment_templates() -> list[bytes]:
    """Serialised `issue_comment.created` examples with a command and a placeholder id."""
    corpus = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    examples = next(e["examples"] for e in corpus if e["name"] == "issue_comment")
    out = []
    for example in examples:
        if example.get("action") != "created":
            continue
        payload = json.loads(json.dumps(example))
        payload["comment"]["id"] = ID_PLACEHOLDER
        payload["comment"]["body"] = COMMAND
        payload.setdefault("installation", {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uMQ=="})
        out.append(json.dumps(payload).encode())
    if not out:
        raise SystemExit(f"no issue_comment.created examples in {EXAMPLES}")
    return out


class Deliveries:
    """A thread-safe stream of distinct signed deliveries (same sequence for both sides)."""

    def __init__(self, templates: list[bytes], secret: str) -> None:
        self.templates = templates
        self.secret = secret.encode()
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[str, dict[str, str], bytes]:
        with self._lock:
            n = self._next
            self._next += 1
        body = self.templates[n % len(self.templates)].replace(
            str(ID_PLACEHOLDER).encode(), str(2_000_000_000 + n).encode(), 1
        )
        delivery = str(uuid.uuid4())
        signature = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/bench",
            "X-GitHub-Event": "issue_comment",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": f"sha256={signature}",
        }
        return delivery, headers, body


# --------------------------------------------------------------------------- load generator


@dataclass
class LoadResult:
    sent: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    deliveries: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_load(
    port: int,
    deliveries: Deliveries,
    *,
    threads: int,
    duration: float,
    requests: int | None,
    per_connection: int = 100,
) -> LoadResult:
    """N threads, each with its own keep-alive connection (it reconnects if the server
    closes it, as gunicorn's sync workers do, and after `per_connection` requests: a
    gthread worker keeps the connections it accepted, and a lasting lopsided share between
    the workers would measure the share, not the app), until the duration or count is up."""
    result = LoadResult()
    lock = threading.Lock()
    budget = iter(range(requests)) if requests is not None else None
    start_gate = threading.Barrier(threads + 1)
    deadline = [0.0]

    def more() -> bool:
        if budget is not None:
            with lock:
                return next(budget, None) is not None
        return time.perf_counter() < deadline[0]

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        lat: list[float] = []
        seen: dict[int, int] = {}
        sent: list[str] = []
        start_gate.wait()
        try:
            while more():
                delivery, headers, body = deliveries.take()
                began = time.perf_counter()
                try:
                    conn.request("POST", "/webhooks/github", body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    with lock:
                        result.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                lat.append(time.perf_counter() - began)
                seen[response.status] = seen.get(response.status, 0) + 1
                sent.append(delivery)
                if response.will_close or len(sent) % per_connection == 0:
                    conn.close()
        finally:
            conn.close()
            with lock:
                result.latencies.extend(lat)
                result.deliveries.extend(sent)
                for status, count in seen.items():
                    result.statuses[status] = result.statuses.get(status, 0) + count

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    deadline[0] = time.perf_counter() + duration
    began = time.perf_counter()
    start_gate.wait()
    for worker in workers:
        worker.join()
    result.seconds = time.perf_counter() - began
    result.sent = len(result.latencies)
    return result


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Tripwire(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    connections = 0


class _TripwireHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.connections += 1  # type: ignore[attr-defined]


@contextmanager
def github_tripwire() -> Iterator[_Tripwire]:
    """A loopback listener standing in for the GitHub API: it only counts connections."""
    server = _Tripwire(("127.0.0.1", 0), _TripwireHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@contextmanager
def gunicorn(
    app: str,
    env: dict[str, str],
    workers: int,
    log_path: Path,
    threads: int = 1,
    cwd: Path = ROOT,
) -> Iterator[int]:
    """Run `gunicorn -w <workers> --threads <threads> -b 127.0.0.1:<port> <app>` (one thread:
    sync workers; more: gthread workers, which keep connections alive); yields the port once
    healthy."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(workers),
        "--threads",
        str(threads),
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        app,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=log)
        try:
            wait_healthy(port, process, log_path)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_healthy(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited ({process.returncode}):\n{log_path.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"gunicorn did not become healthy:\n{log_path.read_text()}")


# --------------------------------------------------------------------------- the queue


@contextmanager
def database(url: str | None, tmp: Path) -> Iterator[tuple[str, Callable[[], list[str]]]]:
    """(DATABASE_URL for the bot, a function listing the queued delivery ids)."""
    if url is None:
        path = tmp / "queue.db"
        path.parent.mkdir(parents=True, exist_ok=True)

        def sqlite_ids() -> list[str]:
            with sqlite3.connect(path) as conn:
                return [r[0] for r in conn.execute("SELECT delivery_id FROM jobs")]

        yield f"sqlite:///{path}", sqlite_ids
        return
    import psycopg

    schema = f"bench_intake_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    split = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(split.query)
    query.append(("options", f"-csearch_path={schema}"))
    scoped = split._replace(query=urllib.parse.urlencode(query)).geturl()

    def pg_ids() -> list[str]:
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(f"SELECT delivery_id FROM {schema}.jobs").fetchall()
        return [r[0] for r in rows]

    try:
        yield scoped, pg_ids
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# --------------------------------------------------------------------------- the run


def describe(label: str, r: LoadResult) -> str:
    codes = ", ".join(f"{k}×{v}" for k, v in sorted(r.statuses.items()))
    return (
        f"{label:<6} {r.sent:6d} deliveries in {r.seconds:5.1f} s  {r.rate:8.1f}/s   "
        f"p50 {r.percentile(0.50) * 1000:6.2f} ms   p99 {r.percentile(0.99) * 1000:6.2f} ms   "
        f"[{codes}]" + (f"  {len(r.errors)} errors" if r.errors else "")
    )


def combined(results: list[LoadResult]) -> LoadResult:
    """One side's rounds as one result (rates over the summed time)."""
    out = LoadResult()
    for r in results:
        out.sent += r.sent
        out.seconds += r.seconds
        out.latencies.extend(r.latencies)
        out.deliveries.extend(r.deliveries)
        out.errors.extend(r.errors)
        for status, count in r.statuses.items():
            out.statuses[status] = out.statuses.get(status, 0) + count
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    templates = comment_templates()
    with tempfile.TemporaryDirectory() as tmp_name, github_tripwire() as tripwire:
        tmp = Path(tmp_name)
        with database(args.database_url, tmp) as (db_url, queued_ids), ExitStack() as stack:
            env = {
                **os.environ,
                "GITHUB_APP_ID": "123456",
                "GITHUB_PRIVATE_KEY": private_key_pem(),
                "GITHUB_WEBHOOK_SECRET": SECRET,
                "GITHUB_APP_SLUG": "gitops-bot",
                "GITHUB_API_URL": f"http://127.0.0.1:{tripwire.server_address[1]}",
                "DATABASE_URL": db_url,
                "LOG_LEVEL": args.log_level,
            }
            env.pop("MLFLOW_TRACKING_URI", None)
            apps = {
                "floor": "bench.floor_app:create_wsgi_app()",
                "bot": "bot.runtime:create_wsgi_app()",
            }
            if args.diagnose:
                apps["noqueue"] = "bench.bot_without_queue:create_wsgi_app()"
            where = {label: (ROOT, env) for label in apps}
            base_ids: Callable[[], list[str]] | None = None
            if args.base is not None:  # the same bot from another checkout, its own queue
                base_url, base_ids = stack.enter_context(database(args.database_url, tmp / "base"))
                apps["base"] = "bot.runtime:create_wsgi_app()"
                where["base"] = (args.base.resolve(), {**env, "DATABASE_URL": base_url})
            streams = {label: Deliveries(templates, SECRET) for label in apps}
            runs: dict[str, list[LoadResult]] = {label: [] for label in apps}
            round_ratios: list[float] = []
            noqueue_ratios: list[float] = []
            base_ratios: list[float] = []
            with ExitStack() as servers:
                ports = {
                    label: servers.enter_context(
                        gunicorn(
                            app,
                            where[label][1],
                            args.workers,
                            tmp / f"{label}.log",
                            args.worker_threads,
                            cwd=where[label][0],
                        )
                    )
                    for label, app in apps.items()
                }
                warm = {
                    label: run_load(
                        ports[label],
                        streams[label],
                        threads=args.threads,
                        duration=0,
                        requests=WARMUP,
                    )
                    for label in apps
                }
                # both servers stay up; the sides take turns, in alternating order, so that a
                # drift in the machine's speed (other tenants, CPU boost) falls on both
                for number in range(args.rounds):
                    order = tuple(apps) if number % 2 == 0 else tuple(reversed(apps))
                    for label in order:
                        result = run_load(
                            ports[label],
                            streams[label],
                            threads=args.threads,
                            duration=args.duration,
                            requests=args.requests,
                        )
                        runs[label].append(result)
                        print(f"round {number + 1} " + describe(label, result), flush=True)
                    floor_rate = runs["floor"][-1].rate
                    if not floor_rate:
                        raise SystemExit("the floor answered nothing: no ratio to report")
                    round_ratios.append(runs["bot"][-1].rate / floor_rate)
                    if args.diagnose:
                        noqueue_ratios.append(runs["noqueue"][-1].rate / floor_rate)
                    if base_ids is not None:
                        base_ratios.append(runs["bot"][-1].rate / runs["base"][-1].rate)
            rows = queued_ids()
            github_connections = tripwire.connections
            bot_runs = [warm["bot"], *runs["bot"]]
            if args.diagnose:
                bot_runs += [warm["noqueue"], *runs["noqueue"]]
            base_rows = base_ids() if base_ids is not None else []
            if base_ids is not None:
                bot_runs += [warm["base"], *runs["base"]]
            problems = [e for r in bot_runs for e in r.errors]
            bad = {s: n for r in bot_runs for s, n in r.statuses.items() if s != 202}
            if problems or bad:
                log = (tmp / "bot.log").read_text()[-4000:]
                raise SystemExit(f"bot side failed: {problems[:5]} {bad}\n{log}")
    floor, bot = combined(runs["floor"]), combined(runs["bot"])
    print("\n" + describe("floor", floor) + "\n" + describe("bot", bot))
    bot_deliveries = warm["bot"].deliveries + bot.deliveries
    expected = {f"github:{d}" for d in bot_deliveries}
    one_job_each = len(rows) == len(set(rows)) == len(expected) and set(rows) == expected
    report = {
        "workers": args.workers,
        "worker_threads": args.worker_threads,
        "threads": args.threads,
        "rounds": args.rounds,
        "database": "postgresql" if args.database_url else "sqlite (WAL)",
        "floor": summary(floor),
        "bot": summary(bot),
        "round_ratios": [round(r, 3) for r in round_ratios],
        "throughput_ratio": statistics.median(round_ratios),
        "p99_ratio": bot.percentile(0.99) / floor.percentile(0.99),
        "p50_ratio": bot.percentile(0.50) / floor.percentile(0.50),
        "bot_deliveries": len(expected),
        "queued_jobs": len(rows),
        "one_job_per_delivery": one_job_each,
        "github_connections": github_connections,
    }
    print(
        f"\nbot/floor: throughput {report['throughput_ratio']:.2f}x (median of the rounds: "
        + ", ".join(f"{r:.2f}" for r in round_ratios)
        + f"), p50 {report['p50_ratio']:.2f}x, p99 {report['p99_ratio']:.2f}x"
    )
    print(
        f"queue: {len(rows)} jobs for {len(expected)} distinct bot deliveries "
        f"(incl. {WARMUP} warm-up) -> {'one each' if one_job_each else 'MISMATCH'}; "
        f"GitHub API connections: {github_connections}"
    )
    if args.diagnose:
        report["noqueue"] = summary(combined(runs["noqueue"]))
        report["noqueue_ratio"] = statistics.median(noqueue_ratios)
        print(
            f"bot without its durable queue / floor: {report['noqueue_ratio']:.2f}x "
            "(median of the rounds: " + ", ".join(f"{r:.2f}" for r in noqueue_ratios) + ")"
        )
    if args.base is not None:
        base = combined(runs["base"])
        base_expected = {f"github:{d}" for d in warm["base"].deliveries + base.deliveries}
        one_job_each = one_job_each and sorted(base_rows) == sorted(base_expected)
        report["base"] = summary(base)
        report["base_ratio"] = statistics.median(
            r / b for r, b in zip(round_ratios, base_ratios, strict=True)
        )
        report["bot_to_base_ratio"] = statistics.median(base_ratios)
        print(
            f"base ({args.base}) / floor: {report['base_ratio']:.2f}x; "
            f"bot / base: {report['bot_to_base_ratio']:.2f}x (median of the rounds: "
            + ", ".join(f"{r:.2f}" for r in base_ratios)
            + f"); base queue: {len(base_rows)} jobs for {len(base_expected)} deliveries"
        )
    if not one_job_each or github_connections:
        raise SystemExit("intake check failed")
    return report


def summary(r: LoadResult) -> dict[str, Any]:
    return {
        "deliveries": r.sent,
        "seconds": round(r.seconds, 3),
        "per_second": round(r.rate, 1),
        "p50_ms": round(r.percentile(0.50) * 1000, 3),
        "p99_ms": round(r.percentile(0.99) * 1000, 3),
        "statuses": {str(k): v for k, v in sorted(r.statuses.items())},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per side and round")
    parser.add_argument(
        "--rounds", type=int, default=4, help="rounds; the sides take turns in each"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="a fixed count per side and round instead of a duration",
    )
    parser.add_argument("--threads", type=int, default=8, help="client threads (connections)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per side")
    parser.add_argument(
        "--worker-threads",
        type=int,
        default=1,
        help="gunicorn --threads per worker, both sides (1: sync workers; more: gthread)",
    )
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL URL (default: SQLite WAL in a temp dir)"
    )
    parser.add_argument("--log-level", default="INFO", help="the bot's LOG_LEVEL")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="a third side: the bot with a queue that keeps nothing (bench/bot_without_queue.py)",
    )
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="a checkout of another revision (git worktree add DIR REV): its bot is a further "
        "side with its own queue, and bot/base is reported round by round",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    print(
        f"gunicorn -w {args.workers} "
        + ("(sync)" if args.worker_threads == 1 else f"--threads {args.worker_threads} (gthread)")
        + f" on loopback; {args.threads} client threads; "
        + (f"{args.requests} deliveries" if args.requests else f"{args.duration:g} s")
        + f" per side and round, {args.rounds} rounds; "
        + ("PostgreSQL" if args.database_url else "SQLite (WAL)")
        + " queue\n",
        flush=True,
    )
    report = measure(args)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
