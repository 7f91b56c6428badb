"""Group commit: concurrent enqueues of one process share one transaction and one flush.

Leader/follower, no thread of its own (safe across gunicorn's fork): the first caller to
find no batch in progress leads; callers arriving while it writes queue up and wait. When
the leader's batch has committed, it hands the lead to the oldest waiting caller, whose
batch is everything that queued meanwhile. Every caller returns (or raises) only after the
transaction holding its job committed or failed: a 202 still means "durably stored".
With one request at a time per process (gunicorn sync workers) every batch holds one job
and nothing changes.

A storage that can make a commit durable apart from writing it (SQLite's WAL: see
`SqliteJobQueue`) passes `flush`: the leader writes its batch under the writers' turn,
hands the lead on, and only then makes it durable, so the next batch is written while this
one reaches the disk. Flushes are grouped too: one at a time per process, each covering
every batch written before it began, so the batches written during a flush share the next
one. Callers still return only after a flush that covers their batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 64


class _Slot(Generic[Item, Result]):
    """One caller's job, its outcome, and the event that wakes it."""

    __slots__ = ("error", "finished", "item", "result", "wake")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.finished = False
        self.wake = threading.Event()


class GroupCommitter(Generic[Item, Result]):
    """Runs `write_batch` over the items of concurrent callers, one batch at a time.

    `write_batch(items)` must store all of them in one transaction and return one outcome
    per item (or an exception per item, raised to that caller alone); if it raises, every
    caller of that batch gets the exception. `turn`, when given, is held around taking the
    batch and writing it: the writers' lock of the storage (another process's commit).
    `flush`, when given, makes every batch written so far durable; it runs after the turn
    is released and before the batch's callers return, and if it raises they all get the
    exception (a batch waiting on a failed flush tries one of its own).
    """

    def __init__(
        self,
        write_batch: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        *,
        max_batch: int = MAX_BATCH,
        turn: Callable[[], AbstractContextManager[object]] = nullcontext,
        flush: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write_batch = write_batch
        self._turn = turn
        self._flush = flush
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[_Slot[Item, Result]] = []
        self._leading = False
        self.batches = 0  # how many transactions ran (tests and benchmarks read it)
        self._flush_state = threading.Condition()
        self._written = 0  # batches written so far, numbered from 1
        self._flushed = 0  # every batch up to this number is durable
        self._flushing = False

    def submit(self, item: Item) -> Result:
        """Store `item` with whatever else is waiting; return its outcome once committed."""
        slot: _Slot[Item, Result] = _Slot(item)
        with self._lock:
            self._pending.append(slot)
            lead = not self._leading
            self._leading = True
        if not lead:
            slot.wake.wait()
        if not slot.finished:  # leading: write what queued up, own slot included
            self._lead()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _take_batch(self) -> list[_Slot[Item, Result]]:
        with self._lock:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
        return batch

    def _lead(self) -> None:
        batch: list[_Slot[Item, Result]] = []
        number: int | None = None  # the batch's number once written
        try:
            # the batch is taken once the writer's turn has come, not before: what arrived
            # while waiting for it (another process committing) rides along
            with self._turn():
                batch = self._take_batch()
                outcomes = self._write_batch([s.item for s in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError("write_batch returned the wrong number of outcomes")
            with self._flush_state:  # numbered once written: a flush begun later covers it
                self._written += 1
                number = self._written
        except BaseException as exc:
            if not batch:  # the turn itself failed: it was this leader's own slot's to report
                batch = self._take_batch()
            for s in batch:
                s.error = exc
        else:
            for s, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    s.error = outcome
                else:
                    s.result = outcome
        self.batches += 1
        with self._lock:
            successor = self._pending[0] if self._pending else None
            self._leading = successor is not None
        if successor is not None:
            successor.wake.set()  # not finished: it leads the next batch, written meanwhile
        if number is not None and self._flush is not None:
            try:
                self._make_durable(number)
            except BaseException as exc:  # written but maybe not durable: nobody may say stored
                for s in batch:
                    s.error, s.result = exc, None
        with self._lock:
            for s in batch:
                s.finished = True
        for s in batch:
            s.wake.set()

    def _make_durable(self, number: int) -> None:
        """Return once batch `number` is durable: wait for a flush in progress, then flush
        (unless the one waited for began after this batch was written, and so covered it)."""
        assert self._flush is not None
        with self._flush_state:
            while self._flushing and self._flushed < number:
                self._flush_state.wait()
            if self._flushed >= number:
                return
            self._flushing = True
            covers = self._written
        flushed = False
        try:
            self._flush()
            flushed = True
        finally:
            with self._flush_state:
                self._flushing = False
                if flushed:
                    self._flushed = max(self._flushed, covers)
                self._flush_state.notify_all()
