"""`gitops-bot plan` and `check-config` on a local checkout, as a user runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fraud-detection"
SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"


def test_readme_plan_changes_the_served_model_uri_in_staging_only(capsys):
    code = main(
        ["plan", str(EXAMPLE), "--model", "fraud-v2-candidate", "--version", "8",
         "--source", SOURCE, "--to", "staging", "--traffic", "90/10"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "Branch: gitops-bot/staging/fraud-v2-candidate-8" in out
    assert (
        f"`spec.storageUri`: `s3://acme-ml-models/fraud-detector/6/artifacts/model` → `{SOURCE}`"
        in out
    )
    assert "+  storageUri: " + SOURCE in out
    assert "Model/fraud-detection-staging/fraud-v2-candidate" in out
    assert "fraud-detection/" not in out.replace("fraud-detection-staging", "")  # no production
    assert "`spec.candidates[name=fraud-v1-baseline].weight`: `50` → `90`" in out
    assert "`spec.candidates[name=fraud-v2-candidate].weight`: `50` → `10`" in out


def test_plan_write_applies_exactly_the_target_edits(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    before = (repo / "k8s/overlays/staging/model-config.yaml").read_text()
    assert main(["plan", str(repo), "--model", "fraud-v2-candidate", "--version", "8",
                 "--source", SOURCE, "--to", "staging", "--write"]) == 0  # fmt: skip
    after = (repo / "k8s/overlays/staging/model-config.yaml").read_text()
    old_line = next(line for line in before.splitlines() if "fraud-v2-storage-uri" in line)
    assert after == before.replace(old_line, f'  fraud-v2-storage-uri: "{SOURCE}"  # candidate')
    # planned again, the promotion changes nothing: exit 4 (see tests/test_unchanged.py)
    assert main(["plan", str(repo), "--model", "fraud-v2-candidate", "--version", "8",
                 "--source", SOURCE, "--to", "staging"]) == 4  # fmt: skip


def test_secret_values_changed_by_a_promotion_never_appear_in_the_output(tmp_path, capsys):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    kustomization = repo / "k8s/overlays/staging/kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text()
        + "\nsecretGenerator:\n  - name: registry-pull\n    literals:\n"
        + "      - TOKEN=old-token-b3f1c9\n      - OTHER=untouched-5e2a77\n"
    )
    config = repo / ".gitops-bot.yaml"
    config.write_text(
        config.read_text().replace(
            "    traffic:",
            "      - file: kustomization.yaml\n"
            "        field: secretGenerator.[name=registry-pull].literals.TOKEN\n"
            '        value: "tok-{version}-9d8c7b"\n'
            "    traffic:",
        )
    )
    code = main(["plan", str(repo), "--model", "fraud-v2-candidate", "--version", "8",
                 "--source", SOURCE, "--to", "staging"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "Secret/fraud-detection-staging/registry-pull" in out  # the change is visible ...
    for value in ("old-token-b3f1c9", "tok-8-9d8c7b", "untouched-5e2a77"):
        assert value not in out  # ... its values are not
    assert "<redacted" in out


def test_broken_overlay_is_reported_and_says_it_was_already_broken(tmp_path, capsys):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    (repo / "k8s/base/canary.yaml").unlink()  # a resource file the base lists
    code = main(["plan", str(repo), "--model", "fraud-v2-candidate", "--version", "8",
                 "--source", SOURCE, "--to", "staging"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 5  # already broken on the base; 3 is for a change that breaks the build
    assert "already broken on the base commit" in out and "canary.yaml" in out
    assert "Traceback" not in out


def test_invalid_config_errors_carry_line_numbers(tmp_path, capsys):
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    config = repo / ".gitops-bot.yaml"
    config.write_text(config.read_text().replace("merge_method: squash", "merge_method: fast"))
    assert main(["check-config", str(repo)]) == 2
    err = capsys.readouterr().err
    assert ".gitops-bot.yaml:24: environments[1].merge_method: 'fast' is not one of" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "fraud-v3", "--to", "staging"], "Unknown model 'fraud-v3'"),
        (["--model", "fraud-v2-candidate", "--to", "stagin"], "Did you mean 'staging'?"),
    ],
)
def test_plan_refuses_unknown_names_with_a_hint(args, message, capsys):
    assert main(["plan", str(EXAMPLE), "--version", "8", "--source", SOURCE, *args]) == 2
    assert message in capsys.readouterr().err


def test_console_script_is_installed_and_runs():
    exe = Path(sys.executable).with_name("gitops-bot")
    result = subprocess.run(
        [str(exe), "check-config", str(EXAMPLE)], capture_output=True, text=True
    )
    assert result.returncode == 0 and "OK" in result.stdout


def test_check_config_explains_a_tab_with_line_and_column(tmp_path, capsys):
    (tmp_path / ".gitops-bot.yaml").write_text("version: 1\nenvironments:\n  \t- name: a\n")
    assert main(["check-config", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert ".gitops-bot.yaml:3:3: tabs are not allowed in YAML; indent with spaces" in err
