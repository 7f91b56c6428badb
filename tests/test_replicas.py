"""Two `gitops-bot serve` replicas and a separate worker share one PostgreSQL queue: a burst of
signed GitHub deliveries (with redeliveries) survives SIGKILL of one replica mid-burst; every
distinct delivery is handled exactly once, in order per repository, and nothing is lost."""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import requests
from bot_harness import github_headers
from bot_process import BotProcess, bot_env
from conftest import EXAMPLE_REPO
from queue_helpers import PG_URL, pg_schema

REPOS = tuple(f"acme/gitops-{i}" for i in range(4))
ISSUES_PER_REPO = 4
SENDS = 300
DUPLICATE_SHARE = 0.2
KILL_AFTER = SENDS // 3  # sends answered before replica 0 is killed
DRAIN_TIMEOUT_S = 90.0
ARTIFACT = Path(__file__).resolve().parent.parent / "artifacts" / "replicas.json"
REPLY_MARKER = re.compile(r"<!-- gitops-bot:reply (\d+)/1 -->")


@dataclass
class Delivery:
    id: str
    repo: str
    comment_id: int
    body: bytes
    answers: list[str] = field(default_factory=list)  # "queued" | "duplicate" per send
    connection_errors: int = 0


@dataclass
class Burst:
    replicas: list[BotProcess]
    sent: int = 0
    rerouted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    kill_now: threading.Event = field(default_factory=threading.Event)

    def send(self, delivery: Delivery, preferred: int) -> None:
        """POST to the preferred replica; on a connection error or an answer cut off by the
        kill, to the other one (what a load balancer does with a failed upstream)."""
        headers = github_headers("issue_comment", delivery.body, delivery.id)
        order = [preferred, 1 - preferred]
        for attempt, index in enumerate(order):
            url = f"{self.replicas[index].url}/webhooks/github"
            try:
                response = requests.post(url, data=delivery.body, headers=headers, timeout=30)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                delivery.connection_errors += 1
                if attempt == len(order) - 1:
                    raise
                with self.lock:
                    self.rerouted += 1
                continue
            assert response.status_code in (200, 202), response.text
            delivery.answers.append(response.json()["status"])
            break
        with self.lock:
            self.sent += 1
            if self.sent == KILL_AFTER:
                self.kill_now.set()


def _plan_sends(fake, rng: random.Random) -> dict[str, list[Delivery]]:
    """Per repository, the sequence of sends: distinct deliveries plus ~20% redeliveries."""
    distinct = round(SENDS * (1 - DUPLICATE_SHARE))
    issues = {
        repo: [fake.open_issue(repo, f"Ops {n}") for n in range(ISSUES_PER_REPO)] for repo in REPOS
    }
    plan: dict[str, list[Delivery]] = {repo: [] for repo in REPOS}
    made: dict[str, list[Delivery]] = {repo: [] for repo in REPOS}
    for n in range(distinct):
        repo = REPOS[n % len(REPOS)]
        number = rng.choice(issues[repo])
        payload = fake.payload_issue_comment(repo, number, "alice", "/help")
        delivery = Delivery(
            str(uuid.uuid4()), repo, payload["comment"]["id"], json.dumps(payload).encode()
        )
        made[repo].append(delivery)
        plan[repo].append(delivery)
    for n in range(SENDS - distinct):  # redeliveries, each after its original
        repo = REPOS[n % len(REPOS)]
        original = rng.choice(made[repo])
        position = plan[repo].index(original) + 1
        plan[repo].insert(rng.randint(position, len(plan[repo])), original)
    return plan


def _jobs(conn: psycopg.Connection) -> list[dict]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT id, delivery_id, repo, status, attempts, last_error, created_at, updated_at"
        " FROM jobs ORDER BY id"
    ).fetchall()


@pytest.fixture
def schema():
    with pg_schema() as name:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        yield name


def test_replicas_on_postgresql_handle_each_delivery_once_through_a_replica_crash(
    fake_github, schema, tmp_path
):
    for repo in REPOS:
        fake_github.create_repo(repo, source_dir=EXAMPLE_REPO, default_branch="main")
    api_url = fake_github.serve()
    database_url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    env = bot_env(
        fake_github, api_url, database_url, REPOS, WORKER_LEASE_SECONDS="2", LOG_LEVEL="WARNING"
    )
    plan = _plan_sends(fake_github, random.Random(20261126))
    replicas = [BotProcess.serve(env, tmp_path / f"serve-{i}.log") for i in range(2)]
    worker = BotProcess.worker(env, tmp_path / "worker.log")
    processes = [*replicas, worker]
    burst = Burst(replicas)
    errors: list[BaseException] = []

    def sender(repo_index: int, sends: list[Delivery]) -> None:
        try:  # one sender per repository: its deliveries have a definite order
            for n, delivery in enumerate(sends):
                burst.send(delivery, (n + repo_index) % 2)  # round-robin over the replicas
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)

    try:
        for process in processes:
            process.start()
        started = time.monotonic()
        threads = [
            threading.Thread(target=sender, args=(i, plan[repo]), daemon=True)
            for i, repo in enumerate(REPOS)
        ]
        for thread in threads:
            thread.start()
        assert burst.kill_now.wait(60), errors
        replicas[0].kill()
        killed_after = burst.sent
        for thread in threads:
            thread.join(60)
        burst_s = time.monotonic() - started
        assert not errors, errors
        assert burst.sent == SENDS

        with psycopg.connect(database_url, autocommit=True) as conn:
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while time.monotonic() < deadline:
                jobs = _jobs(conn)
                if jobs and all(j["status"] in ("done", "failed") for j in jobs):
                    break
                time.sleep(0.2)
            drain_s = time.monotonic() - started
            jobs = _jobs(conn)
    finally:
        for process in processes:
            process.stop()

    deliveries = {d.id: d for sends in plan.values() for d in sends}
    accepted = sum(d.answers.count("queued") for d in deliveries.values())
    suppressed = sum(d.answers.count("duplicate") for d in deliveries.values())
    # accepted by the killed replica whose answer never came back: the re-send was a duplicate
    unacknowledged = [d for d in deliveries.values() if "queued" not in d.answers]
    by_delivery = {j["delivery_id"]: j for j in jobs}
    handled = [
        d
        for d in deliveries.values()
        if by_delivery.get(f"github:{d.id}", {}).get("status") == "done"
    ]
    figures = {
        "deliveries_sent": SENDS,
        "distinct": len(deliveries),
        "accepted": accepted,
        "duplicates_suppressed": suppressed,
        "accepted_by_killed_replica_unanswered": len(unacknowledged),
        "rerouted_after_connection_error": burst.rerouted,
        "handled": len(handled),
        "lost": len(deliveries) - len(handled),
        "jobs_rerun_after_crash": sum(1 for j in jobs if j["attempts"] > 1),
        "replica_killed_after_sends": killed_after,
        "burst_seconds": round(burst_s, 2),
        "time_to_drain_seconds": round(drain_s, 2),
        "replicas": "2 x serve (web + 2 workers) + 1 x worker, WORKER_LEASE_SECONDS=2",
    }
    print("\nreplicas:", json.dumps(figures, indent=2))
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=2) + "\n")

    # intake: one job row per distinct delivery, duplicates answered as such
    assert len(jobs) == len(by_delivery) == len(deliveries)
    assert set(by_delivery) == {f"github:{d}" for d in deliveries}
    assert all(d.answers.count("queued") <= 1 for d in deliveries.values())
    assert all(d.connection_errors for d in unacknowledged)
    assert suppressed == SENDS - len(deliveries) + len(unacknowledged)
    # every job done, nothing lost
    assert [j for j in jobs if j["status"] != "done"] == []
    assert figures["lost"] == 0
    # each command comment got exactly one reply; no reply was posted twice
    replies: dict[int, int] = {}
    for repo in REPOS:
        for number in fake_github.repo(repo).issues:
            for comment in fake_github.comments(repo, number):
                if comment["user"]["login"] == fake_github.bot_login:
                    found = REPLY_MARKER.search(comment["body"])
                    assert found, comment["body"]
                    replies[int(found[1])] = replies.get(int(found[1]), 0) + 1
    assert replies == {d.comment_id: 1 for d in deliveries.values()}
    posted = [c for c in fake_github.calls_to("POST", r"/comments$") if c.status == 201]
    assert len(posted) == len(deliveries)
    # per repository: jobs numbered in send order, and finished in that order
    for repo, sends in plan.items():
        first_sends = list(dict.fromkeys(d.id for d in sends))
        ids = [by_delivery[f"github:{d}"]["id"] for d in first_sends]
        assert ids == sorted(ids), repo
        finished = [by_delivery[f"github:{d}"]["updated_at"] for d in first_sends]
        assert finished == sorted(finished) and len(set(finished)) == len(finished), repo
    for process in processes[1:]:
        assert "Traceback" not in process.log(), process.log()
