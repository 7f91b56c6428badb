"""Signature checks for GitHub, MLflow and Databricks webhook deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from bot.core.signatures import SignatureError, verify_databricks, verify_github, verify_mlflow

SECRET = b"It's a Secret to Everybody"
BODY = b'{"action":"created","zen":"Keep it logically awesome."}'
NOW = 1_750_000_000.0


def github_sig(body: bytes = BODY, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def mlflow_sig(delivery: str, ts: str, body: bytes = BODY, secret: bytes = SECRET) -> str:
    digest = hmac.new(secret, f"{delivery}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_github_signature_matches_githubs_documented_example() -> None:
    # The example from GitHub's "Validating webhook deliveries" documentation.
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_github(SECRET, b"Hello, World!", expected)


def test_github_accepts_valid_signature_with_uppercase_hex() -> None:
    verify_github(SECRET, BODY, github_sig().upper().replace("SHA256=", "sha256="))


@pytest.mark.parametrize(
    ("header", "problem", "message"),
    [
        (None, "missing", "missing X-Hub-Signature-256 header"),
        ("", "missing", "missing X-Hub-Signature-256 header"),
        ("sha1=" + "a" * 40, "malformed", "expected sha256=<hex>"),
        ("deadbeef", "malformed", "expected sha256=<hex>"),
        ("sha256=xyz", "malformed", "not 64 hex characters"),
        ("sha256=" + "0" * 64, "mismatch", "does not match the request body"),
        (github_sig(BODY + b" "), "mismatch", "does not match the request body"),
        (github_sig(secret=b"other"), "mismatch", "does not match the request body"),
    ],
)
def test_github_rejections_say_what_is_wrong(
    header: str | None, problem: str, message: str
) -> None:
    with pytest.raises(SignatureError) as info:
        verify_github(SECRET, BODY, header)
    assert info.value.problem == problem
    assert message in str(info.value)


def test_signature_errors_never_contain_the_secret_or_expected_digest() -> None:
    expected_hex = github_sig()[len("sha256=") :]
    for header in (None, "sha256=" + "1" * 64, "garbage"):
        with pytest.raises(SignatureError) as info:
            verify_github(SECRET, BODY, header)
        assert SECRET.decode() not in str(info.value)
        assert expected_hex not in str(info.value)


def test_empty_secret_is_a_configuration_error_not_an_accepted_delivery() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        verify_github(b"", BODY, github_sig(secret=b""))


def test_databricks_accepts_hex_hmac_of_raw_body() -> None:
    verify_databricks(SECRET, BODY, hmac.new(SECRET, BODY, hashlib.sha256).hexdigest())


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, "missing"),
        ("   ", "missing"),
        ("sha256=" + "a" * 64, "malformed"),
        ("a" * 63, "malformed"),
        (hmac.new(b"other", BODY, hashlib.sha256).hexdigest(), "mismatch"),
    ],
)
def test_databricks_rejections(header: str | None, problem: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify_databricks(SECRET, BODY, header)
    assert info.value.problem == problem
    assert "X-Databricks-Signature" in str(info.value)


def test_mlflow_accepts_signature_built_like_mlflow_delivery() -> None:
    delivery, ts = "6f1f3b8e-2a0c-4c1e-9d59-7c7d1c0e9a11", str(int(NOW))
    verify_mlflow(SECRET, delivery, ts, BODY, mlflow_sig(delivery, ts), now=NOW)


def test_mlflow_accepts_any_matching_signature_among_several() -> None:
    delivery, ts = "d1", str(int(NOW))
    header = f"v1,{base64.b64encode(b'x' * 32).decode()} v2,abc {mlflow_sig(delivery, ts)}"
    verify_mlflow(SECRET, delivery, ts, BODY, header, now=NOW)


def test_mlflow_timestamp_at_the_edge_of_the_window_is_accepted() -> None:
    ts = str(int(NOW) - 300)
    verify_mlflow(SECRET, "d1", ts, BODY, mlflow_sig("d1", ts), now=NOW, tolerance_s=300)


@pytest.mark.parametrize(
    ("delivery", "ts", "header", "problem", "message"),
    [
        ("d1", "1750000000", None, "missing", "missing X-MLflow-Signature header"),
        (None, "1750000000", "v1,AAAA", "missing", "missing X-MLflow-Delivery-Id header"),
        ("d1", None, "v1,AAAA", "missing", "missing X-MLflow-Timestamp header"),
        ("d1", "2025-06-15T00:00:00Z", "v1,AAAA", "malformed", "expected unix seconds"),
        ("d1", "1750000000", "sha256=abcd", "malformed", "expected v1,<base64>"),
        ("d1", "1750000000", "v1,!!!not-base64!!!", "malformed", "expected v1,<base64>"),
        (
            "d1",
            "1750000000",
            mlflow_sig("d2", "1750000000"),
            "mismatch",
            "does not match the delivery id, timestamp and body",
        ),
        (
            "d1",
            "1750000000",
            mlflow_sig("d1", "1750000001"),
            "mismatch",
            "does not match the delivery id, timestamp and body",
        ),
        ("d1", "1749999000", mlflow_sig("d1", "1749999000"), "expired", "1000 s old"),
        ("d1", "1750000900", mlflow_sig("d1", "1750000900"), "future", "900 s in the future"),
    ],
)
def test_mlflow_rejections_say_what_is_wrong(
    delivery: str | None, ts: str | None, header: str | None, problem: str, message: str
) -> None:
    with pytest.raises(SignatureError) as info:
        verify_mlflow(SECRET, delivery, ts, BODY, header, now=NOW, tolerance_s=300)
    assert info.value.problem == problem
    assert message in str(info.value)


def test_mlflow_stale_check_only_after_signature_so_forgeries_learn_nothing() -> None:
    old = str(int(NOW) - 10_000)
    with pytest.raises(SignatureError) as info:
        verify_mlflow(SECRET, "d1", old, BODY, mlflow_sig("d1", old, secret=b"x"), now=NOW)
    assert info.value.problem == "mismatch"


def test_mlflow_body_tampering_is_detected() -> None:
    ts = str(int(NOW))
    with pytest.raises(SignatureError) as info:
        verify_mlflow(SECRET, "d1", ts, BODY + b"\n", mlflow_sig("d1", ts), now=NOW)
    assert info.value.problem == "mismatch"
