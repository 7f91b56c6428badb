"""Broken overlays are reported in full: every missing file, a one-line stderr summary, exit 3
when this change breaks the build and 5 when it was already broken, and no `/merge` offered."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.config import load_config
from bot.core.report import render_pull_request
from bot.core.types import EnvironmentDiff, Plan, PromotionRequest, RenderResult

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fraud-detection"
SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
STAGING = "k8s/overlays/staging"
REMOVED = ("k8s/base/canary.yaml", "k8s/base/experiment.yaml", "k8s/base/kustomizeconfig.yaml")


def example(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    return repo


def plan(repo: Path) -> int:
    return main(
        ["plan", str(repo), "--model", "fraud-v2-candidate", "--version", "8",
         "--source", SOURCE, "--to", "staging"]
    )  # fmt: skip


def test_overlay_already_broken_names_every_missing_file_and_exits_5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = example(tmp_path)
    for path in REMOVED:
        (repo / path).unlink()
    assert plan(repo) == 5
    out, err = capsys.readouterr()
    listed = "".join(f"- `{path}`\n" for path in REMOVED)
    assert f"All 3 files the build references but the commit does not have:\n{listed}" in out
    assert "❌ already broken on the base commit" in out
    assert err == (
        f"gitops-bot: staging ({STAGING}) does not build, already broken on the base commit: "
        f"3 missing files: {', '.join(REMOVED)} — exit 5\n"
    )


def test_change_that_breaks_the_build_names_every_missing_file_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = example(tmp_path)
    config = repo / ".gitops-bot.yaml"
    config.write_text(
        config.read_text().replace(
            "    traffic:",
            "      - file: kustomization.yaml\n"
            "        field: patches.[path=model-config.yaml].path\n"
            '        value: "model-config-{version}.yaml"\n'
            "      - file: kustomization.yaml\n"
            "        field: patches.[path=experiment-patch.yaml].path\n"
            '        value: "experiment-{version}.yaml"\n'
            "    traffic:",
        )
    )
    assert plan(repo) == 3
    out, err = capsys.readouterr()
    assert "❌ broken by this change" in out
    assert (
        "All 2 files the build references but the commit does not have:\n"
        f"- `{STAGING}/experiment-8.yaml`\n- `{STAGING}/model-config-8.yaml`\n"
    ) in out
    assert err == (
        f"gitops-bot: staging ({STAGING}) does not build, broken by this change: 2 missing "
        f"files: {STAGING}/experiment-8.yaml, {STAGING}/model-config-8.yaml — exit 3\n"
    )


def broken_plan(base_ok: bool) -> Plan:
    config = load_config((EXAMPLE / ".gitops-bot.yaml").read_text())
    staging = config.environments[0]
    failed = RenderResult(STAGING, ok=False, error="error: missing")
    diff = EnvironmentDiff(
        "staging",
        STAGING,
        RenderResult(STAGING, ok=True, output="a: 1\n") if base_ok else failed,
        failed,
        head_missing=(f"{STAGING}/a.yaml",),
    )
    request = PromotionRequest(model="fraud-v2-candidate", version="8", environment="staging")
    return Plan(
        request=request,
        branch="gitops-bot/staging/fraud-v2-candidate-8",
        title="Promote fraud-detector v8 to staging",
        changes=(),
        diffs=(diff,),
        environment=staging,
        model=config.models[0],
        affected=(staging,),
    )


@pytest.mark.parametrize("base_ok", [True, False])
def test_pr_body_of_an_environment_that_does_not_build_offers_no_merge(base_ok: bool) -> None:
    body = render_pull_request(broken_plan(base_ok)).body
    label = "broken by this change" if base_ok else "already broken on the base commit"
    assert (
        "❌ **Not mergeable while an environment does not build.** "
        f"**staging** (`{STAGING}`) {label}."
    ) in body
    assert "| `/merge` |" not in body
    assert "Comment `/merge`" not in body
    assert "Merges automatically" not in body  # staging auto-merges, but not while broken
    assert (
        f"The file the build references but the commit does not have:\n- `{STAGING}/a.yaml`"
    ) in body


def test_chatops_reply_for_a_promotion_that_does_not_build_says_it_cannot_merge() -> None:
    from types import SimpleNamespace

    from bot.core.templating import render_template

    reply = render_template(
        "command_result.md.j2",
        ok=True,
        published=SimpleNamespace(number=5),
        plan=broken_plan(base_ok=True),
        command="/promote",
        author="carol",
        message="",
    )
    assert reply == (
        "✅ Promotion PR #5: **Promote fraud-detector v8 to staging** (staging). "
        "❌ It cannot merge: staging does not build (see the PR)."
    )


def test_a_change_breaking_one_overlay_while_another_was_already_broken_exits_3() -> None:
    from dataclasses import replace

    from bot.cli import EXIT_ALREADY_BROKEN, EXIT_BROKEN, plan_exit_code

    already = broken_plan(base_ok=False)
    assert plan_exit_code(already) == EXIT_ALREADY_BROKEN == 5
    newly = broken_plan(base_ok=True).diffs[0]
    both = replace(already, diffs=(*already.diffs, replace(newly, environment="production")))
    assert plan_exit_code(both) == EXIT_BROKEN == 3
