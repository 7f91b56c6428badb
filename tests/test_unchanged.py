"""No silent no-ops: a promotion that leaves its target's render unchanged says why and
`gitops-bot plan` exits 4; duplicate kustomization keys are reported with their lines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.types import DuplicateKey, Environment, FileChange, Unchanged
from bot.core.unchanged import duplicate_keys, explain_unchanged

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fraud-detection"
STAGING = "k8s/overlays/staging"
CURRENT = "s3://acme-ml-models/fraud-detector/6/artifacts/model"  # what staging serves
NEW = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
# a second `patches:` key at the end of staging's kustomization (line 28): Kustomize keeps it
# and drops the first one (line 11), which was the only one to load experiment-patch.yaml
SECOND_PATCHES = "\npatches:\n  - path: model-config.yaml\n"


def example(tmp_path: Path, extra: str = "") -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    if extra:
        kustomization = repo / STAGING / "kustomization.yaml"
        kustomization.write_text(kustomization.read_text() + extra)
    return repo


def plan(repo: Path, version: str, source: str, *more: str) -> int:
    return main(
        ["plan", str(repo), "--model", "fraud-v2-candidate", "--version", version,
         "--source", source, "--to", "staging", *more]
    )  # fmt: skip


def test_edit_of_a_file_listed_under_a_shadowed_duplicate_patches_key_exits_4_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = example(tmp_path, SECOND_PATCHES)
    code = plan(repo, "6", CURRENT, "--traffic", "90/10")
    out, err = capsys.readouterr()
    assert code == 4
    kfile = f"{STAGING}/kustomization.yaml"
    assert (
        f"`{STAGING}/experiment-patch.yaml` is referenced only under `patches` at "
        f"`{kfile}:11`, and the duplicate `patches` at line 28 replaces it: Kustomize keeps "
        "the last of duplicate keys"
    ) in out
    assert "**This does not change what staging deploys**" in out
    assert f"> - `{kfile}`: `patches` at lines 11, 28; line 11 is ignored" in out
    assert err.strip() == (
        "gitops-bot: no change to what staging deploys "
        f"({STAGING}/experiment-patch.yaml: referenced only under the shadowed duplicate "
        f"'patches' at {kfile}:11; Kustomize keeps line 28) — exit 4"
    )


def test_duplicate_keys_are_reported_even_when_the_render_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = example(tmp_path, SECOND_PATCHES)
    assert plan(repo, "8", NEW, "--traffic", "90/10") == 0
    out, err = capsys.readouterr()
    assert "`patches` at lines 11, 28; line 11 is ignored" in out
    assert "This does not change what" not in out
    assert err == ""


def test_promoting_what_is_already_deployed_exits_4_naming_each_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = example(tmp_path)
    assert plan(repo, "6", CURRENT) == 4
    out, err = capsys.readouterr()
    assert (
        f"`data.fraud-v2-storage-uri` in `{STAGING}/model-config.yaml` is already `{CURRENT}`"
    ) in out
    assert (
        f"`images.[name=fraud-detector].newTag` in `{STAGING}/kustomization.yaml` is already `v6`"
    ) in out
    assert "Duplicate keys" not in out
    assert err.startswith("gitops-bot: no change to what staging deploys (")
    assert "data.fraud-v2-storage-uri is already set; and 1 more) — exit 4" in err


def test_edit_of_a_file_the_environment_does_not_load_exits_4_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = example(tmp_path)
    (repo / STAGING / "unused.yaml").write_text("data:\n  uri: s3://old\n")
    config = repo / ".gitops-bot.yaml"
    config.write_text(
        config.read_text().replace(
            "      - file: model-config.yaml\n        field: data.fraud-v2-storage-uri",
            "      - file: unused.yaml\n        field: data.uri",
        )
    )
    assert plan(repo, "6", NEW) == 4
    out, err = capsys.readouterr()
    assert f"`{STAGING}/unused.yaml` is not loaded by the build of `{STAGING}`" in out
    assert f"({STAGING}/unused.yaml: not loaded by {STAGING}) — exit 4" in err


def test_edit_the_build_loads_without_a_rendered_effect_exits_4_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = example(tmp_path)
    config = repo / ".gitops-bot.yaml"
    config.write_text(
        config.read_text()
        .replace("images.[name=fraud-detector].newTag", "images.[name=no-such-image].newTag")
        .replace('      - file: model-config.yaml\n        field: data.fraud-v2-storage-uri\n'
                 '        value: "{storage_uri}"\n', "")
    )  # fmt: skip
    assert plan(repo, "8", NEW) == 4
    out, _ = capsys.readouterr()
    assert (
        f"`{STAGING}/kustomization.yaml` is loaded by the build, but no rendered manifest "
        "changes with it"
    ) in out


def test_duplicate_keys_are_found_at_any_depth_with_every_line() -> None:
    content = (
        b"resources:\n- a.yaml\nimages:\n- name: x\n  newTag: a\n  newTag: b\n"
        b"resources:\n- b.yaml\nresources: [c.yaml]\n"
    )
    assert duplicate_keys("k/kustomization.yaml", content) == (
        DuplicateKey("k/kustomization.yaml", "resources", (1, 7, 9)),
        DuplicateKey("k/kustomization.yaml", "images.0.newTag", (5, 6)),
    )
    assert duplicate_keys("k/kustomization.yaml", b"resources: [a]\n") == ()
    assert duplicate_keys("k/kustomization.yaml", b"resources: [a\n") == ()  # unreadable


def test_a_base_reachable_only_through_a_shadowed_resources_key_is_shadowed() -> None:
    snapshot = {
        "base/kustomization.yaml": b"resources:\n- deploy.yaml\n",
        "base/deploy.yaml": b"kind: ConfigMap\nmetadata: {name: a}\n",
        "other/kustomization.yaml": b"resources:\n- cm.yaml\n",
        "other/cm.yaml": b"kind: ConfigMap\nmetadata: {name: b}\n",
        "env/kustomization.yaml": b"resources:\n- ../base\nnamespace: x\nresources:\n- ../other\n",
    }
    change = FileChange("base/deploy.yaml", b"", b"")
    (reason,) = explain_unchanged(Environment("env", "env"), snapshot, [change], [])
    assert reason == Unchanged(
        "shadowed",
        "base/deploy.yaml",
        duplicate=DuplicateKey("env/kustomization.yaml", "resources", (1, 4)),
        line=1,
    )
