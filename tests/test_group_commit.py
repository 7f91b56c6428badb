"""Group commit at intake: concurrent enqueues share a transaction, yet each caller answers
only once the transaction holding its job committed, and a process killed right after
answering has lost none of the jobs it acknowledged."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from bot_harness import GITHUB_SECRET
from bot_process import BotProcess
from queue_helpers import open_queue, pg_schema

from bot.gateways.group_commit import GroupCommitter
from bot.gateways.queue import NewJob

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------ the committer


class GatedWriter:
    """A write_batch whose first call blocks until released (so others queue up behind it)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []
        self.committed: set[str] = set()

    def __call__(self, items: Sequence[str]) -> list[bool]:
        self.entered.set()
        self.release.wait(10)
        self.batches.append(list(items))
        self.committed.update(items)
        return [True] * len(items)


def test_callers_return_only_after_the_batch_holding_their_item_committed() -> None:
    writer = GatedWriter()
    committer: GroupCommitter[str, bool] = GroupCommitter(writer)
    returned: list[tuple[str, bool]] = []
    committed_when_returned: list[bool] = []

    def call(item: str) -> None:
        result = committer.submit(item)
        committed_when_returned.append(item in writer.committed)
        returned.append((item, result))

    leader = threading.Thread(target=call, args=("first",))
    leader.start()
    assert writer.entered.wait(10)
    followers = [threading.Thread(target=call, args=(f"job-{n}",)) for n in range(6)]
    for thread in followers:
        thread.start()
    time.sleep(0.2)  # give the followers every chance to return early (they must not)
    assert returned == []
    writer.release.set()
    for thread in [leader, *followers]:
        thread.join(10)
    assert sorted(item for item, _ in returned) == sorted(
        ["first", *(f"job-{n}" for n in range(6))]
    )
    assert all(result for _, result in returned)
    assert all(committed_when_returned)
    # the six that queued while the first batch was being written went in one more batch
    assert writer.batches[0] == ["first"]
    assert sorted(writer.batches[1]) == sorted(f"job-{n}" for n in range(6))
    assert len(writer.batches) == 2


def test_a_failed_batch_fails_every_caller_in_it_and_spares_the_next() -> None:
    calls = 0

    def write(items: Sequence[str]) -> list[bool]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk I/O error")
        return [True] * len(items)

    committer: GroupCommitter[str, bool] = GroupCommitter(write)
    with pytest.raises(OSError, match="disk I/O error"):
        committer.submit("lost")
    assert committer.submit("kept") is True


def test_an_item_refused_alone_fails_only_its_own_caller() -> None:
    def write(items: Sequence[str]) -> list[bool | BaseException]:
        return [ValueError(f"bad {i}") if i.startswith("bad") else True for i in items]

    committer: GroupCommitter[str, bool] = GroupCommitter(write)
    with pytest.raises(ValueError, match="bad one"):
        committer.submit("bad one")
    assert committer.submit("good") is True


def test_callers_arriving_while_the_leader_waits_for_its_turn_join_its_batch() -> None:
    """The batch is taken once the writers' turn (another process committing) has come."""
    turn_wanted, turn_free = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    @contextmanager
    def turn() -> Iterator[None]:
        turn_wanted.set()
        assert turn_free.wait(10)
        yield

    def write(items: Sequence[str]) -> list[bool]:
        batches.append(list(items))
        return [True] * len(items)

    committer: GroupCommitter[str, bool] = GroupCommitter(write, turn=turn)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(committer.submit, "first")
        assert turn_wanted.wait(10)
        later = [pool.submit(committer.submit, f"late-{n}") for n in range(3)]
        time.sleep(0.2)  # the late ones queue up behind the leader waiting for its turn
        turn_free.set()
        assert first.result(10) is True
        assert all(f.result(10) is True for f in later)
    assert batches == [["first", "late-0", "late-1", "late-2"]]


def test_a_turn_that_cannot_be_taken_fails_its_batch_and_spares_the_next() -> None:
    attempts = 0

    @contextmanager
    def turn() -> Iterator[None]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("lock file unavailable")
        yield

    committer: GroupCommitter[str, bool] = GroupCommitter(
        lambda items: [True] * len(items), turn=turn
    )
    with pytest.raises(OSError, match="lock file unavailable"):
        committer.submit("lost")
    assert committer.submit("kept") is True


def test_the_next_batch_is_written_while_the_previous_one_flushes_and_shares_the_next_flush() -> (
    None
):
    """The flush runs outside the writers' turn: batches are written while an earlier one
    reaches the disk; they all share the one flush that follows, and nobody hears "stored"
    before a flush that began after their batch was written."""
    flush_started, flush_release = threading.Event(), threading.Event()
    events: list[str] = []
    holding_turn = threading.Lock()

    @contextmanager
    def turn() -> Iterator[None]:
        with holding_turn:
            yield

    def write(items: Sequence[str]) -> list[bool]:
        events.append("write " + ",".join(sorted(items)))
        return [True] * len(items)

    def flush() -> None:
        assert not holding_turn.locked(), "flushed while holding the writers' turn"
        events.append("flush")
        if events.count("flush") == 1:
            flush_started.set()
            assert flush_release.wait(10)

    committer: GroupCommitter[str, bool] = GroupCommitter(write, turn=turn, flush=flush)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(committer.submit, "first")
        assert flush_started.wait(10)
        later = [pool.submit(committer.submit, f"later-{n}") for n in range(3)]
        deadline = time.monotonic() + 10
        while sum(e.count("later") for e in events) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # written while the first batch's flush is still under way
        assert sum(e.count("later") for e in events) == 3
        time.sleep(0.1)
        assert not first.done() and not any(f.done() for f in later)  # none flushed yet
        flush_release.set()
        assert first.result(10) is True
        assert all(f.result(10) is True for f in later)
    assert events[0] == "write first" and events[1] == "flush"
    assert events[-1] == "flush" and events.count("flush") == 2  # one more flush for all three


def test_a_failed_flush_fails_every_caller_of_its_batch_and_spares_the_next() -> None:
    flushes = 0

    def flush() -> None:
        nonlocal flushes
        flushes += 1
        if flushes == 1:
            raise OSError("fdatasync: I/O error")

    committer: GroupCommitter[str, bool] = GroupCommitter(
        lambda items: [True] * len(items), flush=flush
    )
    with pytest.raises(OSError, match="I/O error"):
        committer.submit("written, not known to be durable")
    assert committer.submit("kept") is True


def test_a_batch_waiting_on_a_flush_that_fails_flushes_for_itself() -> None:
    flush_started, flush_release = threading.Event(), threading.Event()
    flushes = 0

    def flush() -> None:
        nonlocal flushes
        flushes += 1
        if flushes == 1:
            flush_started.set()
            assert flush_release.wait(10)
            raise OSError("fdatasync: I/O error")

    committer: GroupCommitter[str, bool] = GroupCommitter(
        lambda items: [True] * len(items), flush=flush
    )
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(committer.submit, "first")
        assert flush_started.wait(10)
        second = pool.submit(committer.submit, "second")  # written, waits on the first flush
        time.sleep(0.1)
        flush_release.set()
        with pytest.raises(OSError, match="I/O error"):
            first.result(10)
        assert second.result(10) is True
    assert flushes == 2


def test_a_batch_that_failed_to_write_is_not_flushed() -> None:
    flushes: list[int] = []

    def write(items: Sequence[str]) -> list[bool]:
        raise OSError("database is locked")

    committer: GroupCommitter[str, bool] = GroupCommitter(write, flush=lambda: flushes.append(1))
    with pytest.raises(OSError, match="locked"):
        committer.submit("lost")
    assert flushes == []


# ------------------------------------------------------------------ the queues


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_where(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield "sqlite", tmp_path
        return
    with pg_schema() as schema:
        yield "postgresql", schema


def test_concurrent_enqueues_share_transactions_and_each_is_stored_once(queue_where) -> None:  # type: ignore[no-untyped-def]
    backend, where = queue_where
    queue = open_queue(backend, where)
    gate = threading.Event()
    committer = queue._committer  # type: ignore[attr-defined]
    write = committer._write_batch

    def gated(rows):  # type: ignore[no-untyped-def]
        gate.wait(10)  # the first batch waits until everyone else queued behind it
        return write(rows)

    committer._write_batch = gated
    jobs = [
        NewJob(f"github:{n}", "github", "issue_comment", "acme/gitops", {"n": n}) for n in range(40)
    ]
    jobs.append(NewJob("github:7", "github", "issue_comment", "acme/gitops", {"n": "again"}))
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(queue.enqueue, job) for job in jobs]
        time.sleep(0.3)
        assert not any(f.done() for f in futures)  # nobody answered before a commit
        gate.set()
        results = [f.result(10) for f in futures]
    assert sum(results) == 40  # the redelivered id was stored once: one caller got False
    assert committer.batches < len(jobs)
    stored = [j["delivery_id"] for j in queue.recent(100)]
    assert sorted(stored) == sorted({j.delivery_id for j in jobs})
    queue.close()


# ------------------------------------------------------------------ killed right after answering


def _deliveries() -> Any:
    """The intake benchmark's stream of distinct signed `issue_comment.created` deliveries."""
    spec = importlib.util.spec_from_file_location("bench_intake", ROOT / "bench" / "intake.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.Deliveries(module.comment_templates(), GITHUB_SECRET)


def test_a_web_process_killed_right_after_answering_lost_no_acknowledged_delivery(
    fake_github, tmp_path: Path
) -> None:
    """Threaded `serve` (concurrent requests: group commit batches them) is SIGKILLed as soon
    as enough deliveries were acknowledged, with more in flight: every delivery that got its
    202 is in the queue."""
    db = tmp_path / "bot.db"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GITHUB_APP_ID": str(fake_github.app_id),
        "GITHUB_PRIVATE_KEY": fake_github.private_key_pem,
        "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "GITHUB_APP_SLUG": fake_github.app_slug,
        "GITHUB_API_URL": "http://127.0.0.1:9",
        "DATABASE_URL": f"sqlite:///{db}",
        "LOG_LEVEL": "WARNING",
    }
    bot = BotProcess.serve(env, tmp_path / "serve.log", workers=False).start()
    acknowledged: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    deliveries = _deliveries()

    def sender() -> None:
        session = requests.Session()
        for _ in range(200):
            delivery, headers, body = deliveries.take()
            try:
                response = session.post(f"{bot.url}/webhooks/github", data=body, headers=headers)
            except requests.RequestException:
                return  # the process is gone
            if response.status_code == 202:
                with lock:
                    acknowledged.append(delivery)
                    if len(acknowledged) >= 150:
                        enough.set()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(12)]
    try:
        for thread in threads:
            thread.start()
        assert enough.wait(60), bot.log()
        bot.kill()
        with lock:
            answered = list(acknowledged)
        for thread in threads:
            thread.join(30)
    finally:
        bot.kill()
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT delivery_id FROM jobs")}
    missing = [d for d in answered if f"github:{d}" not in stored]
    assert len(answered) >= 150
    assert missing == []


def test_a_pooled_postgres_connection_killed_since_its_last_use_costs_no_delivery() -> None:
    """Connections in steady use are not pinged before each enqueue (a round trip per
    delivery); one whose server process died meanwhile is replaced and the insert retried."""
    import psycopg
    from queue_helpers import PG_URL

    with pg_schema() as schema:
        queue = open_queue("postgresql", schema, pool_size=1)
        assert queue.enqueue(NewJob("github:before", "github", "ping", None, {}))
        with queue._pool.connection() as conn:  # type: ignore[attr-defined]
            pid = conn.info.backend_pid
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert queue.enqueue(NewJob("github:after", "github", "ping", None, {}))
        stored = {j["delivery_id"] for j in queue.recent(10)}
        assert stored == {"github:before", "github:after"}
        queue.close()
