"""A job's render budget: past its bytes or its time an environment ends "too large to
render" (nothing shown, nothing merged) instead of hours of CPU."""

from __future__ import annotations

import base64
import itertools
import sys
from pathlib import Path

from bot.core.config import load_config
from bot.core.promotion import build_plan
from bot.core.rendering import DiffBudget, render_changed
from bot.core.report import render_pull_request, render_status
from bot.core.types import PromotionRequest, RenderResult
from bot.gateways.kustomize import Renderer
from bot.gateways.localrepo import DirectorySnapshot

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fraud-detection"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
S3_SECRET = base64.b64encode((EXAMPLE / "k8s/base/rclone-s3.yaml").read_bytes()).decode()[:40]


def plan_with(budget: DiffBudget):
    config = load_config((EXAMPLE / ".gitops-bot.yaml").read_text())
    request = PromotionRequest(
        model="fraud-v2-candidate", version="8", environment="staging", source_uri=SOURCE,
        traffic=None, trigger="test",
    )  # fmt: skip
    renderer = Renderer(KUBECTL, isolation="off")
    return build_plan(config, DirectorySnapshot(EXAMPLE), request, renderer.render_pair, budget)


def test_within_budget_the_environment_renders_and_diffs():
    [diff] = plan_with(DiffBudget()).diffs
    assert diff.head.ok and diff.changes
    assert render_status(diff).key == "ok"


def test_renders_past_the_byte_budget_end_too_large_and_show_nothing():
    plan = plan_with(DiffBudget(max_bytes=6_000))
    [diff] = plan.diffs
    assert render_status(diff).key == "too-large"
    assert "exceed the 0.00572205 MiB" in diff.head.error
    assert (diff.changes, diff.unified_diff, diff.base.output, diff.head.output) == ((), "", "", "")
    assert render_changed(diff)  # counts as affected: its policy still applies
    body = render_pull_request(plan).body
    assert "Too large to render" in body and S3_SECRET not in body
    assert "/merge" not in body.split("Too large to render", 1)[1].split("</details>", 1)[0]


def test_diffing_past_the_time_budget_ends_too_large():
    ticks = itertools.count()
    # every look at the clock is one second later: the deadline passes mid-diff
    plan = plan_with(DiffBudget(seconds=3, clock=lambda: float(next(ticks))))
    [diff] = plan.diffs
    assert render_status(diff).key == "too-large"
    assert "longer than the 3 s a job may spend" in diff.head.error
    assert diff.base.output == "" and diff.unified_diff == ""


def test_a_failed_kustomize_build_is_not_mistaken_for_too_large():
    from bot.core.diff import diff_environment

    broken = RenderResult("o", ok=False, error="accumulating resources: too large to render")
    diff = diff_environment("e", "o", RenderResult("o", ok=True, output="a: 1\n"), broken)
    assert render_status(diff).key == "broken"
