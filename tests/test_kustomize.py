"""Tests for the Kustomize gateway, against the real kubectl from the pinned wheel."""

from __future__ import annotations

import contextlib
import http.server
import os
import stat
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from bot.core.diff import diff_environment
from bot.core.graph import MISSING_OVERLAY_ERROR, overlay_files
from bot.core.types import RenderResult
from bot.gateways.kustomize import (
    Renderer,
    UnsafePathError,
    build_command,
    build_env,
    check_path,
    default_binary,
    materialise,
)
from bot.gateways.render_cache import RenderCache

REPO = Path(__file__).parent / "data" / "graph" / "repo"
KUBECTL = str(Path(sys.executable).parent / "kubectl")


def load(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def snapshot() -> dict[str, bytes]:
    return load(REPO)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(KUBECTL)


class CountingSnapshot(Mapping[str, bytes]):
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.read: set[str] = set()
        self.iterated = 0

    def __getitem__(self, key: str) -> bytes:
        self.read.add(key)
        return self.files[key]

    def __contains__(self, key: object) -> bool:
        return key in self.files

    def __iter__(self) -> Iterator[str]:
        self.iterated += 1
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def test_default_binary_is_the_wheels_kubectl():
    assert default_binary() == KUBECTL


def test_version_reports_the_embedded_kustomize(renderer):
    assert renderer.version() == "Kustomize v5.8.1 (kubectl v1.37.1)"


def test_renders_overlay_with_base_component_patch_and_generators(renderer, snapshot):
    result = renderer.render(snapshot, ["overlays/staging"])["overlays/staging"]
    assert result.ok, result.error
    assert "storageUri: s3://models/fraud/7" in result.output
    assert "serving.kserve.io/enable-prometheus-scraping" in result.output
    assert "namespace: staging" in result.output
    assert "kind: Secret" in result.output


def test_renders_several_overlays_in_one_call(renderer, snapshot):
    results = renderer.render(snapshot, ["overlays/prod", "overlays/legacy/", "overlays/staging"])
    assert list(results) == ["overlays/prod", "overlays/legacy/", "overlays/staging"]
    assert "storageUri: s3://models/fraud/5" in results["overlays/prod"].output
    assert "storageUri: s3://models/fraud/3" in results["overlays/legacy/"].output
    assert all(r.ok for r in results.values())


def test_missing_resource_error_names_the_file_with_repo_relative_paths(renderer, snapshot):
    result = renderer.render(snapshot, ["overlays/broken"])["overlays/broken"]
    assert not result.ok
    assert "'overlays/broken/missing-resource.yaml'" in result.error
    assert "gitops-bot-render" not in result.error
    assert "/tmp" not in result.error


def test_invalid_kustomization_yaml_gives_kustomizes_error(renderer, snapshot):
    result = renderer.render(snapshot, ["overlays/badyaml"])["overlays/badyaml"]
    assert not result.ok
    assert "invalid Kustomization" in result.error


def test_duplicate_key_in_a_resource_is_a_readable_error(renderer):
    snap = {
        "o/kustomization.yaml": b"resources: [cm.yaml]\n",
        "o/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
    }
    result = renderer.render(snap, ["o"])["o"]
    assert not result.ok
    assert 'mapping key "name" already defined' in result.error


def test_missing_overlay_is_reported_as_not_existing(renderer, snapshot):
    result = renderer.render(snapshot, ["overlays/nope"])["overlays/nope"]
    assert (result.ok, result.error) == (False, MISSING_OVERLAY_ERROR)


def test_remote_resources_are_refused_for_untrusted_content_without_running_kustomize():
    snap = {
        "o/kustomization.yaml": b"resources:\n"
        b"  - https://raw.githubusercontent.com/org/repo/main/deploy.yaml\n"
        b"  - github.com/org/repo//deploy?ref=v1\n",
    }
    # a binary that does not exist proves the decision is taken before anything runs
    result = Renderer("/nonexistent/kubectl").render(snap, ["o"])["o"]
    assert not result.ok
    assert "remote references are not allowed" in result.error
    assert "o/kustomization.yaml: https://raw.githubusercontent.com/org/repo/main/deploy.yaml" in (
        result.error
    )
    assert "github.com/org/repo//deploy?ref=v1" in result.error


def test_helm_charts_are_not_inflated_for_untrusted_content(renderer):
    snap = {
        "o/kustomization.yaml": b"helmCharts:\n  - name: c\n    repo: https://example.com\n"
        b"    version: 1.0.0\n",
    }
    result = renderer.render(snap, ["o"])["o"]
    assert not result.ok
    assert "must specify --enable-helm" in result.error


def test_exec_krm_functions_are_not_run_for_untrusted_content(renderer, tmp_path):
    canary = tmp_path / "ran"
    snap = {
        "o/kustomization.yaml": b"generators: [gen.yaml]\n",
        "o/gen.yaml": f"""apiVersion: example.com/v1
kind: Gen
metadata:
  name: g
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: /bin/touch {canary}
""".encode(),
    }
    result = renderer.render(snap, ["o"])["o"]
    assert not result.ok
    assert "external plugins disabled" in result.error
    assert not canary.exists()


def test_untrusted_command_never_enables_plugins_helm_or_exec():
    argv = build_command("/x/kubectl", "/tmp/r/o", trusted=False)
    assert argv == [
        "/x/kubectl",
        "kustomize",
        "/tmp/r/o",
        "--load-restrictor",
        "LoadRestrictionsRootOnly",
    ]
    trusted = build_command("/x/kubectl", "/tmp/r/o", trusted=True)
    assert "--load-restrictor" in trusted and "LoadRestrictionsRootOnly" in trusted
    assert not any(a in trusted for a in ("--enable-alpha-plugins", "--enable-exec"))


def test_standalone_kustomize_binary_uses_build_subcommand():
    argv = build_command("/usr/local/bin/kustomize", "o", trusted=False)
    assert argv[:3] == ["/usr/local/bin/kustomize", "build", "o"]


def test_untrusted_environment_is_minimal_and_offline(monkeypatch):
    monkeypatch.setenv("GITOPS_BOT_CANARY_SECRET", "do-not-leak")
    env = build_env("/tmp/h", trusted=False, empty_bin="/tmp/h/bin")
    assert env["PATH"] == "/tmp/h/bin"
    assert env["HOME"] == "/tmp/h"
    assert set(env) <= {
        "PATH",
        "HOME",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
    }
    assert "do-not-leak" not in env.values()
    assert set(build_env("/tmp/h", trusted=True, empty_bin="/tmp/h/bin")) == {"PATH", "HOME"}


def test_build_process_does_not_inherit_the_bots_environment(monkeypatch, tmp_path, snapshot):
    # A stand-in binary that prints the environment it was started with.
    probe = tmp_path / "env-probe"
    probe.write_text("#!/bin/sh\nexec /usr/bin/env\n")
    probe.chmod(probe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("GITOPS_BOT_CANARY_SECRET", "do-not-leak")
    result = Renderer(str(probe)).render(snapshot, ["overlays/prod"])["overlays/prod"]
    assert result.ok
    seen = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    assert "GITOPS_BOT_CANARY_SECRET" not in seen
    assert "do-not-leak" not in result.output
    assert os.path.basename(os.path.dirname(seen["PATH"])).startswith(".home-")
    assert seen["HTTPS_PROXY"] == "http://127.0.0.1:9"


def test_build_that_exceeds_the_time_limit_is_killed(snapshot):
    result = Renderer(KUBECTL, timeout_s=0.001).render(snapshot, ["overlays/prod"])
    assert result["overlays/prod"] == result["overlays/prod"].__class__(
        "overlays/prod", ok=False, error="timed out after 0.001s"
    )


def test_output_larger_than_the_limit_is_refused(snapshot):
    result = Renderer(KUBECTL, max_output_bytes=100).render(snapshot, ["overlays/prod"])
    assert not result["overlays/prod"].ok
    assert result["overlays/prod"].error == "rendered output exceeds 100 bytes; stopped"


def test_only_the_overlays_closure_is_read_and_materialised(renderer):
    files: dict[str, bytes] = {
        "base/kustomization.yaml": b"resources: [cm.yaml]\n",
        "base/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    }
    for i in range(200):
        d = f"overlays/env-{i:03d}"
        files[f"{d}/kustomization.yaml"] = (
            f"namespace: env-{i}\nresources: [../../base]\n"
            "configMapGenerator: [{name: v, files: [values.json]}]\n"
        ).encode()
        files[f"{d}/values.json"] = b"{}"
    snap = CountingSnapshot(files)
    result = renderer.render(snap, ["overlays/env-042"])["overlays/env-042"]
    assert result.ok, result.error
    assert "namespace: env-42" in result.output
    assert snap.iterated == 0
    assert snap.read == overlay_files(files, "overlays/env-042")
    assert len(snap.read) == 4


def test_materialise_writes_plain_non_executable_files(tmp_path):
    materialise({"a/b.yaml": b"x: 1\n"}, ["a/b.yaml"], str(tmp_path))
    written = tmp_path / "a" / "b.yaml"
    assert written.read_bytes() == b"x: 1\n"
    assert not written.is_symlink()
    assert written.stat().st_mode & 0o111 == 0


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../x", "a//b", "a\\b", "", "./a"])
def test_unsafe_paths_are_refused(path):
    with pytest.raises(UnsafePathError):
        check_path(path)


def test_render_pair_and_diff_show_the_change_and_never_the_secret(renderer, snapshot):
    head = dict(snapshot)
    head["overlays/staging/isvc-patch.yaml"] = snapshot["overlays/staging/isvc-patch.yaml"].replace(
        b"fraud/7", b"fraud/8"
    )
    head["overlays/staging/token.txt"] = b"rotated-token-value"
    pairs = renderer.render_pair(snapshot, head, ["overlays/staging", "overlays/prod"])
    base_r, head_r = pairs["overlays/staging"]
    diff = diff_environment("staging", "overlays/staging", base_r, head_r)
    fields = {f.path: f for c in diff.changes for f in c.fields}
    uri = fields["spec.predictor.model.storageUri"]
    assert (uri.old, uri.new) == ("s3://models/fraud/7", "s3://models/fraud/8")
    # the generated Secret's name hash changes, so it shows as removed + added
    statuses = sorted(c.status for c in diff.changes if c.resource.startswith("Secret/"))
    assert statuses == ["added", "removed"]
    text = diff.unified_diff + diff.base.output + diff.head.output
    assert "c3RhZ2luZy10b2tlbg==" in base_r.output  # the raw render does carry it...
    for secret_text in ("c3RhZ2luZy10b2tlbg==", "cm90YXRlZC10b2tlbi12YWx1ZQ==", "staging-token"):
        assert secret_text not in text  # ...the diff never does
    prod_base, prod_head = pairs["overlays/prod"]
    assert prod_base.ok and prod_base == prod_head


def test_render_pair_reports_an_overlay_added_at_head(renderer, snapshot):
    head = {**snapshot, "overlays/dev/kustomization.yaml": b"resources: [../../base]\n"}
    base_r, head_r = renderer.render_pair(snapshot, head, ["overlays/dev"])["overlays/dev"]
    assert base_r.error == MISSING_OVERLAY_ERROR
    assert head_r.ok
    diff = diff_environment("dev", "overlays/dev", base_r, head_r)
    assert {c.status for c in diff.changes} == {"added"}


def test_a_build_past_its_memory_limit_fails_with_that_reason(tmp_path):
    snapshot = {
        "o/kustomization.yaml": b"resources:\n  - cm.yaml\n",
        "o/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    }
    starved = Renderer(KUBECTL, max_memory_bytes=256 * 1024 * 1024).render(snapshot, ["o"])["o"]
    assert not starved.ok
    assert starved.error == "Kustomize exceeded its 256 MiB memory limit"
    assert Renderer(KUBECTL).render(snapshot, ["o"])["o"].ok  # the default 2 GiB is enough


def counting_kubectl(tmp_path: Path) -> tuple[str, Path]:
    """A kubectl that logs each build it runs, then runs the real one."""
    log = tmp_path / "builds.log"
    script = tmp_path / "kubectl"
    script.write_text(f'#!/bin/sh\necho "$2" >> {log}\nexec {KUBECTL} "$@"\n')
    script.chmod(0o755)
    return str(script), log


def builds(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_the_base_of_the_next_promotion_comes_from_the_render_cache(tmp_path, snapshot):
    binary, log = counting_kubectl(tmp_path)
    cache = RenderCache()
    renderer = Renderer(binary, isolation="off", cache=cache)
    first = dict(snapshot)
    first["overlays/staging/isvc-patch.yaml"] = snapshot[
        "overlays/staging/isvc-patch.yaml"
    ].replace(b"fraud/7", b"fraud/8")
    _base_1, head_1 = renderer.render_pair(snapshot, first, ["overlays/staging"])[
        "overlays/staging"
    ]
    assert builds(log) == 2 and cache.hits == 0
    second = dict(first)
    second["overlays/staging/isvc-patch.yaml"] = first["overlays/staging/isvc-patch.yaml"].replace(
        b"fraud/8", b"fraud/9"
    )
    # merged: the last head is the new base; only the new head is built
    base_2, head_2 = renderer.render_pair(first, second, ["overlays/staging"])["overlays/staging"]
    assert builds(log) == 3 and cache.hits == 1
    assert base_2 == head_1 and "fraud/9" in head_2.output
    # a file the overlay does not load (docs/) changes nothing: still a hit
    renderer.render_pair({**second, "docs/README.md": b"new"}, second, ["overlays/staging"])
    assert builds(log) == 3 and cache.hits == 2


def test_a_changed_input_or_trust_level_is_a_cache_miss(tmp_path, snapshot):
    binary, log = counting_kubectl(tmp_path)
    renderer = Renderer(binary, isolation="off", cache=RenderCache())
    renderer.render(snapshot, ["overlays/staging"])
    renderer.render_pair(snapshot, snapshot, ["overlays/staging"])
    assert builds(log) == 2  # render() does not use the cache; render_pair filled it
    renderer.render_pair(snapshot, snapshot, ["overlays/staging"])
    assert builds(log) == 2
    renderer.render_pair(snapshot, snapshot, ["overlays/staging"], trusted_base=True)
    assert builds(log) == 3  # trusted and untrusted builds are kept apart
    token = {**snapshot, "overlays/staging/token.txt": b"another-token"}
    base_r, head_r = renderer.render_pair(snapshot, token, ["overlays/staging"])["overlays/staging"]
    assert builds(log) == 4 and base_r != head_r


@contextlib.contextmanager
def serve_once(body: bytes) -> Iterator[str]:
    """A loopback HTTP server answering every GET with `body`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cm.yaml"
    finally:
        server.shutdown()


def test_failed_builds_and_remote_builds_are_not_cached(tmp_path):
    binary, log = counting_kubectl(tmp_path)
    renderer = Renderer(binary, isolation="off", cache=RenderCache())
    broken = {"o/kustomization.yaml": b"resources: [missing.yaml]\n"}
    for _ in range(2):
        renderer.render_pair(broken, broken, ["o"])
    assert builds(log) == 2
    served = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fetched\n"
    with serve_once(served) as url:
        remote = {"o/kustomization.yaml": f"resources:\n  - {url}\n".encode()}
        for _ in range(2):
            pair = renderer.render_pair(remote, remote, ["o"], trusted_base=True, trusted_head=True)
            assert pair["o"][0].ok and "fetched" in pair["o"][0].output
    assert builds(log) == 4  # what a remote reference fetches is not in the fingerprint


def test_the_render_cache_stays_within_its_byte_budget():
    cache = RenderCache(max_bytes=1000)
    for i in range(10):
        cache.put(f"k{i}", RenderResult("o", ok=True, output="x" * 200))
    kept = [i for i in range(10) if cache.get(f"k{i}") is not None]
    assert kept == [5, 6, 7, 8, 9]
    cache.put("huge", RenderResult("o", ok=True, output="x" * 600))  # over a quarter: skipped
    assert cache.get("huge") is None
