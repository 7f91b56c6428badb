"""Format-preserving overlay edits: only the target value changes, errors are precise."""

from __future__ import annotations

import re
import subprocess
import sys
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from bot.core.errors import EditError
from bot.core.overlays import apply_edits, read_field, safe_repo_path

DATA = Path(__file__).parent / "data" / "overlays"


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def offset_after(content: bytes, context: bytes) -> int:
    """Index just after ``context``, which must occur exactly once."""
    assert content.count(context) == 1, f"context {context!r} is not unique"
    return content.index(context) + len(context)


def assert_only_span_changed(
    before: bytes, after: bytes, start: int, old: bytes, new: bytes
) -> None:
    """``before`` and ``after`` are identical except ``old`` -> ``new`` at ``start``."""
    assert before[start : start + len(old)] == old, before[start : start + len(old) + 20]
    assert after[start : start + len(new)] == new, after[start : start + len(new) + 20]
    assert before[:start] == after[:start]
    assert before[start + len(old) :] == after[start + len(new) :]


def edit(name: str, field: str, value: str | int, content: bytes | None = None) -> bytes:
    before = fixture(name) if content is None else content
    after, _ = apply_edits(name, before, [(field, value)])
    return after


def load_all(content: bytes) -> list[object]:
    """Independent reader for checking results (trailing tabs made spaces: ruamel rejects them)."""
    text = re.sub(r"\t(?=[ \t]*(\r?\n|$))", " ", content.decode("utf-8-sig"))
    return list(YAML(typ="safe", pure=True).load_all(text))


# --------------------------------------------------------------------------- kustomization.yaml


KUST = "kustomization.yaml"


def test_image_new_tag_edit_keeps_double_quotes_and_the_rest_of_the_file() -> None:
    before = fixture(KUST)
    after, applied = apply_edits(KUST, before, [("images.[name=fraud-detector].newTag", "v42")])
    start = offset_after(before, b"ml/fraud-detector\n    newTag: ")
    assert_only_span_changed(before, after, start, b'"v41"', b'"v42"')
    assert applied == (("images.[name=fraud-detector].newTag", "v41", "v42"),)


def test_image_new_name_edit_changes_only_the_plain_value() -> None:
    before = fixture(KUST)
    after = edit(KUST, "images.[name=fraud-detector].newName", "ghcr.io/acme/fraud")
    start = offset_after(before, b"newName: ")
    assert_only_span_changed(
        before, after, start, b"registry.example.com/ml/fraud-detector", b"ghcr.io/acme/fraud"
    )


def test_image_digest_edit_changes_only_the_digest() -> None:
    before = fixture(KUST)
    digest = "sha256:" + "ab" * 32
    after = edit(KUST, "images.[name=feature-proxy].digest", digest)
    start = offset_after(before, b"digest: ")
    assert_only_span_changed(before, after, start, b"sha256:" + b"0" * 64, digest.encode())


def test_missing_image_digest_is_created_as_one_line_aligned_with_its_siblings() -> None:
    before = fixture(KUST)
    after, applied = apply_edits(
        KUST, before, [("images.[name=fraud-detector].digest", "sha256:" + "1" * 64)]
    )
    start = offset_after(before, b'newTag: "v41"\n')
    line = b"    digest: sha256:" + b"1" * 64 + b"\n"
    assert_only_span_changed(before, after, start, b"", line)
    assert applied == (("images.[name=fraud-detector].digest", None, "sha256:" + "1" * 64),)


def test_config_map_generator_literal_value_is_edited_in_place() -> None:
    before = fixture(KUST)
    field = "configMapGenerator.[name=model-settings].literals.MODEL_URI"
    after, applied = apply_edits(KUST, before, [(field, "s3://models/fraud-detector/42")])
    start = offset_after(before, b"  - MODEL_URI=s3://models/fraud-detector/")
    assert_only_span_changed(before, after, start, b"41", b"42")
    assert applied == ((field, "s3://models/fraud-detector/41", "s3://models/fraud-detector/42"),)


def test_single_quoted_literal_keeps_its_quotes_and_escapes_apostrophes() -> None:
    before = fixture(KUST)
    after = edit(KUST, "configMapGenerator.[name=model-settings].literals.THRESHOLD", "o'k")
    start = offset_after(before, b"'THRESHOLD=")
    assert_only_span_changed(before, after, start, b"0.75'", b"o''k'")


def test_double_quoted_literal_keeps_its_quotes() -> None:
    before = fixture(KUST)
    after = edit(KUST, "configMapGenerator.[name=model-settings].literals.LOG_LEVEL", "debug")
    start = offset_after(before, b'"LOG_LEVEL=')
    assert_only_span_changed(before, after, start, b'info"', b'debug"')


def test_missing_literal_is_appended_as_a_list_item_aligned_with_the_others() -> None:
    before = fixture(KUST)
    field = "configMapGenerator.[name=model-settings].literals.MODEL_VERSION"
    after, applied = apply_edits(KUST, before, [(field, "42")])
    start = offset_after(before, b'"LOG_LEVEL=info"\n')
    assert_only_span_changed(before, after, start, b"", b"  - MODEL_VERSION=42\n")
    assert applied == ((field, None, "42"),)


def test_literal_whose_new_text_would_start_a_comment_is_quoted() -> None:
    before = fixture(KUST)
    field = "configMapGenerator.[name=model-settings].literals.MODEL_URI"
    after = edit(KUST, field, "a #b")
    start = offset_after(before, b"  literals:\n  - ")
    old = b"MODEL_URI=s3://models/fraud-detector/41"
    assert_only_span_changed(before, after, start, old, b'"MODEL_URI=a #b"')
    assert read_field(KUST, after, field) == "a #b"


def test_item_of_a_flow_list_next_to_other_items_is_edited_alone() -> None:
    before = fixture(KUST)
    after = edit(KUST, "resources.1", "model-config-v2.yaml")
    start = offset_after(before, b"resources: [../../base, ")
    assert_only_span_changed(before, after, start, b"model-config.yaml", b"model-config-v2.yaml")


def test_boolean_field_in_a_flow_mapping_stays_a_plain_boolean() -> None:
    before = fixture(KUST)
    after = edit(KUST, "configMapGenerator.0.options.disableNameSuffixHash", "false")
    start = offset_after(before, b"{disableNameSuffixHash: ")
    assert_only_span_changed(before, after, start, b"true", b"false")


# --------------------------------------------------------------------------- patches


PATCH = "experiment-patch.yaml"


def test_integer_weights_are_written_plain_and_keep_inline_comments() -> None:
    before = fixture(PATCH)
    after, applied = apply_edits(
        PATCH,
        before,
        [
            ("spec.candidates.[name=fraud-v1-baseline].weight", 70),
            ("spec.candidates.[name=fraud-v2-candidate].weight", 30),
        ],
    )
    assert applied == (
        ("spec.candidates.[name=fraud-v1-baseline].weight", "90", "70"),
        ("spec.candidates.[name=fraud-v2-candidate].weight", "10", "30"),
    )
    expected = before.replace(b"weight: 90    # percent", b"weight: 70    # percent").replace(
        b"weight: 10\n", b"weight: 30\n"
    )
    assert after == expected
    docs = load_all(after)
    assert [c["weight"] for c in docs[0]["spec"]["candidates"]] == [70, 30]  # type: ignore[index]


def test_string_value_for_an_integer_field_stays_a_plain_integer() -> None:
    before = fixture(PATCH)
    after = edit(PATCH, "spec.candidates.[name=fraud-v2-candidate].weight", "25")
    start = offset_after(before, b"fraud-v2-candidate\n    weight: ")
    assert_only_span_changed(before, after, start, b"10", b"25")


def test_integer_value_replaces_a_quoted_string_with_a_plain_integer() -> None:
    before = fixture(PATCH)
    after = edit(PATCH, "spec.candidates.[name=fraud-v2-candidate].version", 3)
    start = offset_after(before, b"weight: 10\n    version: ")
    assert_only_span_changed(before, after, start, b'"2"', b"3")


# --------------------------------------------------------------------------- plain manifests


CFG = "model-config.yaml"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("s3://models/fraud-detector/42", b"s3://models/fraud-detector/42"),
        ("v8", b"v8"),
        ("0", b'"0"'),
        ("true", b'"true"'),
        ("yes", b'"yes"'),  # YAML 1.1 boolean: quoted for 1.1 readers
        ("1.0", b'"1.0"'),
        ("null", b'"null"'),
        ("#34577c", b'"#34577c"'),
        (">=1.0.0", b'">=1.0.0"'),
        ("a: b", b'"a: b"'),
        ("x #y", b'"x #y"'),
        ("- item", b'"- item"'),
        ("", b'""'),
        (" padded ", b'" padded "'),
        ('say "hi" \\o/', b'say "hi" \\o/'),  # quotes inside a plain scalar are fine
        ('"hi" \\o/', b'"\\"hi\\" \\\\o/"'),
        ("'hi'", b"\"'hi'\""),
        ("[a]", b'"[a]"'),
        ("*ref", b'"*ref"'),
    ],
)
def test_plain_value_is_quoted_only_when_yaml_would_read_it_as_something_else(
    value: str, written: bytes
) -> None:
    before = fixture(CFG)
    after = edit(CFG, "data.fraud-v2-storage-uri", value)
    start = offset_after(before, b"fraud-v2-storage-uri: ")
    assert_only_span_changed(before, after, start, b"s3://models/fraud-detector/41", written)
    assert load_all(after)[0]["data"]["fraud-v2-storage-uri"] == value  # type: ignore[index]


def test_trailing_spaces_after_a_plain_value_survive() -> None:
    after = edit(CFG, "data.fraud-v2-storage-uri", "s3://x")
    assert b"  fraud-v2-storage-uri: s3://x   \n" in after


def test_quoted_zero_keeps_its_quotes() -> None:
    before = fixture(CFG)
    after = edit(CFG, "data.replicas-hint", "1")
    start = offset_after(before, b"replicas-hint: ")
    assert_only_span_changed(before, after, start, b'"0"', b'"1"')


def test_single_quoted_value_keeps_quotes_and_the_tab_after_it() -> None:
    before = fixture(CFG)
    after = edit(CFG, "data.owner", "o'brien")
    start = offset_after(before, b"owner: ")
    assert_only_span_changed(before, after, start, b"'ml-platform'", b"'o''brien'")
    assert b"'o''brien'\t\n  \n" in after


def test_double_quoted_value_with_escapes_is_replaced_with_correct_escapes() -> None:
    before = fixture(CFG)
    after = edit(CFG, "data.escaped", 'tab\there "quoted" back\\slash')
    start = offset_after(before, b"escaped: ")
    old = b'"tab\\there \\"q\\""'
    assert_only_span_changed(before, after, start, old, b'"tab\\there \\"quoted\\" back\\\\slash"')
    assert read_field(CFG, after, "data.escaped") == 'tab\there "quoted" back\\slash'


@pytest.mark.parametrize("field", ["data.[feature.flag]", "data.feature\\.flag"])
def test_key_containing_a_dot_is_addressed_with_brackets_or_an_escape(field: str) -> None:
    before = fixture(CFG)
    after = edit(CFG, field, "false")
    start = offset_after(before, b"feature.flag: ")
    assert_only_span_changed(before, after, start, b'"true"', b'"false"')


def test_last_value_of_a_file_without_final_newline_stays_without_newline() -> None:
    before = fixture(CFG)
    assert not before.endswith(b"\n")
    after = edit(CFG, "data.threshold", "0.9")
    assert_only_span_changed(before, after, len(before) - 4, b"0.75", b"0.9")


def test_key_created_at_the_end_of_a_file_without_final_newline_adds_no_final_newline() -> None:
    before = fixture(CFG)
    after = edit(CFG, "data.new-key", "value")
    assert_only_span_changed(before, after, len(before), b"", b"\n  new-key: value")


def test_annotation_with_dots_and_slash_in_its_key_is_edited() -> None:
    before = fixture(CFG)
    after = edit(CFG, "metadata.annotations.[config.kubernetes.io/origin]", "bot")
    start = offset_after(before, b"origin: ")
    assert_only_span_changed(before, after, start, b'"gitops"', b'"bot"')


DEPLOY = "deployment.yaml"


def test_container_image_selected_by_name_is_edited() -> None:
    before = fixture(DEPLOY)
    field = "spec.template.spec.containers.[name=server].image"
    after = edit(DEPLOY, field, "registry.example.com/ml/fraud-detector:v42")
    start = offset_after(before, b"fraud-detector:v")
    assert_only_span_changed(before, after, start, b"41", b"42")


def test_numeric_index_addresses_a_list_item() -> None:
    before = fixture(DEPLOY)
    after = edit(DEPLOY, "spec.template.spec.containers.1.image", "envoyproxy/envoy:v1.31.0")
    start = offset_after(before, b"envoyproxy/envoy:v1.3")
    assert_only_span_changed(before, after, start, b"0.1", b"1.0")


def test_env_value_in_a_differently_indented_list_keeps_its_quotes() -> None:
    before = fixture(DEPLOY)
    field = "spec.template.spec.containers.[name=server].env.[name=WORKERS].value"
    after = edit(DEPLOY, field, "8")
    start = offset_after(before, b'value: "')
    assert_only_span_changed(before, after, start, b"4", b"8")


def test_primitive_list_item_selected_by_value_in_a_flow_list() -> None:
    before = fixture(DEPLOY)
    after = edit(DEPLOY, "spec.template.spec.containers.0.args.[=--verbose]", "--debug")
    start = offset_after(before, b'"8080", ')
    assert_only_span_changed(before, after, start, b"--verbose", b"--debug")


def test_value_in_a_flow_mapping_is_edited_and_new_keys_join_the_flow_mapping() -> None:
    before = fixture(DEPLOY)
    after = edit(DEPLOY, "metadata.labels.tier", "serving")
    start = offset_after(before, b"tier: ")
    assert_only_span_changed(before, after, start, b"model", b"serving")
    after = edit(DEPLOY, "metadata.labels.team", "ml")
    start = offset_after(before, b"tier: model")
    assert_only_span_changed(before, after, start, b"", b", team: ml")


def test_key_created_after_a_nested_list_is_aligned_with_the_item_keys() -> None:
    before = fixture(DEPLOY)
    field = "spec.template.spec.containers.[name=server].imagePullPolicy"
    after = edit(DEPLOY, field, "Always")
    start = offset_after(before, b"- containerPort: 8080\n")
    assert_only_span_changed(before, after, start, b"", b"        imagePullPolicy: Always\n")
    assert read_field(DEPLOY, after, field) == "Always"


def test_empty_value_is_filled_after_the_colon() -> None:
    before = b"metadata:\n  name: x\n  namespace:\n  labels: {}\n"
    after = edit("m.yaml", "metadata.namespace", "prod", before)
    assert_only_span_changed(before, after, before.index(b"namespace:") + 10, b"", b" prod")


def test_anchor_on_an_unshared_target_is_kept() -> None:
    before = fixture("anchors.yaml")
    after = edit("anchors.yaml", "standalone", "v2")
    start = offset_after(before, b"standalone: &solo ")
    assert_only_span_changed(before, after, start, b"v1", b"v2")


def test_key_missing_because_it_comes_from_a_merge_key_is_created_as_an_override() -> None:
    before = fixture("anchors.yaml")
    after = edit("anchors.yaml", "primary.port", 9090)
    start = offset_after(before, b"tag: &tag v41\n")
    assert_only_span_changed(before, after, start, b"", b"  port: 9090\n")
    assert load_all(after)[0]["primary"]["port"] == 9090  # type: ignore[index]


@pytest.mark.parametrize(
    ("before", "field", "after"),
    [
        (b"a: {x: 1,\n   y: 2\n  }\nb: 1\n", "a.z", b"a: {x: 1,\n   y: 2, z: v\n  }\nb: 1\n"),
        (b"a: {x: 1, y: 2,}\n", "a.z", b"a: {x: 1, y: 2, z: v,}\n"),
        (b"a: &q {}\n", "a.z", b"a: &q {z: v}\n"),
        (b"lits: []\n", "lits.K", b"lits: [K=v]\n"),
        (b"lits: [A=1]  # c\n", "lits.K", b"lits: [A=1, K=v]  # c\n"),
        (b"lits:\n  -   A=1\nx: 1\n", "lits.K", b"lits:\n  -   A=1\n  -   K=v\nx: 1\n"),
        (b"d: &d v\nm:\n  t: *d\nn: 1\n", "m.extra", b"d: &d v\nm:\n  t: *d\n  extra: v\nn: 1\n"),
        (
            b"m:\n  s: |\n    x\n\n  # c\nn: 1\n",
            "m.t",
            b"m:\n  s: |\n    x\n\n  t: v\n  # c\nn: 1\n",
        ),
        (b"m:\n  e:\n# c\nn: 1\n", "m.t", b"m:\n  e:\n  t: v\n# c\nn: 1\n"),
    ],
)
def test_new_entry_is_placed_after_the_last_written_entry(
    before: bytes, field: str, after: bytes
) -> None:
    result, applied = apply_edits("f.yaml", before, [(field, "v")])
    assert result == after
    assert applied == ((field, None, "v"),)


# --------------------------------------------------------------------------- multi-doc, CRLF, BOM


MULTI = "multi-doc.yaml"


def test_target_in_the_first_of_several_documents_is_edited() -> None:
    before = fixture(MULTI)
    after = edit(MULTI, "spec.predictor.model.storageUri", "s3://models/fraud-detector/42")
    start = offset_after(before, b"storageUri: s3://models/fraud-detector/")
    assert_only_span_changed(before, after, start, b"40", b"42")


def test_target_in_a_later_document_is_edited() -> None:
    before = fixture(MULTI)
    after = edit(MULTI, "spec.predictor.minReplicas", 2)
    start = offset_after(before, b"minReplicas: ")
    assert_only_span_changed(before, after, start, b"1", b"2")


def test_key_is_created_in_the_only_document_where_its_parent_exists() -> None:
    before = fixture(MULTI)
    after = edit(MULTI, "spec.predictor.model.runtime", "kserve-mlserver")
    start = offset_after(before, b"/fraud-detector/40\n")
    assert_only_span_changed(before, after, start, b"", b"      runtime: kserve-mlserver\n")


def test_field_present_in_several_documents_is_ambiguous() -> None:
    with pytest.raises(EditError) as info:
        edit(MULTI, "metadata.name", "x")
    assert str(info.value) == (
        "multi-doc.yaml: metadata.name: ambiguous, found in several documents ("
        "document 1 (InferenceService/fraud-v1), line 2, "
        "document 2 (InferenceService/fraud-v2), line 13, "
        "document 3 (Service/fraud), line 21)"
    )


def test_key_creatable_in_several_documents_is_ambiguous() -> None:
    with pytest.raises(EditError, match="could be created in several documents"):
        edit(MULTI, "spec.predictor.maxReplicas", 3)


def to_crlf_with_bom(content: bytes) -> bytes:
    return b"\xef\xbb\xbf" + content.replace(b"\n", b"\r\n")


def test_crlf_line_endings_and_bom_survive_an_edit() -> None:
    before = to_crlf_with_bom(fixture(KUST))
    after = edit(KUST, "images.[name=fraud-detector].newTag", "v42", before)
    start = offset_after(before, b"fraud-detector\r\n    newTag: ")
    assert_only_span_changed(before, after, start, b'"v41"', b'"v42"')


def test_created_key_in_a_crlf_file_ends_with_crlf() -> None:
    before = to_crlf_with_bom(fixture(KUST))
    after = edit(KUST, "images.[name=feature-proxy].newName", "ghcr.io/acme/proxy", before)
    start = offset_after(before, b"0" * 64 + b"\r\n")
    assert_only_span_changed(before, after, start, b"", b"    newName: ghcr.io/acme/proxy\r\n")


def test_crlf_file_without_final_newline_gets_a_crlf_separator_for_a_new_key() -> None:
    before = fixture(CFG).replace(b"\n", b"\r\n")
    after = edit(CFG, "data.new-key", "v")
    after = edit(CFG, "data.new-key", "v", before)
    assert_only_span_changed(before, after, len(before), b"", b"\r\n  new-key: v")


def test_several_edits_in_one_call_are_applied_in_order() -> None:
    before = fixture(KUST)
    after, applied = apply_edits(
        KUST,
        before,
        [
            ("images.[name=fraud-detector].newTag", "v42"),
            ("images.[name=fraud-detector].newTag", "v43"),
            ("configMapGenerator.[name=model-settings].literals.MODEL_URI", "s3://m/43"),
        ],
    )
    assert [a[1:] for a in applied] == [
        ("v41", "v42"),
        ("v42", "v43"),
        ("s3://models/fraud-detector/41", "s3://m/43"),
    ]
    assert read_field(KUST, after, "images.[name=fraud-detector].newTag") == "v43"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "field", "message"),
    [
        (
            KUST,
            "configMapGenerator.[name=model-setings].literals.MODEL_URI",
            "kustomization.yaml: configMapGenerator.[name=model-setings].literals.MODEL_URI: no "
            "item of configMapGenerator has name=model-setings (names present: model-settings); "
            "did you mean 'model-settings'?",
        ),
        (
            KUST,
            "patches.[path=experiment-patch.yml].target",
            "kustomization.yaml: patches.[path=experiment-patch.yml].target: no item of patches "
            "has path=experiment-patch.yml (paths present: experiment-patch.yaml); "
            "did you mean 'experiment-patch.yaml'?",
        ),
        (
            KUST,
            "imagez.[name=fraud-detector].newTag",
            "kustomization.yaml: imagez.[name=fraud-detector].newTag: the document has no key "
            "'imagez' (keys present: apiVersion, kind, namespace, resources, images, "
            "configMapGenerator, patches); did you mean 'images'?",
        ),
        (
            KUST,
            "images.[name=fraud-detector]",
            "kustomization.yaml: images.[name=fraud-detector]: the target (line 9) is a mapping, "
            "not a single value",
        ),
        (
            KUST,
            "namespace.name",
            "kustomization.yaml: namespace.name: namespace is the single value 'fraud-staging', "
            "so it has no name",
        ),
        (
            KUST,
            "resources.5",
            "kustomization.yaml: resources.5: resources has 2 item(s); index 5 is past the end",
        ),
        (
            KUST,
            "resources.base",
            "kustomization.yaml: resources.base: resources is a list; select an item with "
            "[key=value], [=value] or an index, not base",
        ),
        (
            KUST,
            "images.newTag.x",
            "kustomization.yaml: images.newTag.x: images is a list; select an item with "
            "[key=value], [=value] or an index, not newTag",
        ),
        (
            KUST,
            "kind.[name=x]",
            "kustomization.yaml: kind.[name=x]: kind is the single value 'Kustomization', so it "
            "has no [name=x]",
        ),
        (
            KUST,
            "images..newTag",
            "kustomization.yaml: invalid field path: empty segment at character 8 of "
            "'images..newTag' (two dots, or a leading/trailing dot)",
        ),
        (
            PATCH,
            "spec.nothing.weight",
            "experiment-patch.yaml: spec.nothing.weight: spec has no key 'nothing' "
            "(keys present: candidates)",
        ),
        (
            PATCH,
            "spec.[name=x].weight",
            "experiment-patch.yaml: spec.[name=x].weight: spec is a mapping, not a list, so "
            "[name=x] selects nothing; keys present: candidates",
        ),
        (
            "duplicate-keys.yaml",
            "images.[name=fraud-detector].newTag",
            "duplicate-keys.yaml: images.[name=fraud-detector].newTag: duplicate key 'newTag' in "
            "images.[name=fraud-detector] at lines 5, 6; Kustomize would use only the last one "
            "-- remove the others",
        ),
        (
            "block-scalar.yaml",
            "data.[run.sh]",
            "block-scalar.yaml: data.[run.sh]: line 6 holds a block scalar (|); it cannot be "
            "edited automatically -- make it a plain or quoted value",
        ),
        (
            "anchors.yaml",
            "primary.tag",
            "anchors.yaml: primary.tag: line 6: the value is shared through a YAML anchor "
            "(&tag) used elsewhere; editing it would change every alias too",
        ),
        (
            "anchors.yaml",
            "defaults.image",
            "anchors.yaml: defaults.image: line 1: the value is shared through a YAML anchor "
            "(&defaults) used elsewhere; editing it would change every alias too",
        ),
    ],
)
def test_edit_errors_say_exactly_what_is_wrong(name: str, field: str, message: str) -> None:
    before = fixture(name)
    with pytest.raises(EditError) as info:
        apply_edits(name, before, [(field, "v")])
    assert str(info.value) == message
    assert info.value.path == name


def test_selector_matching_several_items_is_ambiguous() -> None:
    content = b"images:\n- name: app\n  newTag: a\n- name: app\n  newTag: b\n"
    with pytest.raises(EditError) as info:
        apply_edits("k.yaml", content, [("images.[name=app].newTag", "c")])
    assert str(info.value) == (
        "k.yaml: images.[name=app].newTag: [name=app] matches 2 items of images (lines 2, 4)"
    )


def test_duplicate_literal_key_is_reported() -> None:
    content = b"literals:\n- A=1\n- A=2\n"
    with pytest.raises(EditError, match=r"literal 'A' appears 2 times in literals \(lines 2, 3\)"):
        apply_edits("k.yaml", content, [("literals.A", "3")])


def test_unparseable_yaml_is_reported_with_its_line() -> None:
    with pytest.raises(EditError) as info:
        apply_edits("bad.yaml", b"a: [1, 2\nb: 3\n", [("a.0", "x")])
    assert str(info.value).startswith("bad.yaml: not valid YAML: ")
    assert "line 2" in str(info.value)


def test_value_with_a_line_break_is_refused() -> None:
    with pytest.raises(EditError, match="contains a line break"):
        apply_edits(KUST, fixture(KUST), [("namespace", "a\nb")])


def test_non_utf8_file_is_refused() -> None:
    with pytest.raises(EditError, match="not UTF-8"):
        apply_edits("x.yaml", b"a: \xff\n", [("a", "b")])


def test_empty_file_has_nothing_to_edit() -> None:
    with pytest.raises(EditError, match="contains no YAML document"):
        apply_edits("x.yaml", b"# only a comment\n", [("a", "b")])


def test_failed_edit_leaves_earlier_state_untouched() -> None:
    before = fixture(KUST)
    with pytest.raises(EditError):
        apply_edits(KUST, before, [("namespace", "x"), ("patches.[path=nope].path", "v")])
    assert before == fixture(KUST)


# --------------------------------------------------------------------------- read_field


@pytest.mark.parametrize(
    ("name", "field", "expected"),
    [
        (KUST, "images.[name=fraud-detector].newTag", "v41"),
        (KUST, "configMapGenerator.[name=model-settings].literals.THRESHOLD", "0.75"),
        (KUST, "images.[name=fraud-detector].digest", None),
        (KUST, "images.[name=unknown].newTag", None),
        (KUST, "nothing.at.all", None),
        (KUST, "resources.7", None),
        (PATCH, "spec.candidates.[name=fraud-v1-baseline].weight", "90"),
        (MULTI, "spec.predictor.model.storageUri", "s3://models/fraud-detector/40"),
        ("block-scalar.yaml", "data.note", "folded text"),
    ],
)
def test_read_field_returns_the_current_value_or_none(
    name: str, field: str, expected: str | None
) -> None:
    assert read_field(name, fixture(name), field) == expected


def test_read_field_refuses_a_non_scalar_and_an_ambiguous_field() -> None:
    with pytest.raises(EditError, match="is a list, not a single value"):
        read_field(KUST, fixture(KUST), "images")
    with pytest.raises(EditError, match="ambiguous"):
        read_field(MULTI, fixture(MULTI), "kind")


# --------------------------------------------------------------------------- safe_repo_path


@pytest.mark.parametrize(
    ("base", "relative", "expected"),
    [
        ("k8s/overlays/staging", "kustomization.yaml", "k8s/overlays/staging/kustomization.yaml"),
        ("k8s/overlays/staging", "./patches/exp.yaml", "k8s/overlays/staging/patches/exp.yaml"),
        ("k8s/overlays/staging", "../../base/deploy.yaml", "k8s/base/deploy.yaml"),
        ("", "model-config.yaml", "model-config.yaml"),
        (".", "a//b.yaml", "a/b.yaml"),
    ],
)
def test_safe_repo_path_joins_and_normalises(base: str, relative: str, expected: str) -> None:
    assert safe_repo_path(base, relative) == expected


@pytest.mark.parametrize(
    ("base", "relative", "message"),
    [
        ("k8s/overlays/staging", "../../../../etc/passwd", "leaves the repository"),
        ("k8s", "/etc/passwd", "must be relative to the repository"),
        ("/srv/repo", "a.yaml", "must be relative to the repository"),
        ("k8s", "C:/x.yaml", "must be relative to the repository"),
        ("k8s", "a\\b.yaml", "use '/' separators"),
        ("k8s", "..", "names the repository root"),
        ("k8s", "", "the path is empty"),
        ("k8s", "a\x00.yaml", "NUL"),
    ],
)
def test_safe_repo_path_refuses_escapes(base: str, relative: str, message: str) -> None:
    with pytest.raises(EditError, match=None) as info:
        safe_repo_path(base, relative)
    assert message in str(info.value)


# --------------------------------------------------------------------------- corpus + property


@dataclass(frozen=True)
class Scalar:
    """A scalar value in a fixture, found independently of the module under test."""

    file: str
    field: str
    steps: tuple[str | int, ...]  # keys and indices into the loaded data
    doc: int
    start: int  # byte offsets of the node in the file
    end: int
    block: bool
    shared: bool


def corpus_files() -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(DATA.glob("*.yaml"))}
    del files["duplicate-keys.yaml"]  # the independent reader refuses it (tested above)
    files["crlf-bom-" + KUST] = to_crlf_with_bom(files[KUST])
    files["crlf-" + CFG] = files[CFG].replace(b"\n", b"\r\n")
    return files


def scalars_of(name: str, content: bytes) -> list[Scalar]:
    text = re.sub(r"\t(?=[ \t]*(\r?\n|$))", " ", content.decode("utf-8"))
    docs = list(YAML(typ="safe", pure=True).compose_all(text))
    counts: dict[int, int] = {}
    for root in docs:
        for node in walk(root):
            counts[id(node)] = counts.get(id(node), 0) + 1
    found: list[Scalar] = []

    def visit(node: Node, doc: int, field: str, steps: tuple[str | int, ...], shared: bool) -> None:
        shared = shared or counts[id(node)] > 1
        if isinstance(node, MappingNode):
            for key, value in node.value:
                name_ = key.value
                if not re.fullmatch(r"[A-Za-z_][\w./-]*", name_):
                    continue  # `<<` merge keys and the like
                segment = f"[{name_}]" if "." in name_ else name_
                visit(value, doc, f"{field}.{segment}".lstrip("."), (*steps, name_), shared)
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                visit(item, doc, f"{field}.{i}", (*steps, i), shared)
        elif node.start_mark.index != node.end_mark.index:  # skip empty values
            start = len(text[: node.start_mark.index].encode())
            end = len(text[: node.end_mark.index].encode())
            block = node.style in ("|", ">")
            found.append(Scalar(name, field, steps, doc, start, end, block, shared))

    for i, root in enumerate(docs):
        if root is not None:
            visit(root, i, "", (), False)
    return found


def walk(node: Node | None) -> list[Node]:
    if node is None:
        return []
    out = [node]
    if isinstance(node, MappingNode):
        for key, value in node.value:
            out += walk(key) + walk(value)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            out += walk(item)
    return out


CORPUS = corpus_files()
SCALARS = [s for name, content in CORPUS.items() for s in scalars_of(name, content)]


def with_value(data: object, steps: tuple[str | int, ...], value: str) -> object:
    """``data`` with ``value`` at ``steps``; a typed field (int/float/bool) keeps its type when
    the new text reads as that type, as documented in bot.core.overlays."""
    copy = deepcopy(data)
    node = copy
    for step in steps[:-1]:
        node = node[step]  # type: ignore[index]
    old = node[steps[-1]]  # type: ignore[index]
    new: object = value
    if isinstance(old, bool | int | float):
        try:
            parsed = YAML(typ="safe", pure=True).load(value)
        except Exception:
            parsed = None
        if type(parsed) is type(old):
            new = parsed
    node[steps[-1]] = new  # type: ignore[index]
    return copy


def check_edit_of(scalar: Scalar, value: str) -> None:
    """Setting ``scalar`` to ``value`` changes only its span and reads back as ``value``."""
    before = CORPUS[scalar.file]
    ambiguous = sum(1 for s in SCALARS if s.file == scalar.file and s.field == scalar.field) > 1
    if scalar.block or scalar.shared or ambiguous:
        expected = "block scalar" if scalar.block else "shared" if scalar.shared else "ambiguous"
        with pytest.raises(EditError, match=expected):
            apply_edits(scalar.file, before, [(scalar.field, value)])
        return
    after, applied = apply_edits(scalar.file, before, [(scalar.field, value)])
    assert applied[0][2] == value
    prefix = 0
    while prefix < min(len(before), len(after)) and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < min(len(before), len(after)) - prefix and before[-1 - suffix] == after[-1 - suffix]
    ):
        suffix += 1
    # one contiguous changed region (none if the value was already there), inside the old span
    if before != after:
        assert scalar.start <= prefix
        assert len(before) - suffix <= scalar.end
    old_docs = load_all(before)
    new_docs = load_all(after)
    assert new_docs[scalar.doc] == with_value(old_docs[scalar.doc], scalar.steps, value)
    assert [d for i, d in enumerate(new_docs) if i != scalar.doc] == [
        d for i, d in enumerate(old_docs) if i != scalar.doc
    ]


def test_corpus_has_a_scalar_of_every_style() -> None:
    styles = {(s.block, s.shared) for s in SCALARS}
    assert styles == {(False, False), (True, False), (False, True)}
    assert len(SCALARS) > 100


@pytest.mark.parametrize("value", ["corpus-1", "0", 'it\'s #1: "x"'])
def test_setting_any_fixture_scalar_changes_only_its_span(value: str) -> None:
    for scalar in SCALARS:
        try:
            check_edit_of(scalar, value)
        except AssertionError as exc:
            raise AssertionError(f"{scalar.file} {scalar.field}: {exc}") from exc


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    scalar=st.sampled_from([s for s in SCALARS if not (s.block or s.shared)]),
    value=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
        max_size=24,
    ),
)
def test_any_single_line_value_round_trips_through_any_scalar(scalar: Scalar, value: str) -> None:
    check_edit_of(scalar, value)


CREATIONS = [
    (KUST, "images.[name=fraud-detector].digest", ("images", 0, "digest")),
    ("crlf-bom-" + KUST, "images.[name=feature-proxy].newName", ("images", 1, "newName")),
    (DEPLOY, "metadata.labels.team", ("metadata", "labels", "team")),
    (CFG, "data.new-key", ("data", "new-key")),
    ("crlf-" + CFG, "data.new-key", ("data", "new-key")),
    (MULTI, "spec.predictor.model.runtime", ("spec", "predictor", "model", "runtime")),
]


@settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    case=st.sampled_from(CREATIONS),
    value=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
        max_size=24,
    ),
)
def test_any_single_line_value_can_be_added_as_a_new_key(
    case: tuple[str, str, tuple[str | int, ...]], value: str
) -> None:
    name, field, steps = case
    before = CORPUS[name]
    after, applied = apply_edits(name, before, [(field, value)])
    assert applied == ((field, None, value),)
    prefix = 0
    while prefix < len(before) and before[prefix] == after[prefix]:
        prefix += 1
    assert after[prefix + len(after) - len(before) :] == before[prefix:]  # a pure insertion
    old_docs, new_docs = load_all(before), load_all(after)
    expected = deepcopy(old_docs[0])  # every case targets the first document
    node = expected
    for step in steps[:-1]:
        node = node[step]  # type: ignore[index]
    node[steps[-1]] = value  # type: ignore[index]
    assert new_docs[0] == expected
    assert new_docs[1:] == old_docs[1:]


# --------------------------------------------------------------------------- real Kustomize


KUBECTL = Path(sys.executable).parent / "kubectl"


def test_real_kustomize_renders_what_the_edits_wrote(tmp_path: Path) -> None:
    """The field paths address what Kustomize itself reads (images, literals, a CRLF file)."""
    (tmp_path / DEPLOY).write_bytes(fixture(DEPLOY))
    kustomization = to_crlf_with_bom(
        b"resources:\n- deployment.yaml\n"
        b"images:\n- name: registry.example.com/ml/fraud-detector  # server\n  newTag: v41\n"
        b"configMapGenerator:\n- name: model-settings\n  literals:\n  - MODEL_URI=s3://m/41\n"
        b"  options: {disableNameSuffixHash: true}\n"
    )
    edited, _ = apply_edits(
        KUST,
        kustomization,
        [
            ("images.[name=registry.example.com/ml/fraud-detector].newTag", "v42"),
            ("images.[name=registry.example.com/ml/fraud-detector].digest", "sha256:" + "a" * 64),
            ("configMapGenerator.[name=model-settings].literals.MODEL_URI", "s3://m/42 #x"),
            ("configMapGenerator.[name=model-settings].literals.THRESHOLD", "0"),
        ],
    )
    (tmp_path / KUST).write_bytes(edited)
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(tmp_path)], capture_output=True, check=True, timeout=60
    ).stdout
    docs = {d["kind"]: d for d in load_all(rendered)}  # type: ignore[index]
    assert docs["ConfigMap"]["data"] == {"MODEL_URI": "s3://m/42 #x", "THRESHOLD": "0"}
    containers = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "registry.example.com/ml/fraud-detector:v42@sha256:" + "a" * 64


def test_a_value_nested_a_thousand_deep_anywhere_is_an_edit_error():
    deep = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: b\n"
        "z: " + "[" * 1000 + "]" * 1000 + "\n"
    ).encode()
    with pytest.raises(EditError, match="nests too deeply"):
        apply_edits("cm.yaml", deep, [("data.a", "c")])
    with pytest.raises(EditError, match="nests too deeply"):
        read_field("cm.yaml", deep, "data.a")


# --------------------------------------------------------------------------- creating list entries

# What `kustomize edit set image fraud-detector=*:v8` writes into a kustomization without
# `images:` (Kustomize's kustfile writer: the fields the file has, in their order, then the new
# field, marshalled by sigs.k8s.io/yaml -- items not indented under the key, keys sorted).
KUSTOMIZE_SET_IMAGE = b"images:\n- name: fraud-detector\n  newTag: v8\n"
NO_IMAGES = (
    b"# overlay without images\n"
    b"apiVersion: kustomize.config.k8s.io/v1beta1\n"
    b"kind: Kustomization\n"
    b"resources:\n"
    b"  - deployment.yaml   # indented list, kept as it is\n"
)


def test_image_tag_on_a_kustomization_without_images_appends_what_kustomize_edit_writes() -> None:
    after, applied = apply_edits(KUST, NO_IMAGES, [("images.[name=fraud-detector].newTag", "v8")])
    assert after == NO_IMAGES + KUSTOMIZE_SET_IMAGE
    assert applied == (("images.[name=fraud-detector].newTag", None, "v8"),)


def test_image_digest_entry_lists_its_keys_in_the_order_kustomize_marshals_them() -> None:
    digest = "sha256:" + "b" * 64
    after = edit(KUST, "images.[name=fraud-detector].digest", digest, NO_IMAGES)
    entry = b"images:\n- digest: " + digest.encode() + b"\n  name: fraud-detector\n"
    assert after == NO_IMAGES + entry


def test_created_images_list_in_a_file_without_final_newline_adds_none() -> None:
    before = NO_IMAGES.rstrip(b"\n")
    after = edit(KUST, "images.[name=fraud-detector].newTag", "v8", before)
    assert after == before + b"\n" + KUSTOMIZE_SET_IMAGE.rstrip(b"\n")


def test_created_images_list_in_a_crlf_file_uses_crlf() -> None:
    before = to_crlf_with_bom(NO_IMAGES)
    after = edit(KUST, "images.[name=fraud-detector].newTag", "v8", before)
    assert after == before + KUSTOMIZE_SET_IMAGE.replace(b"\n", b"\r\n")


def test_numeric_tag_of_a_new_image_is_quoted_as_kustomize_quotes_it() -> None:
    after = edit(KUST, "images.[name=fraud-detector].newTag", "8", NO_IMAGES)
    assert after == NO_IMAGES + b'images:\n- name: fraud-detector\n  newTag: "8"\n'


def test_missing_image_entry_joins_the_list_aligned_with_its_siblings() -> None:
    before = fixture(KUST)
    after, applied = apply_edits(KUST, before, [("images.[name=batch-scorer].newTag", "v3")])
    anchor = b"0000000000000000000000000000000000000000000000000000000000000000\n"
    at = offset_after(before, anchor)
    assert after == before[:at] + b"  - name: batch-scorer\n    newTag: v3\n" + before[at:]
    assert applied == (("images.[name=batch-scorer].newTag", None, "v3"),)


def test_empty_images_key_is_filled_in_place_with_the_new_entry() -> None:
    before = b"resources:\n- deployment.yaml\nimages:   # set by gitops-bot\nnamespace: x\n"
    after = edit(KUST, "images.[name=fraud-detector].newTag", "v8", before)
    assert after == (
        b"resources:\n- deployment.yaml\nimages:   # set by gitops-bot\n"
        b"- name: fraud-detector\n  newTag: v8\nnamespace: x\n"
    )


def test_empty_candidates_key_is_filled_with_the_files_list_indentation() -> None:
    before = b"spec:\n  hosts:\n    - a\n  candidates:\n  strategy: ab"
    after = edit(PATCH, "spec.candidates.[name=fraud-v3].weight", 5, before)
    assert after == (
        b"spec:\n  hosts:\n    - a\n  candidates:\n    - name: fraud-v3\n      weight: 5\n"
        b"  strategy: ab"
    )


def test_missing_image_entry_joins_a_flow_list_as_a_flow_mapping() -> None:
    before = b"resources: [deployment.yaml]\nimages: [{name: a, newTag: b}]  # flow\n"
    after = edit(KUST, "images.[name=fraud-detector].newTag", "v8", before)
    assert after == (
        b"resources: [deployment.yaml]\n"
        b"images: [{name: a, newTag: b}, {name: fraud-detector, newTag: v8}]  # flow\n"
    )


def test_replica_count_entry_is_created_as_a_plain_integer() -> None:
    after = edit(KUST, "replicas.[name=fraud-detector].count", 3, NO_IMAGES)
    assert after == NO_IMAGES + b"replicas:\n- count: 3\n  name: fraud-detector\n"


def test_missing_candidate_joins_a_custom_resource_list_aligned_with_its_siblings() -> None:
    before = fixture(PATCH)
    after = edit(PATCH, "spec.candidates.[name=fraud-v3].weight", 0)
    assert after == before + b"  - name: fraud-v3\n    weight: 0\n"


def test_missing_list_in_a_custom_resource_follows_the_files_list_indentation() -> None:
    before = b"kind: Experiment\nspec:\n  strategy: ab\n  hosts:\n    - a.example.com\n"
    after = edit(PATCH, "spec.candidates.[name=fraud-v3].weight", 5, before)
    assert after == before + b"  candidates:\n    - name: fraud-v3\n      weight: 5\n"


@pytest.mark.parametrize(
    ("name", "content", "field", "message"),
    [
        (
            KUST,
            NO_IMAGES,
            "imagez.[name=x].newTag",
            "the document has no key 'imagez'",
        ),
        (KUST, NO_IMAGES, "patches.[path=p.yaml].target", "the document has no key 'patches'"),
        (PATCH, b"spec:\n  candidates:\n  - a\n", "spec.candidates.[name=x].weight", "no item"),
        (PATCH, b"spec:\n  x: 1\n", "spec.candidates.[name=x].name", "has no key 'candidates'"),
        (PATCH, b"spec:\n  x: 1\n", "spec.candidates.[=x].weight", "has no key 'candidates'"),
        (PATCH, b"spec:\n  x: 1\n", "spec.candidates.[name=x].a.b", "has no key 'candidates'"),
    ],
)
def test_entries_are_created_only_where_the_selector_key_identifies_them(
    name: str, content: bytes, field: str, message: str
) -> None:
    with pytest.raises(EditError, match=re.escape(message)):
        apply_edits(name, content, [(field, "v")])


def test_entry_creatable_in_several_documents_is_ambiguous() -> None:
    content = b"spec:\n  candidates: []\n---\nspec:\n  candidates: []\n"
    with pytest.raises(EditError, match="the entry could be created in several documents"):
        apply_edits(PATCH, content, [("spec.candidates.[name=x].weight", 1)])


def test_created_entry_reads_back_and_a_second_edit_changes_it_in_place() -> None:
    after, applied = apply_edits(
        KUST,
        NO_IMAGES,
        [
            ("images.[name=fraud-detector].newTag", "v8"),
            ("images.[name=fraud-detector].newName", "ghcr.io/acme/fraud"),
            ("images.[name=fraud-detector].newTag", "v9"),
        ],
    )
    assert read_field(KUST, after, "images.[name=fraud-detector].newTag") == "v9"
    assert [old for _, old, _ in applied] == [None, None, "v8"]
    assert read_field(KUST, NO_IMAGES, "images.[name=fraud-detector].newTag") is None


ENTRY_CREATIONS = [
    (KUST, "images", "newTag"),
    ("crlf-bom-" + KUST, "replicas", "count"),
    (PATCH, "spec.candidates", "weight"),
    (DEPLOY, "spec.template.spec.containers", "image"),
]


@settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    case=st.sampled_from(ENTRY_CREATIONS),
    ident=st.text(  # what a field path can select: no control characters, no ']'
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="]"),
        min_size=1,
        max_size=12,
    ).filter(lambda s: s == s.strip()),
    value=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
        max_size=24,
    ),
)
def test_any_new_entry_is_a_pure_insertion_that_reads_back(
    case: tuple[str, str, str], ident: str, value: str
) -> None:
    name, list_path, field_name = case
    before = CORPUS[name]
    old_docs = load_all(before)
    items = old_docs[0]
    for step in list_path.split("."):
        items = items.get(step) if isinstance(items, dict) else None  # type: ignore[assignment]
    if any(isinstance(i, dict) and i.get("name") == ident for i in items or []):  # type: ignore[attr-defined]
        return  # an existing entry: that is an edit, not a creation
    field = f"{list_path}.[name={ident}].{field_name}"
    after, applied = apply_edits(name, before, [(field, value)])
    assert applied == ((field, None, value),)
    prefix = 0
    while prefix < len(before) and before[prefix] == after[prefix]:
        prefix += 1
    assert after[prefix + len(after) - len(before) :] == before[prefix:]  # a pure insertion
    new_docs = load_all(after)
    expected = deepcopy(old_docs[0])
    node = expected
    steps = list_path.split(".")
    for step in steps[:-1]:
        node = node[step]  # type: ignore[index]
    node.setdefault(steps[-1], []).append({"name": ident, field_name: value})  # type: ignore[union-attr]
    assert new_docs[0] == expected
    assert new_docs[1:] == old_docs[1:]
    assert read_field(name, after, field) == value


def test_real_kustomize_applies_a_created_image_entry_and_replica_count(tmp_path: Path) -> None:
    """Kustomize itself reads the entries as written: no `images:` before, one after."""
    (tmp_path / DEPLOY).write_bytes(fixture(DEPLOY))
    before = (
        b"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        b"resources:\n- deployment.yaml\n"
    )
    edited, _ = apply_edits(
        KUST,
        before,
        [
            ("images.[name=registry.example.com/ml/fraud-detector].newTag", "v8"),
            ("images.[name=envoyproxy/envoy].newTag", "v1.31.0"),
            ("replicas.[name=fraud-detector].count", 5),
        ],
    )
    assert edited == before + (
        b"images:\n- name: registry.example.com/ml/fraud-detector\n  newTag: v8\n"
        b"- name: envoyproxy/envoy\n  newTag: v1.31.0\n"
        b"replicas:\n- count: 5\n  name: fraud-detector\n"
    )
    (tmp_path / KUST).write_bytes(edited)
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(tmp_path)], capture_output=True, check=True, timeout=60
    ).stdout
    (deployment,) = load_all(rendered)
    assert deployment["spec"]["replicas"] == 5  # type: ignore[index]
    containers = deployment["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert [c["image"] for c in containers] == [
        "registry.example.com/ml/fraud-detector:v8",
        "envoyproxy/envoy:v1.31.0",
    ]
