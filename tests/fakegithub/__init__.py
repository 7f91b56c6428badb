"""The one shared fake GitHub for tests: real git underneath, every request checked against OpenAPI.

    fake = FakeGitHub(tmp_path)
    fake.install(responses_mock)        # or: base_url = fake.serve()
    fake.create_repo("acme/gitops", source_dir=Path("examples/fraud-detection"))
    token_auth = github.Auth.AppAuth(fake.app_id, fake.private_key_pem).get_installation_auth(
        fake.installation_id("acme/gitops"))

Requests that are not an operation of tests/openapi/api.github.com.trimmed.json, or whose
parameters/body do not validate, get status 599 and land in `fake.validation_errors`
(the `fake_github` fixture fails the test on them). Responses are validated too
(`fake.response_errors`), which proves the fake's shapes.
"""

from .fake import (
    HEAD_MODIFIED,
    SECONDARY_RATE_LIMIT,
    VALIDATION_STATUS,
    Call,
    FakeGitHub,
    Pause,
)
from .payloads import webhook_request

__all__ = [
    "HEAD_MODIFIED",
    "SECONDARY_RATE_LIMIT",
    "VALIDATION_STATUS",
    "Call",
    "FakeGitHub",
    "Pause",
    "webhook_request",
]
