"""Parsing real GitHub webhook examples and MLflow/Databricks registry payloads."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bot.core.events import (
    AliasCreated,
    CheckEvent,
    CommentCreated,
    Ignored,
    InstallationEvent,
    ModelVersionCreated,
    PayloadError,
    Ping,
    PullRequestEvent,
    ReviewEvent,
    StageTransition,
    TagSet,
    UnsupportedEvent,
    event_from_payload,
    parse_databricks,
    parse_github,
    parse_mlflow,
)

CORPUS = (
    Path(__file__).parent
    / "corpora/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
)
GITHUB_EVENTS = (
    "issue_comment",
    "pull_request",
    "pull_request_review",
    "check_run",
    "check_suite",
    "status",
    "installation",
    "installation_repositories",
    "ping",
)
BOT = "gitops-bot[bot]"


@pytest.fixture(scope="module")
def examples() -> dict[str, list[dict[str, Any]]]:
    if not CORPUS.is_file():
        pytest.fail(
            f"GitHub webhook examples not found at {CORPUS}: run `npm ci --prefix tests/corpora`"
        )
    entries = json.loads(CORPUS.read_text(encoding="utf-8"))
    return {entry["name"]: entry["examples"] for entry in entries}


def test_corpus_has_examples_of_every_event_the_bot_handles(
    examples: dict[str, list[dict[str, Any]]],
) -> None:
    for name in GITHUB_EVENTS:
        assert examples.get(name), f"no {name} examples in @octokit/webhooks-examples"


def test_every_real_example_parses_to_an_event_or_a_reasoned_ignore(
    examples: dict[str, list[dict[str, Any]]],
) -> None:
    seen: dict[str, int] = {}
    for name in GITHUB_EVENTS:
        for example in examples[name]:
            result = parse_github(name, example, bot_login=BOT)
            if isinstance(result, Ignored):
                assert result.reason, f"{name}.{example.get('action')}: ignored without a reason"
            else:
                seen[type(result).__name__] = seen.get(type(result).__name__, 0) + 1
                # Queue round trip: through JSON and back to an equal event.
                restored = event_from_payload(json.loads(json.dumps(result.to_payload())))
                assert restored == result
    # Every typed GitHub event class came out of the real examples at least once.
    assert set(seen) == {
        "CommentCreated",
        "PullRequestEvent",
        "ReviewEvent",
        "CheckEvent",
        "InstallationEvent",
        "Ping",
    }


def test_comment_example_fields(examples: dict[str, list[dict[str, Any]]]) -> None:
    example = next(e for e in examples["issue_comment"] if e["action"] == "created")
    event = parse_github("issue_comment", example)
    assert isinstance(event, CommentCreated)
    assert event.repo == example["repository"]["full_name"] == "Codertocat/Hello-World"
    assert event.issue_number == example["issue"]["number"]
    assert event.comment_id == example["comment"]["id"]
    assert event.body == example["comment"]["body"]
    assert event.author == "Codertocat"
    assert event.author_type == "User"
    assert event.author_association == "OWNER"
    assert event.is_pull_request is False


def test_comment_on_pull_request_is_flagged(examples: dict[str, list[dict[str, Any]]]) -> None:
    example = copy.deepcopy(next(e for e in examples["issue_comment"] if e["action"] == "created"))
    example["issue"]["pull_request"] = {"url": "https://api.github.com/repos/o/r/pulls/1"}
    example["installation"] = {"id": 42}
    event = parse_github("issue_comment", example)
    assert isinstance(event, CommentCreated)
    assert event.is_pull_request is True
    assert event.installation_id == 42


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_edited_and_deleted_comments_are_ignored(
    examples: dict[str, list[dict[str, Any]]], action: str
) -> None:
    example = next(e for e in examples["issue_comment"] if e["action"] == action)
    result = parse_github("issue_comment", example)
    assert isinstance(result, Ignored)
    assert f"issue_comment.{action}" in result.reason


def test_the_bots_own_comment_is_ignored(examples: dict[str, list[dict[str, Any]]]) -> None:
    example = copy.deepcopy(next(e for e in examples["issue_comment"] if e["action"] == "created"))
    example["sender"].update(login=BOT, type="Bot")
    example["comment"]["user"].update(login=BOT, type="Bot")
    result = parse_github("issue_comment", example, bot_login=BOT)
    assert isinstance(result, Ignored)
    assert "bot itself" in result.reason
    # Another app's bot is not us: its comment is still parsed.
    assert isinstance(
        parse_github("issue_comment", example, bot_login="other-app[bot]"), CommentCreated
    )


def test_pull_request_closed_example_fields(examples: dict[str, list[dict[str, Any]]]) -> None:
    example = next(e for e in examples["pull_request"] if e["action"] == "closed")
    event = parse_github("pull_request", example)
    assert isinstance(event, PullRequestEvent)
    pr = example["pull_request"]
    assert (event.action, event.number) == ("closed", pr["number"])
    assert event.head_sha == pr["head"]["sha"]
    assert (event.head_ref, event.base_ref) == (pr["head"]["ref"], pr["base"]["ref"])
    assert event.author == pr["user"]["login"]
    assert event.merged is pr["merged"]
    assert event.title == pr["title"]
    assert event.installation_id == example["installation"]["id"]


@pytest.mark.parametrize("action", ["labeled", "assigned", "converted_to_draft"])
def test_uninteresting_pull_request_actions_are_ignored(
    examples: dict[str, list[dict[str, Any]]], action: str
) -> None:
    example = next(e for e in examples["pull_request"] if e["action"] == action)
    result = parse_github("pull_request", example)
    assert result == Ignored(f"pull_request.{action} is not handled")


def test_pull_request_edited_matters_only_when_the_base_branch_changed(
    examples: dict[str, list[dict[str, Any]]],
) -> None:
    example = copy.deepcopy(next(e for e in examples["pull_request"] if e["action"] == "opened"))
    example["action"] = "edited"
    example["changes"] = {"title": {"from": "old"}}
    assert isinstance(parse_github("pull_request", example), Ignored)
    example["changes"] = {"base": {"ref": {"from": "develop"}, "sha": {"from": "abc"}}}
    event = parse_github("pull_request", example)
    assert isinstance(event, PullRequestEvent)
    assert event.action == "edited"


def test_review_state_is_upper_case_like_the_rest_api(
    examples: dict[str, list[dict[str, Any]]],
) -> None:
    example = copy.deepcopy(examples["pull_request_review"][0])
    example["review"]["state"] = "approved"
    event = parse_github("pull_request_review", example)
    assert isinstance(event, ReviewEvent)
    assert event.state == "APPROVED"
    assert event.reviewer == example["review"]["user"]["login"]
    assert event.commit_id == example["review"]["commit_id"]
    assert event.head_sha == example["pull_request"]["head"]["sha"]
    assert event.number == example["pull_request"]["number"]


def test_check_run_completed_carries_conclusion_and_pull_numbers(
    examples: dict[str, list[dict[str, Any]]],
) -> None:
    example = next(
        e
        for e in examples["check_run"]
        if e["action"] == "completed" and e["check_run"]["conclusion"] == "failure"
    )
    event = parse_github("check_run", example)
    assert isinstance(event, CheckEvent)
    assert (event.kind, event.conclusion, event.name) == (
        "check_run",
        "failure",
        "Octocoders-linter",
    )
    assert event.pull_numbers == tuple(p["number"] for p in example["check_run"]["pull_requests"])
    assert event.head_sha == example["check_run"]["head_sha"]


def test_status_event_fields(examples: dict[str, list[dict[str, Any]]]) -> None:
    example = examples["status"][0]
    event = parse_github("status", example)
    assert isinstance(event, CheckEvent)
    assert (event.kind, event.head_sha) == ("status", example["sha"])
    assert (event.conclusion, event.name) == (example["state"], example["context"])


def test_installation_events_list_repositories(
    examples: dict[str, list[dict[str, Any]]],
) -> None:
    created = next(e for e in examples["installation"] if e["action"] == "created")
    event = parse_github("installation", created)
    assert isinstance(event, InstallationEvent)
    assert event.repositories == tuple(r["full_name"] for r in created["repositories"])
    assert event.installation_id == created["installation"]["id"]
    assert event.repo == ""
    removed = next(e for e in examples["installation_repositories"] if e["action"] == "removed")
    event = parse_github("installation_repositories", removed)
    assert isinstance(event, InstallationEvent)
    assert event.repositories_removed == tuple(
        r["full_name"] for r in removed["repositories_removed"]
    )


def test_app_ping_without_repository(examples: dict[str, list[dict[str, Any]]]) -> None:
    example = next(e for e in examples["ping"] if "repository" not in e)
    event = parse_github("ping", example)
    assert isinstance(event, Ping)
    assert event.repo == ""
    assert event.hook_id == example["hook_id"]


def test_unknown_github_event_is_ignored_with_its_name() -> None:
    assert parse_github("star", {"action": "created"}) == Ignored(
        "GitHub event 'star' is not handled"
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("comment"), "comment: missing"),
        (lambda p: p["comment"].update(id="12"), "comment.id: expected an integer, got str"),
        (lambda p: p["issue"].update(number=True), "issue.number: expected an integer, got bool"),
        (lambda p: p.update(repository=[]), "repository: expected an object, got list"),
        (lambda p: p["repository"].update(full_name="nope"), "expected owner/name"),
        (lambda p: p["comment"]["user"].pop("login"), "comment.user.login: missing"),
        (lambda p: p.update(installation={"id": "x"}), "installation.id: expected an integer"),
    ],
)
def test_malformed_comment_payloads_name_the_field(
    examples: dict[str, list[dict[str, Any]]], mutate: Any, message: str
) -> None:
    example = copy.deepcopy(next(e for e in examples["issue_comment"] if e["action"] == "created"))
    mutate(example)
    with pytest.raises(PayloadError, match=message):
        parse_github("issue_comment", example)


def test_malformed_pull_request_payload_names_the_field(
    examples: dict[str, list[dict[str, Any]]],
) -> None:
    example = copy.deepcopy(next(e for e in examples["pull_request"] if e["action"] == "opened"))
    example["pull_request"]["head"]["sha"] = None
    with pytest.raises(PayloadError, match=r"pull_request\.head\.sha: expected a string"):
        parse_github("pull_request", example)


def test_missing_action_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="action: missing"):
        parse_github("pull_request", {"repository": {"full_name": "o/r"}})


def test_from_payload_rejects_tampered_queue_payloads() -> None:
    event = CommentCreated("o/r", 1, 2, True, 3, "/help", "alice", "User", "MEMBER")
    payload = event.to_payload()
    assert event_from_payload(payload) == event
    with pytest.raises(PayloadError, match="issue_number: expected an integer"):
        event_from_payload({**payload, "issue_number": "2"})
    with pytest.raises(PayloadError, match="missing field 'body'"):
        event_from_payload({k: v for k, v in payload.items() if k != "body"})
    with pytest.raises(PayloadError, match="no known 'type'"):
        event_from_payload({**payload, "type": "nope"})


# --------------------------------------------------------------------------- MLflow


def mlflow_envelope(entity: str, action: str, data: dict[str, Any]) -> dict[str, Any]:
    """The body MLflow's mlflow/webhooks/delivery.py sends (timestamp is ISO 8601 UTC)."""
    return {
        "entity": entity,
        "action": action,
        "timestamp": "2025-08-01T12:00:00.000000+00:00",
        "data": data,
    }


MV_CREATED = {
    "name": "fraud-detector",
    "version": "8",
    "source": "models:/m-0123456789abcdef",
    "run_id": "abcd1234abcd5678",
    "tags": {"team": "ml-platform"},
    "description": "retrained on August data",
}


def test_model_version_created() -> None:
    event = parse_mlflow(mlflow_envelope("model_version", "created", MV_CREATED))
    assert event == ModelVersionCreated(
        name="fraud-detector",
        version="8",
        source="models:/m-0123456789abcdef",
        run_id="abcd1234abcd5678",
        tags={"team": "ml-platform"},
        description="retrained on August data",
    )
    assert event_from_payload(json.loads(json.dumps(event.to_payload()))) == event


def test_model_version_created_with_null_run_and_description() -> None:
    data = {**MV_CREATED, "run_id": None, "description": None, "tags": {}}
    event = parse_mlflow(mlflow_envelope("model_version", "created", data))
    assert isinstance(event, ModelVersionCreated)
    assert (event.run_id, event.description, event.tags) == ("", "", {})


def test_alias_created_and_tag_set() -> None:
    alias = parse_mlflow(
        mlflow_envelope(
            "model_version_alias",
            "created",
            {"name": "fraud-detector", "alias": "champion", "version": "8"},
        )
    )
    assert alias == AliasCreated(name="fraud-detector", alias="champion", version="8")
    tag = parse_mlflow(
        mlflow_envelope(
            "model_version_tag",
            "set",
            {"name": "fraud-detector", "version": "8", "key": "stage", "value": "ok"},
        )
    )
    assert tag == TagSet(name="fraud-detector", version="8", key="stage", value="ok")


@pytest.mark.parametrize(
    ("entity", "action"),
    [
        ("registered_model", "created"),
        ("model_version_alias", "deleted"),
        ("model_version_tag", "deleted"),
        ("prompt_version", "created"),
    ],
)
def test_known_mlflow_events_we_do_not_act_on_are_ignored(entity: str, action: str) -> None:
    result = parse_mlflow(mlflow_envelope(entity, action, {"name": "x"}))
    assert result == Ignored(f"MLflow event {entity}.{action} is not acted on")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": {}}, "'entity' and 'action' are required"),
        ({"entity": 1, "action": "created", "data": {}}, "'entity' and 'action' are required"),
        (mlflow_envelope("model_version", "exploded", {}), "unsupported MLflow event"),
        (mlflow_envelope("dataset", "created", {}), "unsupported MLflow event"),
    ],
)
def test_unrecognisable_mlflow_bodies_are_unsupported(body: dict[str, Any], message: str) -> None:
    with pytest.raises(UnsupportedEvent, match=message):
        parse_mlflow(body)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({k: v for k, v in MV_CREATED.items() if k != "name"}, "data.name: missing"),
        ({**MV_CREATED, "version": 8}, "data.version: expected a string, got int"),
        ({**MV_CREATED, "source": None}, "data.source: expected a string, got null"),
        ({**MV_CREATED, "tags": [["a", "b"]]}, "data.tags: expected an object, got list"),
        ({**MV_CREATED, "tags": {"a": 1}}, "data.tags: keys and values must be strings"),
        ({**MV_CREATED, "run_id": 5}, "data.run_id: expected a string or null, got int"),
    ],
)
def test_malformed_model_version_created_names_the_field(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(PayloadError, match=message) as info:
        parse_mlflow(mlflow_envelope("model_version", "created", data))
    assert not isinstance(info.value, UnsupportedEvent)


def test_mlflow_data_must_be_an_object() -> None:
    body = mlflow_envelope("model_version", "created", {})
    body["data"] = "nope"
    with pytest.raises(PayloadError, match="data: expected an object, got str"):
        parse_mlflow(body)


# --------------------------------------------------------------------------- Databricks


def databricks_body(event: str, **extra: Any) -> dict[str, Any]:
    """Shape of the Databricks workspace registry webhook payload examples."""
    return {
        "event": event,
        "webhook_id": "c5596721253c4b429368cf6f4341b88a",
        "event_timestamp": 1589859029343,
        "model_name": "Airline_Delay_SparkML",
        "version": "8",
        "text": "Registered model 'someModel' version 8 ...",
        **extra,
    }


def test_databricks_model_version_created_has_no_source() -> None:
    event = parse_databricks(databricks_body("MODEL_VERSION_CREATED"))
    assert event == ModelVersionCreated(
        name="Airline_Delay_SparkML",
        version="8",
        source="",
        run_id="",
        tags={},
        description="",
        registry="databricks",
    )


def test_databricks_stage_transitions() -> None:
    body = databricks_body(
        "MODEL_VERSION_TRANSITIONED_STAGE", to_stage="Production", from_stage="None"
    )
    assert parse_databricks(body) == StageTransition(
        name="Airline_Delay_SparkML", version="8", to_stage="Production", from_stage="None"
    )
    implied = parse_databricks(databricks_body("MODEL_VERSION_TRANSITIONED_TO_PRODUCTION"))
    assert isinstance(implied, StageTransition)
    assert implied.to_stage == "Production"
    assert event_from_payload(implied.to_payload()) == implied


def test_databricks_other_events_and_unknown_events() -> None:
    assert parse_databricks(databricks_body("COMMENT_CREATED", comment="hi")) == Ignored(
        "Databricks event COMMENT_CREATED is not acted on"
    )
    with pytest.raises(UnsupportedEvent, match="unsupported Databricks registry event"):
        parse_databricks(databricks_body("MODEL_EXPLODED"))
    with pytest.raises(UnsupportedEvent, match="'event' is required"):
        parse_databricks({"model_name": "x"})


def test_databricks_transition_without_target_stage_is_malformed() -> None:
    with pytest.raises(PayloadError, match="to_stage: missing"):
        parse_databricks(databricks_body("MODEL_VERSION_TRANSITIONED_STAGE"))
