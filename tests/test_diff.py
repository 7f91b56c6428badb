"""Tests for the rendered diff: semantic changes, unified diff, redaction, broken renders."""

from __future__ import annotations

import base64

from bot.core.diff import LINE_MATCH_LIMIT, diff_environment, resource_list
from bot.core.graph import MISSING_OVERLAY_ERROR
from bot.core.rendered import redact_rendered
from bot.core.types import EnvironmentDiff, FieldChange, RenderResult

OVERLAY = "overlays/prod"


def isvc(uri: str, *, namespace: str = "prod", name: str = "fraud-model") -> str:
    return f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
  namespace: {namespace}
spec:
  predictor:
    model:
      storageUri: {uri}
"""


def secret(value: str, *, string_data: str = "") -> str:
    encoded = base64.b64encode(value.encode()).decode()
    text = f"""apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: prod
data:
  password: {encoded}
"""
    if string_data:
        text += f"stringData:\n  token: {string_data}\n"
    return text


def ok(*docs: str) -> RenderResult:
    return RenderResult(OVERLAY, ok=True, output="---\n".join(docs))


def everything(diff: EnvironmentDiff) -> str:
    """Every piece of text a report could show from a diff."""
    parts = [diff.unified_diff, diff.base.output, diff.head.output, diff.base.error]
    parts += [diff.head.error, *resource_list(diff)]
    for change in diff.changes:
        parts.append(change.resource)
        for f in change.fields:
            parts += [f.path, f.old or "", f.new or ""]
    return "\n".join(parts)


def test_storage_uri_change_is_a_dotted_field_change():
    diff = diff_environment("prod", OVERLAY, ok(isvc("s3://m/1")), ok(isvc("s3://m/2")))
    assert len(diff.changes) == 1
    change = diff.changes[0]
    assert change.resource == "InferenceService/prod/fraud-model"
    assert change.status == "changed"
    assert change.fields == (
        FieldChange("spec.predictor.model.storageUri", "s3://m/1", "s3://m/2"),
    )
    assert diff.counts == {"added": 0, "changed": 1, "removed": 0}


def test_unified_diff_has_overlay_headers_and_per_resource_hunks():
    diff = diff_environment("prod", OVERLAY, ok(isvc("s3://m/1")), ok(isvc("s3://m/2")))
    lines = diff.unified_diff.splitlines()
    assert lines[0] == f"--- base/{OVERLAY}"
    assert lines[1] == f"+++ head/{OVERLAY}"
    assert lines[2].startswith("@@ ") and lines[2].endswith(" InferenceService/prod/fraud-model")
    assert "-      storageUri: s3://m/1" in lines
    assert "+      storageUri: s3://m/2" in lines


def test_identical_renders_have_no_changes_and_no_unified_diff():
    diff = diff_environment("prod", OVERLAY, ok(isvc("s3://m/1")), ok(isvc("s3://m/1")))
    assert diff.changes == ()
    assert diff.unified_diff == ""


def test_key_order_and_document_order_do_not_count_as_changes():
    a = ok(isvc("s3://m/1"), isvc("s3://x", name="other"))
    reordered = "kind: InferenceService\napiVersion: serving.kserve.io/v1beta1\n" + "\n".join(
        isvc("s3://m/1").splitlines()[2:]
    )
    b = ok(isvc("s3://x", name="other"), reordered)
    assert diff_environment("prod", OVERLAY, a, b).changes == ()


def test_added_and_removed_resources_in_stable_order():
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: prod\n"
    ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n"
    base = ok(isvc("s3://m/1", name="zeta"), cm)
    head = ok(ns, isvc("s3://m/1", name="alpha"), isvc("s3://m/1", name="zeta"))
    diff = diff_environment("prod", OVERLAY, base, head)
    assert [(c.status, c.resource) for c in diff.changes] == [
        ("removed", "ConfigMap/prod/cfg"),
        ("added", "InferenceService/prod/alpha"),
        ("added", "Namespace/prod"),
    ]
    assert resource_list(diff) == [
        "removed ConfigMap/prod/cfg",
        "added InferenceService/prod/alpha",
        "added Namespace/prod",
    ]
    assert "+  name: alpha" in diff.unified_diff.splitlines()
    assert "-  name: cfg" in diff.unified_diff.splitlines()


def test_named_list_items_are_addressed_by_name():
    def deploy(image: str, extra: str = "") -> str:
        return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: app, namespace: prod}}
spec:
  template:
    spec:
      containers:
{extra}      - name: main
        image: {image}
        args: [--port, "8080"]
"""

    sidecar = "      - name: sidecar\n        image: envoy\n"
    diff = diff_environment("prod", OVERLAY, ok(deploy("app:1")), ok(deploy("app:2", sidecar)))
    fields = diff.changes[0].fields
    assert FieldChange("spec.template.spec.containers[name=main].image", "app:1", "app:2") in fields
    assert FieldChange("spec.template.spec.containers[name=sidecar].image", None, "envoy") in fields
    # moving main from index 0 to 1 is not a change by itself
    assert not any("args" in f.path for f in fields)


def test_unnamed_list_items_are_addressed_by_index_and_odd_keys_are_quoted():
    base = "kind: ConfigMap\nmetadata: {name: c, annotations: {a.b/c: x}}\ndata: {}\nlist: [1, 2]\n"
    head = "kind: ConfigMap\nmetadata: {name: c, annotations: {a.b/c: y}}\ndata: {}\nlist: [1, 3]\n"
    fields = diff_environment("e", OVERLAY, ok(base), ok(head)).changes[0].fields
    assert fields == (
        FieldChange("list[1]", "2", "3"),
        FieldChange('metadata.annotations["a.b/c"]', "x", "y"),
    )


def test_secret_value_change_is_shown_redacted_and_plaintext_appears_nowhere():
    old_plain, new_plain = "hunter2", "correct-horse"
    base = ok(secret(old_plain, string_data="tok-old"), isvc("s3://m/1"))
    head = ok(secret(new_plain, string_data="tok-new"), isvc("s3://m/1"))
    diff = diff_environment("prod", OVERLAY, base, head)

    [change] = diff.changes
    assert change.resource == "Secret/prod/creds"
    paths = {f.path: f for f in change.fields}
    assert set(paths) == {"data.password", "stringData.token"}
    for field in paths.values():
        assert field.old is not None and field.old.startswith("<redacted sha256:")
        assert field.new is not None and field.new.startswith("<redacted sha256:")
        assert field.old != field.new
    text = everything(diff)
    for plain in (old_plain, new_plain, "tok-old", "tok-new"):
        assert plain not in text
        assert base64.b64encode(plain.encode()).decode() not in text
    assert "<redacted sha256:" in diff.unified_diff


def test_unchanged_secret_value_gives_equal_markers_and_no_change():
    diff = diff_environment("prod", OVERLAY, ok(secret("same")), ok(secret("same")))
    assert diff.changes == ()


def test_redaction_is_keyed_so_markers_are_not_plain_hashes_of_the_value():
    import hashlib

    redacted = redact_rendered(secret("pw"))
    encoded = base64.b64encode(b"pw").decode()
    for candidate in (b"pw", encoded.encode()):
        assert hashlib.sha256(candidate).hexdigest()[:12] not in redacted
    assert "cHc=" not in redacted


def test_last_applied_configuration_annotation_is_redacted():
    doc = """apiVersion: v1
kind: ConfigMap
metadata:
  name: c
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"data":{"password":"s3cr3t"}}'
    keep: visible
"""
    text = redact_rendered(doc)
    assert "s3cr3t" not in text
    assert "keep: visible" in text
    assert "kubectl.kubernetes.io/last-applied-configuration: <redacted sha256:" in text


def test_unparseable_output_is_withheld_rather_than_shown():
    leaked = "kind: Secret\ndata: {password: aHVudGVyMg==\n"
    assert "aHVudGVyMg" not in redact_rendered(leaked)


def test_broken_head_has_no_changes_and_keeps_the_error():
    head = RenderResult(OVERLAY, ok=False, error="accumulating resources: missing.yaml")
    diff = diff_environment("prod", OVERLAY, ok(isvc("s3://m/1")), head)
    assert diff.changes == ()
    assert diff.unified_diff == ""
    assert diff.head.error == "accumulating resources: missing.yaml"
    assert diff.base.ok


def test_broken_base_diffs_head_against_empty():
    base = RenderResult(OVERLAY, ok=False, error="was broken")
    diff = diff_environment("prod", OVERLAY, base, ok(isvc("s3://m/1")))
    assert [(c.status, c.resource) for c in diff.changes] == [
        ("added", "InferenceService/prod/fraud-model")
    ]
    assert diff.base.error == "was broken"
    assert "+      storageUri: s3://m/1" in diff.unified_diff.splitlines()


def test_overlay_missing_on_one_side_is_treated_as_empty():
    gone = RenderResult(OVERLAY, ok=False, error=MISSING_OVERLAY_ERROR)
    removed = diff_environment("prod", OVERLAY, ok(isvc("s3://m/1")), gone)
    added = diff_environment("prod", OVERLAY, gone, ok(isvc("s3://m/1")))
    assert [c.status for c in removed.changes] == ["removed"]
    assert [c.status for c in added.changes] == ["added"]


def test_secret_in_base_render_output_is_redacted_in_the_result():
    diff = diff_environment("prod", OVERLAY, ok(secret("topsecret")), ok(isvc("s3://m/1")))
    encoded = base64.b64encode(b"topsecret").decode()
    assert encoded not in diff.base.output
    assert "Secret" in diff.base.output
    assert [c.status for c in diff.changes] == ["added", "removed"]


def test_scalars_follow_yaml_1_2_as_kustomize_writes_them():
    def cm(mode: str, flag: str) -> str:
        return f"kind: ConfigMap\nmetadata: {{name: c}}\ndata: {{mode: {mode}, flag: {flag}}}\n"

    diff = diff_environment("e", OVERLAY, ok(cm("0755", "yes")), ok(cm("0644", "no")))
    # YAML 1.1 would have shown octal 493 -> 420 and True -> False
    assert diff.changes[0].fields == (
        FieldChange("data.flag", "yes", "no"),
        FieldChange("data.mode", "0755", "0644"),
    )


def test_unified_diff_keeps_kustomizes_own_text_of_unredacted_resources():
    def deploy(tag: str) -> str:
        return (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n"
            f"spec:\n  zeta: 1\n  alpha: 2\n  image: app:{tag}\n"
        )

    diff = diff_environment("e", OVERLAY, ok(deploy("v1")), ok(deploy("v2")))
    lines = diff.unified_diff.splitlines()
    assert lines.index("   zeta: 1") < lines.index("   alpha: 2")  # not re-sorted
    assert "-  image: app:v1" in lines and "+  image: app:v2" in lines


def test_a_secret_spelled_with_escapes_is_still_redacted_even_when_unchanged():
    encoded = base64.b64encode(b"escaped-secret").decode()
    sneaky = f'apiVersion: v1\nkind: "\\x53ecret"\nmetadata: {{name: s}}\ndata: {{pw: {encoded}}}\n'
    tagged = f"apiVersion: v1\nkind: !!str Secret\nmetadata: {{name: t}}\ndata: {{pw: {encoded}}}\n"
    base = ok(sneaky, tagged, isvc("s3://m/1"))
    head = ok(sneaky, tagged, isvc("s3://m/2"))
    diff = diff_environment("e", OVERLAY, base, head)
    assert encoded not in everything(diff)
    assert diff.base.output.count("<redacted sha256:") == 2


def test_a_changed_generated_secret_name_is_redacted_in_the_resources_that_name_it():
    def render(suffix: str, value: bytes) -> RenderResult:
        name = f"db-creds-{suffix}"
        data = base64.b64encode(value).decode()
        secret_doc = (
            f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ndata:\n  pw: {data}\n"
        )
        pod = (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  zeta: 1\n"
            f"  secretName: {name}\n"
        )
        return ok(secret_doc, pod)

    diff = diff_environment(
        "e", OVERLAY, render("bcdfghjklm", b"one"), render("2456789bcd", b"two")
    )
    text = everything(diff)
    assert "bcdfghjklm" not in text and "2456789bcd" not in text
    [pod] = [c for c in diff.changes if c.resource == "Pod/p"]
    assert pod.fields[0].path == "spec.secretName"
    assert pod.fields[0].old.startswith("db-creds-<redacted sha256:")  # type: ignore[union-attr]
    pod_hunk = diff.unified_diff.split(" Pod/p\n", 1)[1].split("@@")[0]
    # both sides re-dumped alike: only the reference changes, no reordering noise
    assert [line[0] for line in pod_hunk.splitlines() if line[:1] in "+-"] == ["-", "+"]


def test_a_huge_resource_gets_one_well_formed_hunk_instead_of_a_quadratic_line_match():
    def cm(prefix: str) -> str:
        lines = "".join(f"    line {prefix}{i}\n" for i in range(LINE_MATCH_LIMIT + 10))
        return f"kind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: |\n{lines}"

    diff = diff_environment("e", OVERLAY, ok(cm("a")), ok(cm("b")))
    body = diff.unified_diff.splitlines()[2:]
    header = body[0]
    assert header.startswith("@@ ") and header.endswith(" ConfigMap/big")
    old_range, new_range = header.split()[1:3]
    old_count, new_count = int(old_range.split(",")[1]), int(new_range.split(",")[1])
    assert old_count == sum(1 for line in body[1:] if line[0] in " -")
    assert new_count == sum(1 for line in body[1:] if line[0] in " +")
    assert sum(1 for line in body[1:] if line[0] == "-") == LINE_MATCH_LIMIT + 10
