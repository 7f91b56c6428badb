"""Conditional GETs (issue 11): an unchanged reconcile round is all 304s, free of rate
budget, with the same outcome; a change is read fresh; answers never cross installations;
the cache keeps to its byte budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from bot_harness import BotHarness, mlflow_model_version_created
from conftest import EXAMPLE_REPO

from bot.core.approval import APPROVAL_CHECK
from bot.gateways.github import GitHubApp, GitHubError
from bot.gateways.github_etags import ConditionalCache, ConditionalGets, Remembered, remember
from bot.gateways.queue import NewJob
from bot.settings import SettingsError, load_settings

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
OTHER_REPO = "acme/gitops-eu"
REVIEWS = "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"
CHECK_RUNS = "/repos/{owner}/{repo}/commits/{ref}/check-runs"
REQUIRED_CHECK = 'Required status check "ci/test" is expected.'
MERGE = ("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge")


def _reconcile(bot: BotHarness, repo: str, n: int) -> list[Any]:
    """One reconcile job of `repo`; the fake's calls it made (the installation's own)."""
    first = len(bot.fake.calls)
    assert bot.queue.enqueue(NewJob(f"reconcile:{repo}:{n}", "internal", "reconcile", repo, {}))
    bot.drain()
    assert bot.failed_jobs() == []
    return [c for c in bot.fake.calls[first:] if not c.path.endswith("/access_tokens")]


def _production_pr_waiting_for_approval(bot: BotHarness, fake: Any, repo: str) -> dict[str, Any]:
    """v8 auto-merged to staging, then `/promote production` by carol: a PR that needs
    alice's (or the team's) approval."""
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    staging = next(p for p in fake.prs(repo) if p["merged"])["number"]
    payload = fake.payload_issue_comment(repo, staging, "carol", "/promote production")
    assert bot.deliver_github("issue_comment", payload).status_code == 202
    bot.drain()
    assert bot.failed_jobs() == []
    (waiting,) = [p for p in fake.prs(repo) if p["state"] == "open"]
    return waiting


def _staging_pr_github_refused_to_merge(bot: BotHarness, fake: Any, repo: str) -> dict[str, Any]:
    """v8's staging PR, whose merge branch protection refused ("ci/test" never reported)."""
    fake.fail_next("PUT", r"/merge$", status=405, body={"message": REQUIRED_CHECK})
    bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
    bot.drain()
    (pr,) = [p for p in fake.prs(repo) if p["state"] == "open"]
    return pr


def _metric(text: str, prefix: str) -> float:
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(prefix))


@pytest.fixture
def bot(fake_github, gitops_repo, tmp_path):
    fake_github.set_permission(gitops_repo, "carol", "admin")
    fake_github.set_permission(gitops_repo, "alice", "write")
    fake_github.add_team_member("acme", "ml-platform", "carol")
    return BotHarness(fake_github, tmp_path, (gitops_repo,))


def test_an_unchanged_reconcile_round_is_all_304s_and_an_approval_is_read_fresh_and_merges(
    bot, fake_github, gitops_repo
):
    fake, repo = fake_github, gitops_repo
    installation = fake.installation_id(repo)
    fake.set_rate_limit(installation, 4000, limit=5000)
    pr = _production_pr_waiting_for_approval(bot, fake, repo)
    number = pr["number"]
    comments = fake.comments(repo, number)
    checks = fake.check_runs(repo, pr["head"]["sha"])

    _reconcile(bot, repo, 1)
    window = fake.rate_windows[installation]
    left = window.remaining
    budget = bot.runtime.budgets.installation(installation)
    spent_by_reconcile = budget.reconcile_spent()
    counter = bot.github.client(installation).counter
    not_modified = counter.statuses["304"]

    second = _reconcile(bot, repo, 2)
    listing = "\n".join(f"{c.method} {c.operation} -> {c.status}" for c in second)
    assert second, "reconcile read nothing"
    assert all(c.method == "GET" for c in second), listing  # nothing to write: same outcome
    assert all(c.status == 304 for c in second), listing
    assert counter.statuses["304"] - not_modified == len(second)  # the gateway saw them too
    assert ("GET", REVIEWS) in {(c.method, c.operation) for c in second}
    # the same outcome: still waiting, not a comment or check run more
    assert not fake.pr(repo, number)["merged"]
    assert fake.comments(repo, number) == comments
    assert fake.check_runs(repo, pr["head"]["sha"]) == checks
    # 304s are free: neither GitHub's window nor reconcile's share moved
    assert window.remaining == left
    assert budget.reconcile_spent() == spent_by_reconcile
    text = bot.metrics_text()
    reviews_304 = f'gitops_bot_github_api_calls_total{{operation="GET {REVIEWS}",status="304"}}'
    assert _metric(text, reviews_304) >= 1  # a 304 is a status of its own in the metrics

    # alice approves; the review event never reaches the bot
    fake.add_review(repo, number, "alice", "APPROVED")
    third = _reconcile(bot, repo, 3)
    statuses = {(c.method, c.operation): c.status for c in third}
    assert statuses[("GET", REVIEWS)] == 200  # read fresh, not the remembered body
    assert MERGE in statuses
    assert fake.pr(repo, number)["merged"]


def test_a_completed_check_run_is_read_fresh_after_304_rounds(bot, fake_github, gitops_repo):
    fake, repo = fake_github, gitops_repo
    pr = _staging_pr_github_refused_to_merge(bot, fake, repo)
    sha = pr["head"]["sha"]
    run = fake.add_check_run(repo, sha, "ci/test", status="in_progress")
    _reconcile(bot, repo, 1)  # ci/test is running: the gate check says it waits ...
    _reconcile(bot, repo, 2)  # ... which the check runs read here shows
    quiet = _reconcile(bot, repo, 3)
    listing = "\n".join(f"{c.method} {c.operation} -> {c.status}" for c in quiet)
    assert all(c.status == 304 for c in quiet), listing
    assert CHECK_RUNS in {c.operation for c in quiet}
    assert not fake.pr(repo, pr["number"])["merged"]

    fake.complete_check_run(repo, run, conclusion="success")
    after = _reconcile(bot, repo, 4)
    assert next(c.status for c in after if c.operation == CHECK_RUNS) == 200
    assert fake.pr(repo, pr["number"])["merged"]


def test_two_installations_reading_the_same_url_never_share_a_cached_body(
    fake_github, gitops_repo, tmp_path
):
    fake = fake_github
    fake.create_repo(OTHER_REPO, source_dir=EXAMPLE_REPO, default_branch="main")
    mine, other = fake.installation_id(gitops_repo), fake.installation_id(OTHER_REPO)
    assert mine != other
    sent: list[tuple[int | None, str]] = []  # (installation, If-None-Match) of each GET
    handle = fake.handle

    def spy(method: str, url: str, headers: dict[str, str], body: Any) -> Any:
        token = headers.get("Authorization", "").partition(" ")[2]
        if method == "GET" and "/pulls" in url:
            owner = fake.tokens.get(token, (None,))[0]
            sent.append((owner, headers.get("If-None-Match", "")))
        return handle(method, url, headers, body)

    fake.handle = spy  # type: ignore[method-assign]
    app = GitHubApp(fake.app_id, fake.private_key_pem, fake.api_url, sleep=lambda _s: None)
    fake.push_commit(gitops_repo, "feature", {"README.md": b"hi\n"})
    number = fake.open_pr(gitops_repo, "feature", title="Feature")
    a, b = app.client(mine), app.client(other)
    first = a.get_pr(gitops_repo, number)
    assert a.get_pr(gitops_repo, number) == first
    assert sent[-1][0] == mine and sent[-1][1]  # asked with the remembered ETag ...
    assert fake.calls[-1].status == 304  # ... and got a 304

    # the other installation asks for the very same URL: no validator of the first one
    # goes out, and it gets GitHub's own answer (not found there), never the kept body
    with pytest.raises(GitHubError) as refused:
        b.get_pr(gitops_repo, number)
    assert refused.value.status == 404
    assert [h for inst, h in sent if inst == other] == [""]
    assert fake.calls[-1].status == 404


def test_the_cache_stays_within_its_byte_budget_dropping_the_least_recently_used():
    def entry(n: int, size: int) -> Remembered:
        return Remembered(f'W/"{n}"', None, {}, b"x" * (size - 300), "utf-8", size)

    cache = ConditionalCache(max_bytes=10_000)
    keys = [("installation:1", f"https://api.github.com/x/{n}", "", "") for n in range(6)]
    for key in keys[:4]:
        cache.put(key, entry(len(key[1]), 3_000))
    assert cache.bytes == 9_000 and len(cache) == 3
    assert cache.get(keys[0]) is None  # the oldest went first
    assert cache.get(keys[1]) is not None  # used: now the most recent
    cache.put(keys[4], entry(4, 3_000))
    assert cache.get(keys[2]) is None and cache.get(keys[1]) is not None
    assert cache.bytes <= cache.max_bytes
    cache.put(keys[5], entry(5, 20_000))  # larger than the whole budget: never kept
    assert cache.get(keys[5]) is None and cache.bytes <= cache.max_bytes
    cache.forget_scope("installation:1")
    assert cache.bytes == 0 and len(cache) == 0


def test_a_small_cache_through_the_gateway_keeps_to_its_budget_and_rereads_what_it_dropped(
    fake_github, gitops_repo
):
    fake = fake_github
    for n in range(3):
        fake.push_commit(gitops_repo, f"f{n}", {"README.md": f"{n}\n".encode()})
    numbers = [fake.open_pr(gitops_repo, f"f{n}", title=f"F{n}") for n in range(3)]
    probe = GitHubApp(fake.app_id, fake.private_key_pem, fake.api_url)
    probe.client(fake.installation_id(gitops_repo)).get_pr(gitops_repo, numbers[0])
    budget = probe.etags.bytes * 3 // 2  # room for one pull request's answer, not two
    app = GitHubApp(
        fake.app_id, fake.private_key_pem, fake.api_url, sleep=lambda _s: None,
        etag_cache_bytes=budget,
    )  # fmt: skip
    client = app.client(fake.installation_id(gitops_repo))
    for number in numbers:
        client.get_pr(gitops_repo, number)
        assert app.etags.bytes <= budget
    assert len(app.etags) == 1
    client.get_pr(gitops_repo, numbers[-1])
    assert fake.calls[-1].status == 304  # the most recent one is kept ...
    client.get_pr(gitops_repo, numbers[0])
    assert fake.calls[-1].status == 200  # ... the oldest was dropped: asked in full


def _response(status: int, headers: dict[str, str], body: bytes = b"") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    response._content = body
    response.encoding = "utf-8"
    return response


def test_only_plain_gets_with_validators_are_kept_and_errors_drop_them():
    gets = ConditionalGets(ConditionalCache(1 << 20), "installation:7")
    url = "https://api.github.com/repos/o/r/pulls?state=open&per_page=100"
    accept = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    assert gets.key("POST", url, accept) is None  # writes go out as they are
    assert gets.key("GET", url, {**accept, "If-None-Match": 'W/"1"'}) is None  # caller's own
    key = gets.key("GET", url, accept)
    assert key is not None and key[0] == "installation:7" and "state=open" in key[1]
    assert key != gets.key("GET", url, {**accept, "Accept": "application/vnd.github.raw+json"})

    assert remember(_response(200, {}, b"[]")) is None  # no validator
    assert remember(_response(200, {"ETag": '"a"', "Cache-Control": "no-store"})) is None
    assert remember(_response(201, {"ETag": '"a"'})) is None
    # a Last-Modified within a minute of the answer's Date could hide a later change
    recent = {"Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"}
    assert remember(_response(200, {**recent, "Date": "Tue, 01 Dec 2026 10:00:30 GMT"})) is None
    old = remember(_response(200, {**recent, "Date": "Tue, 01 Dec 2026 11:00:00 GMT"}))
    assert old is not None and old.validators() == {"If-Modified-Since": recent["Last-Modified"]}

    fresh = {"ETag": 'W/"v1"', "Link": '<https://x/?page=2>; rel="next"'}
    kept = _response(200, {**fresh, "X-RateLimit-Remaining": "10"}, b'[{"number": 1}]')
    assert gets.answer(key, None, kept) is kept
    sent = gets.lookup(key)
    assert sent is not None and sent.validators() == {"If-None-Match": 'W/"v1"'}
    # a 304 stands for the kept 200: its body and Link, the 304's own rate headers
    answer = gets.answer(
        key, sent, _response(304, {"ETag": 'W/"v1"', "X-RateLimit-Remaining": "9"})
    )
    assert (answer.status_code, answer.json()) == (200, [{"number": 1}])
    assert answer.headers["X-RateLimit-Remaining"] == "9"
    assert answer.headers["Link"] == fresh["Link"]
    # an error (e.g. access lost) drops what was kept
    assert gets.answer(key, sent, _response(404, {}, b"{}")).status_code == 404
    assert gets.lookup(key) is None


def test_a_zero_cache_sends_no_conditional_requests(fake_github, gitops_repo, tmp_path: Path):
    bot = BotHarness(fake_github, tmp_path, (gitops_repo,), GITHUB_ETAG_CACHE_MIB="0")
    for n in (1, 2):
        calls = _reconcile(bot, gitops_repo, n)
    assert calls and all(c.status == 200 for c in calls)


def test_an_installation_change_drops_what_its_gets_kept(fake_github, gitops_repo):
    fake = fake_github
    app = GitHubApp(fake.app_id, fake.private_key_pem, fake.api_url, sleep=lambda _s: None)
    app.client_for_repo(gitops_repo).list_open_prs(gitops_repo)
    assert len(app.etags) > 0
    app.forget_installation(gitops_repo)  # e.g. an `installation_repositories` event
    assert len(app.etags) == 0


def test_the_cache_size_setting_is_mebibytes_and_never_negative():
    assert load_settings({}).github_etag_cache_mib == 32
    assert load_settings({"GITHUB_ETAG_CACHE_MIB": "0"}).github_etag_cache_mib == 0
    with pytest.raises(SettingsError):
        load_settings({"GITHUB_ETAG_CACHE_MIB": "-1"})


def _gate_runs(fake: Any, repo: str, sha: str) -> list[dict[str, Any]]:
    return [r for r in fake.check_runs(repo, sha) if r["name"] == APPROVAL_CHECK]


def test_a_refused_merge_is_not_retried_until_something_it_depends_on_changes(
    bot, fake_github, gitops_repo
):
    """Reconcile does not retry a merge GitHub refused while nothing it depends on changed:
    each retry would flip the approval check to "ready" and back, which on GitHub is a new
    check run (a completed run keeps its verdict) every round. A required check finishing
    changes the inputs: then it tries again, and merges."""
    fake, repo = fake_github, gitops_repo
    pr = _staging_pr_github_refused_to_merge(bot, fake, repo)
    sha = pr["head"]["sha"]
    runs = _gate_runs(fake, repo, sha)
    assert runs[-1]["status"] == "in_progress"
    assert "Merge refused by GitHub" in runs[-1]["output"]["title"]
    comments = fake.comments(repo, pr["number"])

    for n in (1, 2):
        calls = _reconcile(bot, repo, n)
        listing = "\n".join(f"{c.method} {c.operation} -> {c.status}" for c in calls)
        assert all(c.method == "GET" for c in calls), listing  # no merge, no check-run write
        assert _gate_runs(fake, repo, sha) == runs
        assert fake.comments(repo, pr["number"]) == comments
        assert not fake.pr(repo, pr["number"])["merged"]

    fake.add_check_run(repo, sha, "ci/test", status="completed", conclusion="success")
    calls = _reconcile(bot, repo, 3)
    assert MERGE in {(c.method, c.operation) for c in calls}
    assert fake.pr(repo, pr["number"])["merged"]
    gate = _gate_runs(fake, repo, sha)
    assert len(gate) == len(runs)  # the pending run itself turned successful
    assert (gate[-1]["status"], gate[-1]["conclusion"]) == ("completed", "success")
