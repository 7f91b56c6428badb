"""Tests for the kustomization graph: closures and affected overlays."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from bot.core.graph import KustomizationGraph, ParseCache, affected_overlays, overlay_files

REPO = Path(__file__).parent / "data" / "graph" / "repo"
OVERLAYS = [
    "overlays/staging",
    "overlays/prod",
    "overlays/broken",
    "overlays/badyaml",
    "overlays/legacy",
]
BASE_FILES = {
    "base/kustomization.yaml",
    "base/isvc.yaml",
    "base/service-account.yaml",
    "base/settings.json",
}


def load(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def snapshot() -> dict[str, bytes]:
    return load(REPO)


class CountingSnapshot(Mapping[str, bytes]):
    """A snapshot that records which files were read and whether anyone listed them all."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.read: list[str] = []
        self.iterated = 0

    def __getitem__(self, key: str) -> bytes:
        self.read.append(key)
        return self.files[key]

    def __contains__(self, key: object) -> bool:
        return key in self.files

    def __iter__(self) -> Iterator[str]:
        self.iterated += 1
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def test_staging_closure_has_base_component_patch_and_generator_files(snapshot):
    files = overlay_files(snapshot, "overlays/staging")
    assert files == BASE_FILES | {
        "components/monitoring/kustomization.yaml",
        "components/monitoring/monitoring-patch.yaml",
        "overlays/staging/kustomization.yaml",
        "overlays/staging/isvc-patch.yaml",
        "overlays/staging/storage.env",
        "overlays/staging/token.txt",
    }


def test_prod_closure_tracks_strategic_merge_replacements_and_configurations(snapshot):
    files = overlay_files(snapshot, "overlays/prod")
    assert files == BASE_FILES | {
        "overlays/prod/kustomization.yaml",
        "overlays/prod/isvc-patch.yaml",
        "overlays/prod/replacements.yaml",
        "overlays/prod/name-reference.yaml",
    }


def test_legacy_fields_bases_json6902_crds_and_openapi_are_tracked(snapshot):
    files = overlay_files(snapshot, "overlays/legacy/")
    assert files == BASE_FILES | {
        "overlays/legacy/kustomization.yaml",
        "overlays/legacy/json-patch.yaml",
        "overlays/legacy/crd.json",
        "overlays/legacy/schema.json",
    }


def test_missing_files_are_recorded_not_raised(snapshot):
    closure = KustomizationGraph(snapshot).closure("overlays/broken")
    assert closure.exists
    assert closure.missing == {
        "overlays/broken/missing-resource.yaml",
        "overlays/broken/missing-patch.yaml",
    }
    assert closure.broken
    assert closure.files >= BASE_FILES


def test_invalid_kustomization_yaml_is_recorded_as_a_problem(snapshot):
    closure = KustomizationGraph(snapshot).closure("overlays/badyaml")
    assert closure.files == {"overlays/badyaml/kustomization.yaml"}
    assert len(closure.problems) == 1
    assert closure.problems[0].startswith("overlays/badyaml/kustomization.yaml: invalid YAML")


def test_overlay_without_kustomization_does_not_exist():
    closure = KustomizationGraph({"overlays/x/patch.yaml": b"{}"}).closure("overlays/x")
    assert not closure.exists
    assert closure.files == frozenset()


def test_key_equals_path_generator_entries_and_inline_patches():
    snap = {
        "k/kustomization.yml": b"""
configMapGenerator:
  - name: c
    files: [cfg=conf/app.ini, plain.txt]
    env: legacy.env
patchesStrategicMerge:
  - |
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: c}
transformers:
  - labels.yaml
  - |
    apiVersion: builtin
    kind: LabelTransformer
    metadata: {name: x}
helmCharts:
  - name: chart
""",
        "k/conf/app.ini": b"a=1",
        "k/plain.txt": b"x",
        "k/legacy.env": b"A=1",
        "k/labels.yaml": b"{}",
    }
    closure = KustomizationGraph(snap).closure("k")
    assert closure.files == set(snap)
    assert closure.missing == frozenset()
    assert closure.uses_helm


def test_remote_resources_are_recorded_and_never_counted_as_missing():
    snap = {
        "o/kustomization.yaml": b"""
resources:
  - https://raw.githubusercontent.com/org/repo/main/deploy.yaml
  - github.com/org/repo//deploy?ref=v1.2.3
  - local.yaml
""",
        "o/local.yaml": b"{}",
    }
    closure = KustomizationGraph(snap).closure("o")
    assert closure.missing == frozenset()
    assert len(closure.remote_resources) == 2
    assert all(r.startswith("o/kustomization.yaml: ") for r in closure.remote)
    assert closure.files == {"o/kustomization.yaml", "o/local.yaml"}


def test_references_leaving_the_repository_are_problems():
    snap = {"o/kustomization.yaml": b"resources: [../../../etc]\npatches: [{path: /etc/passwd}]\n"}
    closure = KustomizationGraph(snap).closure("o")
    assert len(closure.problems) == 2
    assert all("outside the repository" in p for p in closure.problems)


def test_cyclic_references_terminate():
    snap = {
        "a/kustomization.yaml": b"resources: [../b]\n",
        "b/kustomization.yaml": b"resources: [../a]\n",
    }
    assert overlay_files(snap, "a") == set(snap)


def test_change_in_base_affects_every_overlay_above_it(snapshot):
    head = dict(snapshot)
    head["base/isvc.yaml"] += b"# touched\n"
    changed = ["base/isvc.yaml"]
    assert affected_overlays(snapshot, head, OVERLAYS, changed) == [
        "overlays/staging",
        "overlays/prod",
        "overlays/broken",
        "overlays/legacy",
    ]


def test_change_in_one_overlay_affects_only_that_overlay(snapshot):
    for path, overlay in [
        ("overlays/prod/isvc-patch.yaml", "overlays/prod"),
        ("overlays/staging/token.txt", "overlays/staging"),
        ("overlays/legacy/crd.json", "overlays/legacy"),
    ]:
        assert affected_overlays(snapshot, snapshot, OVERLAYS, [path]) == [overlay]


def test_component_change_affects_only_overlays_using_it(snapshot):
    changed = ["components/monitoring/monitoring-patch.yaml"]
    assert affected_overlays(snapshot, snapshot, OVERLAYS, changed) == ["overlays/staging"]


def test_unrelated_change_affects_nothing(snapshot):
    assert affected_overlays(snapshot, snapshot, OVERLAYS, ["docs/README.md"]) == []


def test_broken_kustomization_that_changed_is_affected(snapshot):
    changed = ["overlays/badyaml/kustomization.yaml"]
    assert affected_overlays(snapshot, snapshot, OVERLAYS, changed) == ["overlays/badyaml"]


def test_adding_a_missing_file_affects_the_overlay_that_referenced_it(snapshot):
    head = dict(snapshot)
    head["overlays/broken/missing-patch.yaml"] = b"{}"
    changed = ["overlays/broken/missing-patch.yaml"]
    assert affected_overlays(snapshot, head, OVERLAYS, changed) == ["overlays/broken"]


def test_added_referenced_directory_affects_the_overlay():
    base = {"o/kustomization.yaml": b"resources: [../new]\n"}
    head = {**base, "new/kustomization.yaml": b"resources: [cm.yaml]\n", "new/cm.yaml": b"{}"}
    assert affected_overlays(base, head, ["o"], ["new/cm.yaml"]) == ["o"]
    assert affected_overlays(base, head, ["o"], ["new"]) == ["o"]


def test_removed_overlay_and_added_overlay_are_affected(snapshot):
    head = {k: v for k, v in snapshot.items() if not k.startswith("overlays/prod/")}
    head["overlays/dev/kustomization.yaml"] = b"resources: [../../base]\n"
    changed = [k for k in snapshot if k.startswith("overlays/prod/")]
    changed.append("overlays/dev/kustomization.yaml")
    result = affected_overlays(snapshot, head, [*OVERLAYS, "overlays/dev"], changed)
    assert result == ["overlays/prod", "overlays/dev"]


def test_second_kustomization_file_next_to_one_in_use_affects_the_overlay(snapshot):
    head = dict(snapshot)
    head["base/kustomization.yml"] = b"resources: []\n"
    changed = ["base/kustomization.yml"]
    assert "overlays/prod" in affected_overlays(snapshot, head, OVERLAYS, changed)
    assert KustomizationGraph(head).closure("overlays/prod").problems


def generated_repo(n: int) -> dict[str, bytes]:
    repo: dict[str, bytes] = {
        "base/kustomization.yaml": b"resources: [deploy.yaml]\n",
        "base/deploy.yaml": b"kind: Deployment\nmetadata: {name: app}\n",
    }
    for i in range(n):
        d = f"overlays/env-{i:03d}"
        repo[f"{d}/kustomization.yaml"] = (
            f"namespace: env-{i}\nresources: [../../base]\npatches: [{{path: patch.yaml}}]\n"
            "configMapGenerator: [{name: c, files: [values.json]}]\n"
        ).encode()
        repo[f"{d}/patch.yaml"] = f"kind: Deployment\nmetadata: {{name: app-{i}}}\n".encode()
        repo[f"{d}/values.json"] = b"{}"
    return repo


def test_large_repo_reads_only_kustomization_files_and_never_lists_the_snapshot():
    files = generated_repo(200)
    overlays = [f"overlays/env-{i:03d}" for i in range(200)]
    base = CountingSnapshot(files)
    head = CountingSnapshot({**files, "overlays/env-042/patch.yaml": b"kind: Deployment\n"})

    result = affected_overlays(base, head, overlays, ["overlays/env-042/patch.yaml"])

    assert result == ["overlays/env-042"]
    kustomizations = {p for p in files if p.endswith("kustomization.yaml")}
    for snap in (base, head):
        assert snap.iterated == 0
        # only kustomization files are read, each once though base/ is shared by 200 overlays
        assert len(snap.read) == len(set(snap.read))
        assert set(snap.read) <= kustomizations
    assert set(base.read) == kustomizations


def test_identical_kustomization_content_is_parsed_once_across_base_and_head():
    files = generated_repo(20)
    cache = ParseCache()
    base, head = KustomizationGraph(files, cache), KustomizationGraph(dict(files), cache)
    for graph in (base, head):
        for i in range(20):
            graph.closure(f"overlays/env-{i:03d}")
    assert cache.parses == 21


def test_parse_cache_recovers_after_invalid_yaml():
    cache = ParseCache()
    assert cache.load(b"a: [")[0] is None
    assert cache.load(b"resources: [x]\n") == ({"resources": ["x"]}, "")


def test_graph_parses_each_directory_once():
    graph = KustomizationGraph(generated_repo(50))
    for i in range(50):
        graph.closure(f"overlays/env-{i:03d}")
    assert graph.parses == 51


def test_parse_cache_is_bounded_and_evicts_oldest_first():
    cache = ParseCache(max_entries=2)
    for doc in (b"a: 1", b"b: 1", b"c: 1", b"c: 1", b"a: 1"):
        cache.load(doc)
    assert cache.parses == 4


def test_a_long_lived_cache_makes_a_repeat_run_parse_nothing():
    files = generated_repo(30)
    overlays = [f"overlays/env-{i:03d}" for i in range(30)]
    cache = ParseCache()
    affected_overlays(files, files, overlays, ["base/deploy.yaml"], cache)
    before = cache.parses
    result = affected_overlays(files, files, overlays, ["overlays/env-007/patch.yaml"], cache)
    assert result == ["overlays/env-007"]
    assert (before, cache.parses) == (31, 31)
