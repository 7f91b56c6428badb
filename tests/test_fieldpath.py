"""Kustomize field-path parsing: accepted syntax and precise errors."""

from __future__ import annotations

import pytest

from bot.core.fieldpath import Index, Key, Match, format_field_path, parse_field_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("data.fraud-v2-storage-uri", (Key("data"), Key("fraud-v2-storage-uri"))),
        (
            "images.[name=fraud-detector].newTag",
            (Key("images"), Match("name", "fraud-detector"), Key("newTag")),
        ),
        (
            "spec.candidates.[name=fraud-v1-baseline].weight",
            (Key("spec"), Key("candidates"), Match("name", "fraud-v1-baseline"), Key("weight")),
        ),
        (
            "spec.template.spec.containers.[name=com.foo.app].image",
            (
                Key("spec"),
                Key("template"),
                Key("spec"),
                Key("containers"),
                Match("name", "com.foo.app"),
                Key("image"),
            ),
        ),
        (
            "spec.containers.0.image",
            (Key("spec"), Key("containers"), Index(0, "0"), Key("image")),
        ),
        (
            "metadata.annotations.[config.kubernetes.io/local-config]",
            (Key("metadata"), Key("annotations"), Key("config.kubernetes.io/local-config")),
        ),
        ("data.feature\\.flag", (Key("data"), Key("feature.flag"))),
        ("args.[=--verbose]", (Key("args"), Match("", "--verbose"))),
        ("x.[key=a=b]", (Key("x"), Match("key", "a=b"))),
        ("x.[name=a]b].c", (Key("x"), Match("name", "a]b"), Key("c"))),
        (
            "configMapGenerator.[name=cfg].literals.MODEL_URI",
            (Key("configMapGenerator"), Match("name", "cfg"), Key("literals"), Key("MODEL_URI")),
        ),
    ],
)
def test_parse_field_path_accepts_kustomize_syntax(path: str, expected: tuple[object, ...]) -> None:
    assert parse_field_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "images.[name=fraud-detector].newTag",
        "data.[feature.flag]",
        "spec.containers.0.image",
        "args.[=--verbose]",
        "a.[0].b",
    ],
)
def test_format_field_path_round_trips(path: str) -> None:
    assert parse_field_path(format_field_path(parse_field_path(path))) == parse_field_path(path)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "field path is empty"),
        ("a..b", "empty segment at character 3 of 'a..b'"),
        (".a", "empty segment at character 1"),
        ("a.", "empty segment at character 3"),
        ("a.[name=x", "unclosed '[' at character 3"),
        ("a.[name=x]y", "must end with ']' followed by '.'"),
        ("a.b[c]", "unexpected '[' at character 4"),
        ("a.*.b", "wildcard '*'"),
        ("a.-", "'-' (append)"),
        ("a.-1", "negative list index -1"),
        ("a.[]", "empty brackets '[]'"),
        ("a.[ name=x]", "spaces around the key or value"),
        (" a", "leading or trailing whitespace"),
        ("a.\tb", "control character"),
    ],
)
def test_parse_field_path_rejects_bad_paths_with_a_precise_message(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_field_path(path)
    assert message in str(info.value)


def test_a_huge_field_path_is_refused_at_once_not_parsed():
    path = ".".join(["a"] * 100_000)  # 200 KB, 100k segments (was 15-31 s, quadratic)
    with pytest.raises(ValueError, match="field path is 199999 characters long; at most 1000"):
        parse_field_path(path)
    with pytest.raises(ValueError, match="field path has 65 segments; at most 64"):
        parse_field_path(".".join(["a"] * 65))
