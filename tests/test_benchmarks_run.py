"""The benchmarks in bench/ run end to end in a tiny smoke mode (their checks, not timings)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_intake_benchmark_queues_one_job_per_signed_delivery_without_calling_github(tmp_path):
    intake = _load("intake")
    out = tmp_path / "intake.json"
    report = intake.main(
        [
            "--requests",
            "25",
            "--rounds",
            "2",
            "--threads",
            "2",
            "--workers",
            "1",
            "--diagnose",
            "--base",  # this checkout once more, as the side a change is compared against
            str(ROOT),
            "--json",
            f"{out}",
        ]
    )
    assert report["bot"]["deliveries"] == report["floor"]["deliveries"] == 50
    assert report["bot"]["statuses"] == {"202": 50}
    assert report["floor"]["statuses"] == {"202": 50}
    assert len(report["round_ratios"]) == 2
    assert report["noqueue"]["statuses"] == {"202": 50}  # the diagnosis side: nothing kept
    assert report["base"]["statuses"] == {"202": 50}  # served from --base, its own queue
    assert report["bot_to_base_ratio"] > 0
    assert report["queued_jobs"] == report["bot_deliveries"] == 50 + intake.WARMUP
    assert report["one_job_per_delivery"] is True
    assert report["github_connections"] == 0
    assert json.loads(out.read_text())["queued_jobs"] == report["queued_jobs"]


def test_enqueue_benchmark_stores_exactly_the_writes_that_returned_on_every_side():
    enqueue = _load("enqueue")
    base = str(ROOT)  # this checkout once more, as the side a change is compared against
    report = enqueue.main(
        ["--processes", "2", "--threads", "2", "--duration", "0.3", "--rounds", "1", "--base", base]
    )
    (config,) = report["configurations"]
    assert set(config["per_second"]) == {"floor", "queue", "base"}
    assert all(rate > 0 for rate in config["per_second"].values())
    assert config["queue_to_floor"] > 0 and config["queue_to_base"] > 0


def test_floor_app_refuses_a_bad_signature_and_accepts_a_good_one():
    floor = _load("floor_app")
    intake = _load("intake")
    client = floor.create_app(b"s3cret").test_client()
    _, headers, body = intake.Deliveries(intake.comment_templates(), "s3cret").take()
    assert client.post("/webhooks/github", data=body, headers=headers).status_code == 202
    assert client.post("/webhooks/github", data=body + b" ", headers=headers).status_code == 401


def test_promotion_benchmark_counts_the_calls_around_the_pr_request(tmp_path):
    promotion = _load("promotion")
    out = tmp_path / "bench-promotion.json"
    report = promotion.main(["--rounds", "1", "--json", str(out), "--quiet"])
    calls = report["mlflow_promotion_calls"]
    assert calls["total"] == len(calls["calls"])
    position = calls["pr_request_position"]
    assert calls["calls"][position - 1] == "POST /repos/{owner}/{repo}/pulls"
    assert calls["before_pr_request"] == position - 1
    # the whole job goes on to check, merge and say so on the PR
    assert "PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge" in calls["calls"][position:]
    assert calls["calls"][-1] == "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
    production = report["production_by_comment"]["calls"]
    assert "POST /repos/{owner}/{repo}/pulls" in production["calls"]
    assert json.loads(out.read_text())["mlflow_promotion_calls"] == calls
    # nothing changed between the two reconcile rounds: every read of the second is a 304
    steady = report["steady_reconcile_round"]
    assert steady["total"] > 0 and steady["not_modified"] == steady["total"]


def test_plan_benchmark_runs_on_a_small_generated_repo():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "plan.py"),
            "--overlays",
            "101",
            "--repeat",
            "1",
            "--crds",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "generated (101 overlays)" in result.stdout and "ratio" in result.stdout
    assert "large render" in result.stdout
