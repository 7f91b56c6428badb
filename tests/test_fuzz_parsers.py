"""Property-based fuzzing of every entry point that reads outside input: whatever comes in,
only the declared error comes out (never a crash, a 5xx or a hang).

Profiles: `ci` (default, 500 examples each, 3000 in all) and `nightly` (ten times more):
`HYPOTHESIS_PROFILE=nightly pytest tests/test_fuzz_parsers.py`. The per-example deadline is
a hang detector (the alias bomb took 27 s), generous enough never to flake on a slow runner.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.commands import Outcome, parse_comment
from bot.core.config import load_config, load_config_bytes
from bot.core.errors import ConfigError, EditError
from bot.core.fieldpath import parse_field_path
from bot.core.overlays import apply_edits, read_field
from bot.gateways.queue import JobQueue
from bot.settings import Secret, Settings
from bot.web.app import create_app
from bot.web.json_body import (
    MAX_JSON_DEPTH,
    NOT_AN_OBJECT,
    NOT_JSON,
    TOO_DEEP,
    JsonRefused,
    json_problem,
    parse_json_object,
)

_COMMON: dict[str, Any] = {
    "deadline": 10_000,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
settings.register_profile("ci", max_examples=500, **_COMMON)
settings.register_profile("nightly", max_examples=5000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent
EXAMPLE_CONFIG = (ROOT.parent / "examples/fraud-detection/.gitops-bot.yaml").read_bytes()
OVERLAY = (
    ROOT.parent / "examples/fraud-detection/k8s/overlays/staging/kustomization.yaml"
).read_bytes()
CORPUS = ROOT / "corpora/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
SECRET = "fuzz-secret"

# text that looks like what each parser reads, and anything else
yamlish = st.text(
    alphabet=st.sampled_from(list("abc:-[]{}&*!|>?#'\"\n\t 0123,.=/\\%@")), max_size=300
)
anything = st.text(max_size=300)


def mutate_bytes(data: bytes, rng: random.Random, edits: int) -> bytes:
    """Delete, insert or overwrite a few bytes at random places."""
    out = bytearray(data)
    for _ in range(edits):
        at = rng.randrange(len(out) + 1)
        op = rng.randrange(3)
        if op == 0 and out:
            del out[at : at + rng.randrange(1, 20)]
        elif op == 1:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        elif out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
    return bytes(out)


# --------------------------------------------------------------------------- ChatOps


@given(st.one_of(anything, st.text(alphabet=st.sampled_from(list("/promote 0123٣²@-=.to\n`>")))))
def test_the_command_parser_answers_anything_with_outcomes(body: str) -> None:
    outcomes = parse_comment(body)
    assert all(isinstance(o, Outcome.__args__) for o in outcomes)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- field paths


@given(st.one_of(anything, st.text(alphabet=st.sampled_from(list("ab.[]=\\0123")), max_size=2000)))
def test_the_field_path_parser_raises_only_value_errors(path: str) -> None:
    with contextlib.suppress(ValueError):
        parse_field_path(path)


# --------------------------------------------------------------------------- config


@given(st.one_of(yamlish, anything))
def test_the_config_loader_raises_only_config_errors_on_any_text(text: str) -> None:
    try:
        load_config(text)
    except ConfigError as exc:
        assert exc.issues


@given(st.integers(0, 2**32), st.integers(1, 12))
def test_the_config_loader_raises_only_config_errors_on_a_mutated_example(
    seed: int, edits: int
) -> None:
    raw = mutate_bytes(EXAMPLE_CONFIG, random.Random(seed), edits)
    try:
        load_config_bytes(raw)
    except ConfigError as exc:
        assert exc.issues


# --------------------------------------------------------------------------- overlay editor


@given(
    st.one_of(
        yamlish,
        st.integers(0, 2**32).map(
            lambda s: mutate_bytes(OVERLAY, random.Random(s), 6).decode("utf-8", "replace")
        ),
    ),
    st.sampled_from(["images.[name=fraud-detector].newTag", "replicas.0.count", "a.b", "[x=y]"]),
    st.text(max_size=20),
)
def test_the_overlay_editor_raises_only_edit_errors(text: str, field: str, value: str) -> None:
    content = text.encode("utf-8", "surrogatepass")
    try:
        read_field("k.yaml", content, field)
        apply_edits("k.yaml", content, [(field, value)])
    except EditError:
        pass


# --------------------------------------------------------------------------- intake


def _corpus() -> list[dict[str, Any]]:
    if not CORPUS.is_file():
        pytest.fail(f"{CORPUS} missing: run `npm ci --prefix tests/corpora`")
    entries = json.loads(CORPUS.read_text(encoding="utf-8"))
    wanted = {"issue_comment", "pull_request", "pull_request_review", "check_run", "status"}
    return [
        {"event": entry["name"], "payload": example}
        for entry in entries
        if entry["name"] in wanted
        for example in entry["examples"][:20]
    ]


CORPUS_EXAMPLES = _corpus() if CORPUS.is_file() else []
MUTANTS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=40), st.just([]), st.just({}),
    st.just("\ud800"), st.just("a\x00b"), st.just([[[[[[[[[]]]]]]]]]),
)  # fmt: skip


def _mutate_json(value: Any, rng: random.Random, replacement: Any) -> Any:
    """Replace one randomly chosen node of a JSON document."""
    if not isinstance(value, (dict, list)) or not value or rng.random() < 0.2:
        return replacement
    if isinstance(value, dict):
        key = rng.choice(list(value))
        if rng.random() < 0.1:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: _mutate_json(value[key], rng, replacement)}
    index = rng.randrange(len(value))
    return [*value[:index], _mutate_json(value[index], rng, replacement), *value[index + 1 :]]


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Any:
    queue = JobQueue.from_url(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'jobs.db'}")
    queue.migrate()
    app = create_app(
        Settings(
            github_webhook_secret=Secret(SECRET),
            mlflow_webhook_secret=Secret(SECRET),
            bot_login="gitops-bot[bot]",
            mlflow_target_repos=("acme/gitops",),
        ),
        queue,
    )
    return app.test_client()


@given(st.integers(0, 2**32), MUTANTS)
def test_intake_answers_mutated_real_payloads_with_2xx_or_4xx(
    intake: Any, seed: int, replacement: Any
) -> None:
    rng = random.Random(seed)
    example = rng.choice(CORPUS_EXAMPLES)
    payload = _mutate_json(example["payload"], rng, replacement)
    body = json.dumps(payload).encode("utf-8", "surrogatepass")
    response = intake.post(
        "/webhooks/github",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": example["event"],
            "X-GitHub-Delivery": f"fuzz-{seed}-{rng.random()}",
            "X-Hub-Signature-256": "sha256="
            + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        },
    )
    assert response.status_code < 500, (response.status_code, response.get_json())


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**64)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(
        ["\ud800", "a\udfffb", "\x00", "\\u0000", "é", '\\"[', "{]\\", "\U0001f680", "\\"]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=30,
)


def reference_json_object(body: bytes) -> dict[str, Any] | str:
    """What intake did before the fast path: `json.loads`, then `json_problem` walks it."""
    try:
        payload = json.loads(body)
    except RecursionError:
        return TOO_DEEP
    except (UnicodeDecodeError, ValueError):
        return NOT_JSON
    if not isinstance(payload, dict):
        return NOT_AN_OBJECT
    return json_problem(payload, MAX_JSON_DEPTH) or payload


def fast_json_object(body: bytes) -> dict[str, Any] | str:
    try:
        return parse_json_object(body)
    except JsonRefused as exc:
        return str(exc)


def same_verdict(body: bytes) -> None:
    expected, got = reference_json_object(body), fast_json_object(body)
    if isinstance(expected, dict) and isinstance(got, dict):  # NaN != NaN: compare the text
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
    else:
        assert got == expected


@given(JSON_VALUES, st.integers(0, 80), st.sampled_from(["ascii", "utf-8", "utf-16", "bom"]))
def test_the_fast_json_parse_at_intake_judges_every_document_as_the_standard_library_does(
    value: Any, nesting: int, encoding: str
) -> None:
    """msgspec parses, the bytes decide nesting and storability where they can: the
    document and every refusal stay those of `json.loads` plus `json_problem`."""
    document: Any = {"v": value}
    for _ in range(nesting):
        document = {"n": [document]}
    text = json.dumps(document, ensure_ascii=encoding == "ascii")
    if encoding == "utf-16":
        body = text.encode("utf-16", "surrogatepass")
    else:
        body = (b"\xef\xbb\xbf" if encoding == "bom" else b"") + text.encode(
            "utf-8", "surrogatepass"
        )
    same_verdict(body)


jsonish_bytes = st.lists(
    st.sampled_from(
        [
            b"{",
            b"}",
            b"[",
            b"]",
            b'"',
            b"\\",
            b":",
            b",",
            b"1",
            b"-",
            b"e9",
            b"NaN",
            b"true",
            b"null",
            b"\\u0000",
            b"\\ud800",
            b"\\n",
            b"\xed\xa0\x80",
            b"\xc3\xa9",
            b"\xff",
            b"\x00",
            b" ",
            b"a",
        ]
    ),
    max_size=60,
).map(b"".join)


@given(jsonish_bytes)
def test_the_fast_json_parse_refuses_what_the_standard_library_refuses(body: bytes) -> None:
    same_verdict(body)


@pytest.mark.parametrize("depth", [10, 11, 63, 64, 65, 900, 5000])
def test_nesting_around_the_fast_path_and_the_limit_is_judged_as_before(depth: int) -> None:
    inner = b'"\\\\\\"[{"'  # an escaped backslash, an escaped quote and brackets in a string
    body = b'{"a":' + b"[" * (depth - 1) + inner + b"]" * (depth - 1) + b"}"
    same_verdict(body)
    assert (fast_json_object(body) == TOO_DEEP) == (depth > MAX_JSON_DEPTH)


# --------------------------------------------------------------------------- feedback webhooks


@pytest.fixture(scope="module")
def feedback_intake(tmp_path_factory: pytest.TempPathFactory) -> Any:
    queue = JobQueue.from_url(f"sqlite:///{tmp_path_factory.mktemp('fuzzfb') / 'jobs.db'}")
    queue.migrate()
    app = create_app(
        Settings(
            github_webhook_secret=Secret(SECRET),
            argocd_webhook_secret=Secret(SECRET),
            flagger_webhook_token=Secret(SECRET),
            mlflow_target_repos=("acme/gitops",),
        ),
        queue,
    )
    return app.test_client()


def _feedback_examples() -> list[tuple[str, Any]]:
    from argocd_fixtures import application, notification_body
    from flagger_fixtures import FAILED, PROGRESSING, event

    argocd = [
        json.loads(notification_body(application("fraud-detection-staging", "a" * 40, **kw)))
        for kw in ({}, {"health": "Degraded", "phase": "Failed"}, {"phase": None})
    ]
    flagger = [event(PROGRESSING, 1_796_000_000_000), event(FAILED, 1_796_000_300_000)]
    return [("argocd", p) for p in argocd] + [("flagger", p) for p in flagger]


FEEDBACK_EXAMPLES = _feedback_examples()


@given(st.integers(0, 2**32), MUTANTS)
def test_feedback_intake_answers_mutated_notifications_with_2xx_or_4xx(
    feedback_intake: Any, seed: int, replacement: Any
) -> None:
    rng = random.Random(seed)
    source, example = rng.choice(FEEDBACK_EXAMPLES)
    payload = _mutate_json(example, rng, replacement)
    body = json.dumps(payload).encode("utf-8", "surrogatepass")
    if source == "argocd":
        response = feedback_intake.post(
            "/webhooks/argocd",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}"},
        )
    else:
        response = feedback_intake.post(f"/webhooks/flagger?token={SECRET}", data=body)
    assert response.status_code < 500, (response.status_code, response.get_json())
