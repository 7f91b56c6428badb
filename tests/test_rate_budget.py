"""The GitHub REST rate budget per installation: the metric follows each installation's
headers, a job stops before the last calls and retries at the reset, reconcile keeps to its
share of the window (through the fake GitHub, which keeps a window per installation)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from bot_harness import BotHarness, mlflow_model_version_created
from conftest import EXAMPLE_REPO

from bot.gateways.queue import NewJob
from bot.gateways.rate_budget import BudgetPolicy, InstallationBudget, RateBudgetExceeded
from bot.settings import SettingsError, load_settings

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
OTHER_REPO = "acme/gitops-eu"


def _metric(text: str, name: str, installation: int) -> float:
    prefix = f'{name}{{installation="{installation}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, f"no {prefix!r} in /metrics"
    return float(lines[0].rsplit(" ", 1)[1])


def _installation(fake, repo: str) -> int:  # type: ignore[no-untyped-def]
    return int(fake.repo(repo).installation_id)


def _reconcile(bot: BotHarness, repo: str, n: int) -> None:
    assert bot.queue.enqueue(NewJob(f"reconcile:{repo}:{n}", "internal", "reconcile", repo, {}))
    bot.drain()


def test_rate_limit_metric_follows_the_headers_of_each_installation(
    fake_github, gitops_repo, tmp_path: Path
) -> None:
    fake = fake_github
    fake.create_repo(OTHER_REPO, source_dir=EXAMPLE_REPO, default_branch="main")
    first, second = _installation(fake, gitops_repo), _installation(fake, OTHER_REPO)
    assert first != second
    fake.set_rate_limit(first, 4321, limit=5000)
    fake.set_rate_limit(second, 777, limit=15000, reset_in=1200)
    bot = BotHarness(fake, tmp_path, (gitops_repo, OTHER_REPO))

    bot.github.client_for_repo(gitops_repo).default_branch(gitops_repo)
    bot.github.client_for_repo(OTHER_REPO).default_branch(OTHER_REPO)
    text = bot.metrics_text()
    for installation in (first, second):
        window = fake.rate_windows[installation]
        name = "gitops_bot_github_rate_limit"
        assert _metric(text, f"{name}_remaining", installation) == window.remaining
        assert _metric(text, name, installation) == window.limit
        assert _metric(text, f"{name}_reset_timestamp_seconds", installation) == window.reset
    assert fake.rate_windows[first].remaining < 4321  # the calls were counted

    # later calls of one installation move its gauge only
    before = _metric(text, "gitops_bot_github_rate_limit_remaining", second)
    bot.github.client_for_repo(gitops_repo).default_branch(gitops_repo)
    text = bot.metrics_text()
    remaining = fake.rate_windows[first].remaining
    assert _metric(text, "gitops_bot_github_rate_limit_remaining", first) == remaining
    assert _metric(text, "gitops_bot_github_rate_limit_remaining", second) == before


def test_a_job_backs_off_until_the_reset_instead_of_spending_the_last_calls(
    fake_github, gitops_repo, tmp_path: Path
) -> None:
    fake = fake_github
    installation = _installation(fake, gitops_repo)
    fake.set_rate_limit(installation, 26, limit=5000, reset_in=1800)
    bot = BotHarness(fake, tmp_path, (gitops_repo,), GITHUB_RATE_FLOOR="20")

    assert (
        bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE)).status_code
        == 202
    )
    bot.drain(limit=1)

    window = fake.rate_windows[installation]
    assert window.remaining == 20  # it stopped at the floor: the last 20 calls are left
    assert not [c for c in fake.calls if c.status == 403]  # and never ran into GitHub's 403
    with sqlite3.connect(tmp_path / "bot.db") as conn:
        status, error, run_at = conn.execute(
            "SELECT status, last_error, run_at FROM jobs WHERE kind = 'model_version.created'"
        ).fetchone()
    assert status == "queued"  # to run again ...
    assert "nearly exhausted" in error and "20 kept back" in error
    assert run_at >= window.reset - 2  # ... once the window has refilled


def test_reconcile_keeps_to_its_share_of_the_window_then_skips_until_the_reset(
    fake_github, gitops_repo, tmp_path: Path
) -> None:
    fake = fake_github
    installation = _installation(fake, gitops_repo)
    fake.set_rate_limit(installation, 100, limit=100)
    # every round pays for its reads: with conditional GETs an unchanged round costs nothing
    # (tests/test_conditional_requests.py)
    bot = BotHarness(
        fake,
        tmp_path,
        (gitops_repo,),
        RECONCILE_RATE_SHARE="0.09",
        GITHUB_RATE_FLOOR="0",
        GITHUB_ETAG_CACHE_MIB="0",
    )
    window = fake.rate_windows[installation]

    for n in range(8):
        _reconcile(bot, gitops_repo, n)
    # 9% of the window, not a call more: the run that reached it was stopped half-way
    assert 100 - window.remaining == 9
    assert bot.failed_jobs() == []  # held back is not a failure

    spent = window.remaining
    calls = len(fake.calls)
    _reconcile(bot, gitops_repo, 99)
    assert (window.remaining, len(fake.calls)) == (spent, calls)  # skipped: no call at all
    assert "gitops_bot_reconcile_held_back_total" in bot.metrics_text()

    # a promotion is not reconcile: it still runs on the rest of the window
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    assert bot.failed_jobs() == []
    assert window.remaining < spent


def test_reconcile_waits_for_the_reset_when_the_window_is_below_the_reserve(
    fake_github, gitops_repo, tmp_path: Path
) -> None:
    fake = fake_github
    installation = _installation(fake, gitops_repo)
    fake.set_rate_limit(installation, 60, limit=1000)  # 6% left, the reserve is 10%
    bot = BotHarness(fake, tmp_path, (gitops_repo,), GITHUB_RATE_FLOOR="0")
    bot.github.client_for_repo(gitops_repo).default_branch(gitops_repo)  # learn the window
    left = fake.rate_windows[installation].remaining

    _reconcile(bot, gitops_repo, 1)
    assert fake.rate_windows[installation].remaining == left
    assert bot.runtime.budgets.reconcile_wait(installation) > 1000


# ------------------------------------------------------------------ the pacing decision


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _headers(remaining: int, limit: int, reset: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(int(reset)),
    }


def test_reconcile_wait_lasts_until_the_reset_and_a_new_window_frees_it() -> None:
    from bot.gateways.rate_budget import RECONCILE, spending_on

    clock = Clock(1_000_000.0)
    budget = InstallationBudget(7, BudgetPolicy(reconcile_share=0.02), clock=clock)
    with spending_on(RECONCILE):
        for n in range(20):
            budget.before_request()
            budget.observe(_headers(999 - n, 1000, clock.now + 600), "200")
        with pytest.raises(RateBudgetExceeded) as info:
            budget.before_request()
    assert info.value.retry_after == 600
    assert budget.reconcile_wait() == 600
    clock.now += 601  # the window refilled
    assert budget.reconcile_wait() == 0
    budget.observe(_headers(4999, 5000, clock.now + 3600), "200")  # seen by a job's call
    assert budget.reconcile_spent() == 0 and budget.reconcile_wait() == 0


def test_calls_of_other_resources_and_not_modified_answers_do_not_count() -> None:
    from bot.gateways.rate_budget import RECONCILE, spending_on

    budget = InstallationBudget(7, BudgetPolicy(), clock=Clock(0.0))
    budget.observe(_headers(10, 30, 100), "200")
    with spending_on(RECONCILE):
        budget.observe({**_headers(1, 30, 100), "X-RateLimit-Resource": "search"}, "200")
        budget.observe(_headers(10, 30, 100), "304")
    assert budget.window is not None and budget.window.remaining == 10
    assert budget.reconcile_spent() == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("RECONCILE_RATE_SHARE", "1.5"), ("GITHUB_RATE_RESERVE", "-0.1"), ("GITHUB_RATE_FLOOR", "-1")],
)
def test_rate_budget_settings_out_of_range_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_a_budget_is_only_as_old_as_its_window() -> None:
    clock = Clock(time.time())
    budget = InstallationBudget(7, BudgetPolicy(floor=5), clock=clock)
    budget.observe(_headers(3, 5000, clock.now + 60), "200")
    with pytest.raises(RateBudgetExceeded, match="3 of 5000 calls left"):
        budget.before_request()
    clock.now += 61
    budget.before_request()  # the window has refilled since: go
