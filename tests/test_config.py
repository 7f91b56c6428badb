"""Tests for loading and validating .gitops-bot.yaml (bot.core.config)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from bot.core.config import (
    check_field_path,
    find_config_line,
    load_config,
    load_config_bytes,
    schema,
)
from bot.core.errors import ConfigError, ConfigIssue
from bot.core.types import (
    Approvals,
    Config,
    Environment,
    Model,
    SetRule,
    TrafficRule,
    Trigger,
)

EXAMPLE = (
    Path(__file__).resolve().parent.parent / "examples" / "fraud-detection" / ".gitops-bot.yaml"
)


def _yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# Small valid config the invalid cases below are variations of (line numbers matter).
HEAD = _yaml(
    """
    version: 1
    environments:
      - name: staging
        path: k8s/overlays/staging
        auto_merge: true
      - name: production
        path: k8s/overlays/production
        promote_from: staging
    """
)
MODELS = _yaml(
    """
    models:
      - name: fraud
        registry_name: fraud-detector
        set:
          - file: model-config.yaml
            field: data.uri
            value: "{storage_uri}"
    """
)


def _issues(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config(text)
    return caught.value.issues


# --------------------------------------------------------------------------- valid


def test_example_config_loads_into_the_expected_dataclasses() -> None:
    config = load_config(EXAMPLE.read_text(encoding="utf-8"))
    assert config == Config(
        version=1,
        environments=(
            Environment(
                name="staging",
                path="k8s/overlays/staging",
                auto_merge=True,
                storage_schemes=("s3",),
                argocd_application="fraud-detection-staging",
            ),
            Environment(
                name="production",
                path="k8s/overlays/production",
                promote_from="staging",
                approvals=Approvals(required=1, users=("alice",), teams=("ml-platform",)),
                merge_method="squash",
                storage_schemes=("s3",),
                production=True,
                argocd_application="fraud-detection-production",
            ),
        ),
        models=(
            Model(
                name="fraud-v2-candidate",
                registry_name="fraud-detector",
                set=(
                    SetRule("model-config.yaml", "data.fraud-v2-storage-uri", "{storage_uri}"),
                    SetRule(
                        "kustomization.yaml", "images.[name=fraud-detector].newTag", "v{version}"
                    ),
                ),
                traffic=TrafficRule(
                    file="experiment-patch.yaml",
                    baseline="spec.candidates.[name=fraud-v1-baseline].weight",
                    candidate="spec.candidates.[name=fraud-v2-candidate].weight",
                ),
            ),
        ),
        triggers=(
            Trigger(on="model_version.created", promote_to="staging", model="fraud-v2-candidate"),
            Trigger(on="model_version_alias.created", promote_to="production", alias="champion"),
        ),
    )
    assert config.model_by_registry_name("fraud-detector") is config.models[0]


def test_defaults_and_normalised_paths() -> None:
    config = load_config(
        _yaml(
            """
            version: 1
            environments:
              - name: dev
                path: ./k8s/overlays/dev/
                required_checks: [ci/build]
                merge_method: rebase
            triggers:
              - on: model_version_tag.set
                tag: stage=ready
                promote_to: dev
            """
        )
    )
    env = config.environments[0]
    assert env == Environment(
        name="dev", path="k8s/overlays/dev", merge_method="rebase", required_checks=("ci/build",)
    )
    assert config.models == ()
    assert config.triggers == (
        Trigger(on="model_version_tag.set", promote_to="dev", tag="stage=ready"),
    )


def test_literal_braces_and_constant_values_are_accepted() -> None:
    config = load_config(HEAD + MODELS.replace('"{storage_uri}"', '"{{literal}}-{version}"'))
    assert config.models[0].set[0].value == "{{literal}}-{version}"


# --------------------------------------------------------------------------- invalid

INVALID = [
    pytest.param(
        HEAD + "    merge_method: fast\n",
        9,
        "environments[1].merge_method: 'fast' is not one of merge, squash, rebase",
        id="enum",
    ),
    pytest.param(
        HEAD + "    merge_method: sqash\n",
        9,
        "'sqash' is not one of merge, squash, rebase (did you mean 'squash'?)",
        id="enum-did-you-mean",
    ),
    pytest.param(
        HEAD.replace("auto_merge: true", "auto_merg: true"),
        5,
        "environments[0]: unknown key 'auto_merg' (did you mean 'auto_merge'?); allowed: name,",
        id="unknown-key",
    ),
    pytest.param(
        HEAD + "trigers: []\n",
        9,
        "unknown key 'trigers' (did you mean 'triggers'?)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        HEAD.replace("    path: k8s/overlays/production", "   path: k8s/overlays/production"),
        7,
        "invalid YAML: ",
        id="yaml-syntax",
    ),
    pytest.param(
        HEAD.replace("    promote_from: staging", "    path: again"),
        8,
        'invalid YAML: found duplicate key "path"',
        id="yaml-duplicate-key",
    ),
    pytest.param(
        "version: 1\nenvironments:\n  - name: a\n    path: 'unterminated\n",
        4,
        "invalid YAML: ",
        id="yaml-unterminated-quote",
    ),
    pytest.param(
        HEAD.replace("name: production", "name: staging"),
        6,
        "environments[1].name: duplicate name 'staging' (already used by environments[0])",
        id="duplicate-environment",
    ),
    pytest.param(
        HEAD
        + MODELS
        + MODELS.replace("models:\n", "").replace(
            "registry_name: fraud-detector", "registry_name: x"
        ),
        16,
        "models[1].name: duplicate name 'fraud'",
        id="duplicate-model",
    ),
    pytest.param(
        HEAD.replace("promote_from: staging", "promote_from: stagin"),
        8,
        "environments[1].promote_from: unknown environment 'stagin' (did you mean 'staging'?); "
        "environments: staging, production",
        id="promote-from-unknown",
    ),
    pytest.param(
        HEAD.replace("promote_from: staging", "promote_from: production"),
        8,
        "environments[1].promote_from: cannot promote from itself",
        id="promote-from-itself",
    ),
    pytest.param(
        HEAD.replace("auto_merge: true", "promote_from: production"),
        5,
        "promote_from forms a cycle: staging -> production -> staging",
        id="promote-from-cycle",
    ),
    pytest.param(
        HEAD + "    approvals:\n      required: 2\n      users: [alice]\n",
        10,
        "environments[1].approvals.required: 2 approvals can never be given: only 1 user(s) "
        "may approve (alice) and no teams are listed",
        id="approvals-impossible",
    ),
    pytest.param(
        HEAD + "    approvals:\n      required: -1\n",
        10,
        "environments[1].approvals.required: -1 is less than 0",
        id="approvals-negative",
    ),
    pytest.param(
        HEAD + "    approvals:\n      users: ['@alice']\n",
        10,
        "environments[1].approvals.users[0]: '@alice' is not allowed: A GitHub login without '@'.",
        id="approver-with-at",
    ),
    pytest.param(
        HEAD + MODELS.replace("field: data.uri", "field: images.[name=fraud.newTag"),
        14,
        "models[0].set[0].field: unclosed '[' at character 8 of 'images.[name=fraud.newTag'",
        id="field-path-unclosed",
    ),
    pytest.param(
        HEAD + MODELS.replace("field: data.uri", "field: spec..storageUri"),
        14,
        "models[0].set[0].field: empty segment at character 6 of 'spec..storageUri'",
        id="field-path-empty-segment",
    ),
    pytest.param(
        HEAD + MODELS.replace("field: data.uri", "field: spec.candidates.*.weight"),
        14,
        "wildcard '*' in 'spec.candidates.*.weight' is not supported",
        id="field-path-wildcard",
    ),
    pytest.param(
        HEAD + MODELS.replace('"{storage_uri}"', '"v{versoin}"'),
        15,
        "models[0].set[0].value: unknown placeholder {versoin} (did you mean {version}?); "
        "allowed: {storage_uri}, {version}, {model}, {registry_name}, {run_id}",
        id="template-unknown-placeholder",
    ),
    pytest.param(
        HEAD + MODELS.replace('"{storage_uri}"', '"{storage_uri"'),
        15,
        "models[0].set[0].value: invalid template '{storage_uri': ",
        id="template-unbalanced-brace",
    ),
    pytest.param(
        HEAD + MODELS.replace('"{storage_uri}"', '"{version!r}"'),
        15,
        "placeholder {version} takes no format spec or conversion",
        id="template-conversion",
    ),
    pytest.param(
        HEAD.replace("path: k8s/overlays/staging", "path: /srv/k8s/staging"),
        4,
        "environments[0].path: '/srv/k8s/staging' must be a relative path inside the repository",
        id="absolute-path",
    ),
    pytest.param(
        HEAD.replace("path: k8s/overlays/staging", "path: k8s/../../elsewhere"),
        4,
        "environments[0].path: 'k8s/../../elsewhere' leaves the repository",
        id="dotdot-environment-path",
    ),
    pytest.param(
        HEAD + MODELS.replace("file: model-config.yaml", "file: ../../../../secrets.yaml"),
        13,
        "models[0].set[0].file: '../../../../secrets.yaml' leaves the repository from environment "
        "'staging'",
        id="dotdot-set-file",
    ),
    pytest.param(
        HEAD.replace("version: 1", "version: 2"),
        1,
        "version: 2 is not supported; the only version is 1",
        id="version-2",
    ),
    pytest.param(
        HEAD.replace("version: 1\n", "# no version\n"),
        2,
        "missing required key 'version'",
        id="version-missing",
    ),
    pytest.param(
        HEAD.replace("    path: k8s/overlays/production\n", ""),
        6,
        "environments[1]: missing required key 'path'",
        id="missing-path",
    ),
    pytest.param(
        HEAD.replace("auto_merge: true", "auto_merge: yes"),
        5,
        "environments[0].auto_merge: expected true or false, got 'yes' (write true or false)",
        id="yes-is-not-a-boolean",
    ),
    pytest.param(
        HEAD.replace("auto_merge: true", "promote_from:"),
        5,
        "expected a string or a mapping, got an empty value",
        id="empty-value",
    ),
    pytest.param(
        HEAD + "triggers:\n  - on: model_version_alias.created\n    promote_to: production\n",
        10,
        "triggers[0]: missing required key 'alias' (needed when on is model_version_alias.created)",
        id="alias-trigger-without-alias",
    ),
    pytest.param(
        HEAD + "triggers:\n  - on: model_version.created\n    alias: champion\n    promote_to: x\n",
        11,
        "triggers[0].alias: is only used with 'on: model_version_alias.created'",
        id="alias-on-wrong-event",
    ),
    pytest.param(
        HEAD + "triggers:\n  - on: model_version.created\n    promote_to: prod\n",
        11,
        "triggers[0].promote_to: unknown environment 'prod' (did you mean 'production'?)",
        id="trigger-unknown-environment",
    ),
    pytest.param(
        HEAD
        + MODELS
        + "triggers:\n  - on: model_version.created\n    model: frod\n    promote_to: staging\n",
        18,
        "triggers[0].model: unknown model 'frod' (did you mean 'fraud'?); models: fraud",
        id="trigger-unknown-model",
    ),
    pytest.param(
        HEAD + "triggers:\n  - on: model_version.deleted\n    promote_to: staging\n",
        10,
        "triggers[0].on: 'model_version.deleted' is not one of model_version.created, "
        "model_version_alias.created, model_version_tag.set",
        id="trigger-unknown-event",
    ),
    pytest.param(
        HEAD
        + MODELS
        + "    traffic:\n      file: e.yaml\n      baseline: a.b\n      candidate: a.b\n",
        19,
        "models[0].traffic.candidate: is the same field as baseline",
        id="traffic-same-field",
    ),
    pytest.param(
        HEAD.replace("name: staging", "name: 'staging env'"),
        3,
        "environments[0].name: 'staging env' is not allowed: Letters, digits",
        id="name-with-space",
    ),
    pytest.param(
        HEAD
        + MODELS.replace(
            "registry_name: fraud-detector",
            "registry_name: fraud-detector\n    version_pattern: '[0-9'",
        ),
        12,
        "models[0].version_pattern: is not a regular expression",
        id="version-pattern-not-a-regex",
    ),
    pytest.param(
        HEAD
        + MODELS.replace(
            "registry_name: fraud-detector",
            "registry_name: fraud-detector\n    version_pattern: '[0-9]*'",
        ),
        12,
        "models[0].version_pattern: matches the empty string",
        id="version-pattern-matches-nothing",
    ),
    pytest.param(
        "",
        1,
        "the file is empty; expected a mapping starting with 'version: 1'",
        id="empty-file",
    ),
    pytest.param(
        "- version: 1\n",
        1,
        "expected a mapping, got a list",
        id="top-level-list",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), INVALID)
def test_invalid_config_reports_message_and_line(text: str, line: int, message: str) -> None:
    issues = _issues(text)
    matching = [issue for issue in issues if message in issue.message]
    assert matching, f"no issue contains {message!r}; got {[str(i) for i in issues]}"
    assert matching[0].line == line, str(matching[0])
    assert matching[0].file == ".gitops-bot.yaml"


def test_all_issues_are_reported_at_once_in_line_order() -> None:
    text = _yaml(
        """
        version: 1
        environments:
          - name: staging
            path: /abs
            merge_method: fast
          - name: staging
            path: k8s/overlays/production
            colour: blue
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_config(text, filename="repo/.gitops-bot.yaml")
    lines = [issue.line for issue in caught.value.issues]
    assert lines == [4, 5, 6, 8]
    assert str(caught.value).splitlines()[1] == (
        "repo/.gitops-bot.yaml:5: environments[0].merge_method: "
        "'fast' is not one of merge, squash, rebase"
    )


def test_required_approvals_with_teams_are_not_bounded_by_user_count() -> None:
    config = load_config(
        HEAD
        + "    approvals:\n      required: 3\n      users: [alice]\n      teams: [ml-platform]\n"
    )
    assert config.environments[1].approvals == Approvals(3, ("alice",), ("ml-platform",))


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("data.fraud-v2-storage-uri", True),
        ("images.[name=fraud-detector].newTag", True),
        ("spec.candidates.[name=fraud.v2].weight", True),
        ("spec.template.spec.containers.[name=api].env.[name=LOG_LEVEL].value", True),
        ("", False),
        (".spec", False),
        ("spec.", False),
        ("spec.[name=a", False),
        ("spec.name=a]", False),
        ("spec.containers[name=a].image", False),
        ("spec.*.image", False),
        ("metadata.annotations.[config.kubernetes.io/local-config]", True),
    ],
)
def test_check_field_path(path: str, ok: bool) -> None:
    assert (check_field_path(path) is None) is ok


def test_find_config_line_points_at_nested_entries() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    line = find_config_line(text, ["models", 0, "set", 1, "field"])
    assert line is not None
    assert "images.[name=fraud-detector].newTag" in text.splitlines()[line - 1]
    assert find_config_line("a: [", ["a"]) is None


# --------------------------------------------------------------------------- schema


def test_schema_is_valid_draft_2020_12_and_documents_every_property() -> None:
    published = schema()
    Draft202012Validator.check_schema(published)
    assert published["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                assert "description" in sub or "$ref" in sub, f"{where}.{name} has no description"
            for key, sub in node.items():
                if key != "if":  # conditions, not documented properties
                    walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(published, "#")


def test_example_config_validates_against_the_published_schema() -> None:
    data = YAML(typ="safe").load(EXAMPLE.read_text(encoding="utf-8"))
    errors = list(Draft202012Validator(schema()).iter_errors(data))
    assert errors == []


def test_schema_rejects_what_the_loader_rejects_structurally() -> None:
    data = YAML(typ="safe").load(HEAD.replace("auto_merge: true", "auto_merg: true"))
    assert not Draft202012Validator(schema()).is_valid(data)


# --------------------------------------------------------------------------- hostile YAML

EXAMPLE_CONFIG = Path(__file__).parent.parent / "examples/fraud-detection/.gitops-bot.yaml"
LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else 'x, x, x, x, x, x, x, x, x'}]\n"
    for prev, name in zip(["", "a", "b", "c", "d", "e", "f"], "abcdefg", strict=True)
)


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (("users: [alice]\n      teams: [ml-platform]", "users: [{login: alice}]"), 22,
         "approvals.users[0]: expected a string, got a mapping"),
        (("users: [alice]\n      teams: [ml-platform]", "users: [[a], b]"), 22,
         "approvals.users[0]: expected a string, got a list"),
        (("version: 1", "version: !!set 1"), 3, "YAML tags (!!set) are not used"),
        (("version: 1", "version: !!omap x"), 3, "YAML tags (!!omap) are not used"),
        (("version: 1", "version: !!int one"), 3, "YAML tags (!!int) are not used"),
        (("auto_merge: true ", "auto_merge: !!bool maybe"), 8, "YAML tags (!!bool)"),
        (("version: 1", "version: 1\n? [a, b]\n: 1"), 4, "cannot be a mapping key"),
        (("version: 1", "version: 1\nx: " + "[" * 248 + "]" * 248), 4, "nested more than 32"),
        (("version: 1", "version: 1\n" + LAUGHS), 8, "aliases expand to more than 20000"),
    ],
    ids=["users-dicts", "users-lists", "set", "omap", "int", "bool", "complex-key", "deep",
         "laughs"],
)  # fmt: skip
def test_hostile_yaml_is_a_config_error_with_its_line(edit, line, message):
    text = EXAMPLE_CONFIG.read_text()
    assert edit[0] in text
    issues = _issues(text.replace(edit[0], edit[1]))  # aliases counted, never expanded
    matching = [i for i in issues if message in i.message]
    assert matching, [str(i) for i in issues]
    assert matching[0].line == line


def test_a_config_that_is_not_utf8_is_a_config_error_naming_the_line():
    raw = EXAMPLE_CONFIG.read_bytes().replace(b"name: staging", b"name: stag\xe9ing")
    with pytest.raises(ConfigError) as caught:
        load_config_bytes(raw)
    [issue] = caught.value.issues
    assert issue.line == 6 and "not UTF-8" in issue.message


def test_check_config_on_a_non_utf8_file_exits_2_with_the_reason(tmp_path, capsys):
    from bot.cli import main

    (tmp_path / ".gitops-bot.yaml").write_bytes(b"version: 1\nenvironments: [\xff]\n")
    assert main(["check-config", str(tmp_path)]) == 2
    assert ".gitops-bot.yaml:2: the file is not UTF-8" in capsys.readouterr().err


def test_a_name_with_a_trailing_newline_is_refused():
    text = EXAMPLE_CONFIG.read_text().replace("name: staging", 'name: "staging\\n"', 1)
    issues = _issues(text)
    assert any(
        i.line == 6 and "environments[0].name" in i.message and "control character" in i.message
        for i in issues
    ), [str(i) for i in issues]


# --------------------------------------------------------------------------- after the merge


SOAKED = HEAD.replace(
    "    auto_merge: true\n",
    "    auto_merge: true\n    argocd: {application: fraud-staging}\n",
).replace("promote_from: staging", "promote_from: {env: staging, healthy_for: 1h30m}")


def test_promote_from_with_a_soak_time_keeps_the_upstream_name_and_reads_the_duration() -> None:
    config = load_config(SOAKED + MODELS)
    production = config.environment("production")
    assert production is not None
    assert (production.promote_from, production.healthy_for_s) == ("staging", 5400.0)
    staging = config.environment("staging")
    assert staging is not None and staging.argocd_application == "fraud-staging"
    assert config.environment_of_application("fraud-staging") == staging
    assert config.environment_of_application("fraud-prod") is None


def test_plain_promote_from_has_no_soak_time() -> None:
    production = load_config(HEAD + MODELS).environment("production")
    assert production is not None
    assert (production.promote_from, production.healthy_for_s) == ("staging", 0.0)
    assert not production.production and production.argocd_application is None


def test_a_malformed_soak_time_is_reported_on_its_line() -> None:
    issues = _issues(SOAKED.replace("1h30m", "90 minutes") + MODELS)
    assert [(i.line, i.message) for i in issues] == [
        (
            9,
            "environments[1].promote_from.healthy_for: '90 minutes' is not allowed: A duration: "
            "numbers with a unit s, m, h or d (e.g. 30m, 1h30m, 2d).",
        )
    ]


def test_a_soak_time_needs_the_upstream_argo_cd_application() -> None:
    text = SOAKED.replace("    argocd: {application: fraud-staging}\n", "")
    messages = [i.message for i in _issues(text + MODELS)]
    assert messages == [
        "environments[1].promote_from.healthy_for: needs environment 'staging' to name its "
        "Argo CD application (argocd.application): its health comes from Argo CD's notifications"
    ]


def test_promote_from_of_the_wrong_shape_says_what_it_takes() -> None:
    text = HEAD.replace("promote_from: staging", "promote_from: [staging]")
    assert [i.message for i in _issues(text + MODELS)] == [
        "environments[1].promote_from: expected a string or a mapping, got a list"
    ]


def test_one_argo_cd_application_syncs_one_environment() -> None:
    text = SOAKED.replace(
        "promote_from: {env: staging, healthy_for: 1h30m}",
        "promote_from: staging\n    argocd: {application: fraud-staging}",
    )
    assert [i.message for i in _issues(text + MODELS)] == [
        "environments[1].argocd.application: application 'fraud-staging' already syncs "
        "environment 'staging'"
    ]


def test_a_flagger_canary_and_its_failure_policy_are_read() -> None:
    text = HEAD.replace(
        "    auto_merge: true\n",
        "    auto_merge: true\n"
        "    flagger: {canary: fraud-detector, namespace: fraud-staging}\n"
        "    on_canary_failure: rollback\n",
    )
    config = load_config(text + MODELS)
    staging = config.environment("staging")
    assert staging is not None
    assert staging.flagger_canary == ("fraud-staging", "fraud-detector")
    assert staging.on_canary_failure == "rollback"
    assert config.environment_of_canary("fraud-staging", "fraud-detector") == staging
    assert config.environment_of_canary("fraud-detection", "fraud-detector") is None
    production = config.environment("production")
    assert production is not None and production.on_canary_failure == "none"


def test_rolling_back_on_canary_failure_needs_a_canary() -> None:
    text = HEAD.replace(
        "    auto_merge: true\n", "    auto_merge: true\n    on_canary_failure: rollback\n"
    )
    assert [i.message for i in _issues(text + MODELS)] == [
        "environments[0].on_canary_failure: needs flagger (the canary whose failure triggers "
        "the rollback)"
    ]
