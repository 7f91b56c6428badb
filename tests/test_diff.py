"""Tests for the rendered diff: semantic changes, unified diff, redaction, broken renders."""

from __future__ import annotations

import base64

from bot.core.diff import diff_environment, redact_rendered, resource_list
from bot.core.graph import MISSING_OVERLAY_ERROR
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
