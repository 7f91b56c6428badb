"""Shared fixtures for the fake GitHub (tests/fakegithub)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from fakegithub import FakeGitHub

EXAMPLE_REPO = Path(__file__).resolve().parent.parent / "examples" / "fraud-detection"
GITOPS_REPO = "acme/gitops"


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    """A fresh FakeGitHub on https://api.github.com via `responses`; the test fails at teardown
    if any request did not pass OpenAPI validation or any response broke GitHub's schema."""
    fake = FakeGitHub(tmp_path / "fake-github")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.install(mock)
        try:
            yield fake
        finally:
            fake.close()
    problems = [*fake.validation_errors, *(f"response: {e}" for e in fake.response_errors)]
    if problems:
        pytest.fail("fake GitHub saw invalid traffic:\n" + "\n\n".join(problems), pytrace=False)


@pytest.fixture
def gitops_repo(fake_github: FakeGitHub) -> str:
    """`acme/gitops` in the fake, seeded with examples/fraud-detection on `main`."""
    fake_github.create_repo(GITOPS_REPO, source_dir=EXAMPLE_REPO, default_branch="main")
    return GITOPS_REPO
