"""Per-installation GitHub REST rate budget, read from response headers and spent with care.

GitHub gives every installation a window of calls (`X-RateLimit-Limit`, 5,000 an hour and
up) and says after each response how many are left (`X-RateLimit-Remaining`) and when the
window refills (`X-RateLimit-Reset`, Unix seconds). Three rules use it:

- below the *floor* (a few calls) no job spends more: the request is refused before it is
  sent with a `RateBudgetExceeded` (a `TransientError`) carrying the wait until the reset,
  so the job is retried then instead of failing half-way on a 403;
- below the *reserve* (a share of the limit) non-urgent work — the reconcile loop — waits
  for the reset, keeping what is left for deliveries people are waiting on;
- reconcile may spend at most its *share* of each window (`RECONCILE_RATE_SHARE`).

Calls are attributed to reconcile while the calling thread runs inside
`spending_on(RECONCILE)`.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.core.errors import TransientError

RECONCILE = "reconcile"
JOB = "job"

DEFAULT_FLOOR = 20
DEFAULT_RESERVE_SHARE = 0.1
DEFAULT_RECONCILE_SHARE = 0.2

_spending: contextvars.ContextVar[str] = contextvars.ContextVar("rate_spending", default=JOB)


@contextlib.contextmanager
def spending_on(category: str) -> Iterator[None]:
    """Attribute the GitHub calls this thread makes inside the block to `category`."""
    token = _spending.set(category)
    try:
        yield
    finally:
        _spending.reset(token)


@dataclass(frozen=True)
class RateWindow:
    """The last rate-limit headers GitHub sent for one installation."""

    limit: int
    remaining: int
    reset: float  # Unix seconds: when the window refills


@dataclass(frozen=True)
class BudgetPolicy:
    """How much of each window is kept back, and for whom."""

    floor: int = DEFAULT_FLOOR  # no job spends the last `floor` calls
    reserve_share: float = DEFAULT_RESERVE_SHARE  # below it, non-urgent work waits
    reconcile_share: float = DEFAULT_RECONCILE_SHARE  # reconcile's cap per window

    def __post_init__(self) -> None:
        if self.floor < 0:
            raise ValueError("the rate floor must not be negative")
        for name in ("reserve_share", "reconcile_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")


class RateBudgetExceeded(TransientError):
    """Work held back until the installation's rate window resets (`retry_after` seconds)."""

    def __init__(self, message: str, retry_after: float, installation_id: int) -> None:
        super().__init__(message, retry_after)
        self.installation_id = installation_id


def parse_window(headers: Mapping[str, Any] | None) -> RateWindow | None:
    """The REST ("core") window in a response's headers; None when absent or another
    resource's (search and GraphQL have budgets of their own)."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    resource = lowered.get("x-ratelimit-resource", "core")
    if resource != "core":
        return None
    try:
        limit = int(lowered["x-ratelimit-limit"])
        remaining = int(lowered["x-ratelimit-remaining"])
        reset = float(lowered["x-ratelimit-reset"])
    except (KeyError, ValueError):
        return None
    return RateWindow(limit=limit, remaining=remaining, reset=reset)


def _clock_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")


class InstallationBudget:
    """One installation's current window and what reconcile spent of it (thread-safe)."""

    def __init__(
        self,
        installation_id: int,
        policy: BudgetPolicy,
        *,
        clock: Callable[[], float] = time.time,
        listener: Callable[[int, RateWindow], None] | None = None,
    ) -> None:
        self.installation_id = installation_id
        self.policy = policy
        self._clock = clock
        self._listener = listener
        self._lock = threading.Lock()
        self.window: RateWindow | None = None
        self._reconcile_spent = 0
        self._reconcile_reset: float | None = None  # the window that spending belongs to

    def observe(self, headers: Mapping[str, Any] | None, status: str) -> None:
        """Take in one response's headers; count the call against reconcile's share."""
        window = parse_window(headers)
        with self._lock:
            if window is not None:
                self.window = window
            current = self.window
            # what GitHub counts carries the headers (an archive download from codeload does
            # not); a 304 (conditional request) costs nothing; a request that got no answer
            # may or may not have counted: count it, to stay on the safe side
            counted = (window is not None and status != "304") or status == "error"
            if _spending.get() == RECONCILE and counted and current is not None:
                if self._reconcile_reset != current.reset:
                    self._reconcile_reset, self._reconcile_spent = current.reset, 0
                self._reconcile_spent += 1
        if window is not None and self._listener is not None:
            self._listener(self.installation_id, window)

    def reconcile_spent(self) -> int:
        """Calls reconcile made in the current window."""
        with self._lock:
            window = self.window
            if window is None or self._reconcile_reset != window.reset:
                return 0
            return self._reconcile_spent

    def _live_window(self) -> RateWindow | None:
        """The window, unless it has already refilled (then nothing is known to be short)."""
        window = self.window
        if window is None or self._clock() >= window.reset:
            return None
        return window

    def reconcile_wait(self) -> float:
        """Seconds reconcile must wait before spending here (0: it may go now)."""
        window = self._live_window()
        if window is None:
            return 0.0
        wait = max(1.0, window.reset - self._clock())
        if window.remaining < self.policy.reserve_share * window.limit:
            return wait
        if self.reconcile_spent() >= self.policy.reconcile_share * window.limit:
            return wait
        return 0.0

    def before_request(self) -> None:
        """Refuse a request that would dig into what is kept back (raises RateBudgetExceeded)."""
        window = self._live_window()
        if window is None:
            return
        wait = max(1.0, window.reset - self._clock())
        resets = _clock_time(window.reset)
        if _spending.get() == RECONCILE and self.reconcile_wait() > 0:
            raise RateBudgetExceeded(
                f"reconcile held back: installation {self.installation_id} has "
                f"{window.remaining} of {window.limit} GitHub calls left and reconcile spent "
                f"{self.reconcile_spent()} (its share is {self.policy.reconcile_share:.0%}); "
                f"the window resets at {resets}",
                wait,
                self.installation_id,
            )
        if window.remaining <= self.policy.floor:
            raise RateBudgetExceeded(
                f"GitHub rate budget of installation {self.installation_id} nearly exhausted "
                f"({window.remaining} of {window.limit} calls left, {self.policy.floor} kept "
                f"back): waiting for the reset at {resets}",
                wait,
                self.installation_id,
            )


class RateBudgets:
    """The budgets of every installation this process talks to, created on first use."""

    def __init__(
        self,
        policy: BudgetPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        listener: Callable[[int, RateWindow], None] | None = None,
    ) -> None:
        self.policy = policy or BudgetPolicy()
        self._clock = clock
        self._listener = listener
        self._lock = threading.Lock()
        self._budgets: dict[int, InstallationBudget] = {}

    def installation(self, installation_id: int) -> InstallationBudget:
        """The budget of one installation."""
        with self._lock:
            budget = self._budgets.get(installation_id)
            if budget is None:
                budget = InstallationBudget(
                    installation_id, self.policy, clock=self._clock, listener=self._listener
                )
                self._budgets[installation_id] = budget
            return budget

    def reconcile_wait(self, installation_id: int) -> float:
        """Seconds the reconcile of a repository of this installation must wait (0: go).

        The pacing decision of the reconcile loop: it is over its share of the window, or
        the window is below the reserve, until the window resets."""
        return self.installation(installation_id).reconcile_wait()


def attach(app: Any, budgets: RateBudgets) -> None:
    """Give each installation client `app` (a `GitHubApp`) hands out the budget of its
    installation: its requests are checked against it and its responses update it."""
    original = app.client

    def budgeted_client(installation_id: int) -> Any:
        client = original(installation_id)
        client.counter.budget = budgets.installation(int(installation_id))
        return client

    app.client = budgeted_client
    app.rate_budgets = budgets
