"""Rules scoped to environments: a shared base edited from environments at different depths,
paths checked only where a rule applies, and every environment the edit reaches named."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.approval import Check, PullRequestFacts, Review, evaluate_merge
from bot.core.config import load_config
from bot.core.config_check import check_repository
from bot.core.errors import ConfigError, PlanError
from bot.core.promotion import build_plan
from bot.core.rendering import affected_environments
from bot.core.report import render_pull_request
from bot.core.types import PromotionRequest
from bot.gateways.kustomize import Renderer
from bot.gateways.localrepo import DirectorySnapshot

KUBECTL = str(Path(sys.executable).parent / "kubectl")
ENV_URI = "spec.template.spec.containers.[name=server].env.[name=MODEL_URI].value"
SOURCE = "s3://models/fraud/8"

# Environments at three depths over one shared base: `base` itself (depth 1), `staging`
# (depth 2) and `prod-eu` (depth 3). The model URI lives in the base, the image tag per overlay.
FILES = {
    "base/kustomization.yaml": "resources:\n- deploy.yaml\n",
    "base/deploy.yaml": textwrap.dedent(
        """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: fraud
        spec:
          selector: {matchLabels: {app: fraud}}
          template:
            metadata: {labels: {app: fraud}}
            spec:
              containers:
              - name: server
                image: registry.example.com/fraud:v7
                env:
                - name: MODEL_URI
                  value: s3://models/fraud/7   # served model
        """
    ),
    "envs/staging/kustomization.yaml": (
        "namespace: staging\nresources:\n- ../../base\n"
        "images:\n- name: registry.example.com/fraud\n  newTag: v7\n"
    ),
    "envs/prod/eu/kustomization.yaml": "namespace: prod-eu\nresources:\n- ../../../base\n",
}

CONFIG = textwrap.dedent(
    f"""\
    version: 1
    environments:
      - name: base
        path: base
      - name: staging
        path: envs/staging
        auto_merge: true
      - name: prod-eu
        path: envs/prod/eu
        promote_from: staging
        approvals:
          required: 1
          users: [alice]
    models:
      - name: fraud
        registry_name: fraud-detector
        set:
          - file: ../../base/deploy.yaml
            field: {ENV_URI}
            value: "{{storage_uri}}"
            environments: [staging]
          - file: ../../../base/deploy.yaml
            field: {ENV_URI}
            value: "{{storage_uri}}"
            environments: [prod-eu]
          - file: deploy.yaml
            field: {ENV_URI}
            value: "{{storage_uri}}"
            environments: [base]
          - file: kustomization.yaml
            field: images.[name=registry.example.com/fraud].newTag
            value: "v{{version}}"
            environments: [staging, prod-eu]
    """
)


def make_repo(root: Path, config: str = CONFIG) -> Path:
    for path, text in {**FILES, ".gitops-bot.yaml": config}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def plan_for(root: Path, environment: str, **request: object):  # type: ignore[no-untyped-def]
    config = load_config((root / ".gitops-bot.yaml").read_text())
    snapshot = DirectorySnapshot(root)
    renderer = Renderer(binary=KUBECTL, isolation="off")
    fields: dict[str, object] = {"source_uri": SOURCE, **request}
    req = PromotionRequest(model="fraud", version="8", environment=environment, **fields)  # type: ignore[arg-type]
    return config, build_plan(config, snapshot, req, renderer.render_pair)


def test_unscoped_rule_into_a_shared_base_is_rejected_from_the_shallow_environment() -> None:
    unscoped = CONFIG.replace("        environments: [staging]\n", "", 1)
    with pytest.raises(ConfigError) as caught:
        load_config(unscoped)
    assert [str(i.message) for i in caught.value.issues] == [
        "models[0].set[0].file: '../../base/deploy.yaml' leaves the repository from "
        "environment 'base'"
    ]


def test_scoped_rules_reach_a_shared_base_from_every_depth(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    config = load_config(CONFIG)
    assert [r.environments for r in config.models[0].set] == [
        ("staging",),
        ("prod-eu",),
        ("base",),
        ("staging", "prod-eu"),
    ]
    assert check_repository(config, DirectorySnapshot(root)) == []
    assert main(["check-config", str(root)]) == 0


def test_each_environment_applies_only_its_own_rules(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    _, plan = plan_for(root, "prod-eu")
    assert [(c.path, [e[0] for e in c.edits]) for c in plan.changes] == [
        ("base/deploy.yaml", [ENV_URI]),
        ("envs/prod/eu/kustomization.yaml", ["images.[name=registry.example.com/fraud].newTag"]),
    ]
    _, plan = plan_for(root, "base")
    assert [c.path for c in plan.changes] == ["base/deploy.yaml"]


def test_an_edit_of_a_shared_base_names_every_environment_it_changes(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    config, plan = plan_for(root, "staging")
    assert [c.path for c in plan.changes] == ["base/deploy.yaml", "envs/staging/kustomization.yaml"]
    assert [e.name for e in plan.affected] == ["staging", "base", "prod-eu"]
    assert set(affected_environments(config, plan.diffs)) == {"base", "staging", "prod-eu"}
    body = render_pull_request(plan).body
    assert "**Also changes:** **base** · `base`, **prod-eu** · `envs/prod/eu`" in body
    assert "so the approval gate applies each one's policy too:\n" in body
    assert "- **base**: no approval required; merges on `/merge`\n" in body
    assert "- **prod-eu**: needs **1 approval** from user `alice`\n" in body
    assert "On its own, staging would merge automatically" in body
    assert "So this PR does not merge by itself" in body


def test_a_plan_confined_to_its_target_names_no_other_environment(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    _, plan = plan_for(root, "staging", source_uri="s3://models/fraud/7")  # base unchanged
    assert [c.path for c in plan.changes] == ["envs/staging/kustomization.yaml"]
    assert [e.name for e in plan.affected] == ["staging"]
    body = render_pull_request(plan).body
    assert "Also changes" not in body
    assert "🤖 **Merges automatically once checks pass**" in body


def test_the_gate_applies_the_policy_of_every_environment_the_plan_names(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    _, plan = plan_for(root, "staging")
    facts = PullRequestFacts(
        number=1,
        head_sha="a" * 40,
        state="open",
        merged=False,
        draft=False,
        mergeable=True,
        requester="mlflow",
    )
    green = [Check("gitops-bot/render", "completed", "success")]
    eligible = {env.name: {"alice"} for env in plan.affected}
    staging_only = evaluate_merge(facts, [], green, plan.affected[:1], eligible=eligible)
    assert staging_only.ready  # what the gate would do if it saw the target alone
    gated = evaluate_merge(facts, [], green, plan.affected, eligible=eligible)
    assert not gated.ready
    assert any("prod-eu" in reason for reason in gated.reasons)
    approved = [Review("alice", "APPROVED", "a" * 40, order=1)]
    assert evaluate_merge(facts, approved, green, plan.affected, eligible=eligible).ready


def test_rule_naming_an_unknown_environment_is_a_config_error_with_a_hint() -> None:
    text = CONFIG.replace("environments: [staging, prod-eu]", "environments: [staging, prod-e]")
    with pytest.raises(ConfigError) as caught:
        load_config(text)
    (issue,) = caught.value.issues
    assert issue.line == 33
    assert issue.message == (
        "models[0].set[3].environments[1]: unknown environment 'prod-e' (did you mean "
        "'prod-eu'?); environments: base, staging, prod-eu"
    )


def test_rules_for_the_same_field_conflict_only_where_their_environments_overlap() -> None:
    tag = "images.[name=registry.example.com/fraud].newTag"
    extra = (
        f"      - file: kustomization.yaml\n        field: {tag}\n"
        '        value: "base-{version}"\n        environments: [base]\n'
    )
    assert load_config(CONFIG + extra).models[0].set[4].environments == ("base",)  # disjoint
    overlapping = extra.replace("[base]", "[base, prod-eu]")
    with pytest.raises(ConfigError) as caught:
        load_config(CONFIG + overlapping)
    assert [i.message for i in caught.value.issues] == [
        "models[0].set[4].field: sets the same field as set[3] in environment 'prod-eu'"
    ]


def test_traffic_rule_scoped_away_from_the_target_refuses_traffic(tmp_path: Path) -> None:
    traffic = (
        "    traffic:\n      file: ../../../base/deploy.yaml\n      baseline: spec.a\n"
        "      candidate: spec.b\n      environments: [prod-eu]\n"
    )
    root = make_repo(tmp_path, CONFIG + traffic)
    with pytest.raises(PlanError, match="no `traffic` rule for environment 'staging'"):
        plan_for(root, "staging", traffic=(90, 10))


def test_environment_without_any_rule_of_the_model_is_refused_by_name(tmp_path: Path) -> None:
    config = CONFIG.replace("environments: [base]", "environments: [staging]").replace(
        "file: deploy.yaml\n", "file: ../../base/other.yaml\n"
    )
    root = make_repo(tmp_path, config)
    with pytest.raises(PlanError, match="no `set` rule for environment 'base'"):
        plan_for(root, "base")
