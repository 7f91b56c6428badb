"""Parse raw GitHub, MLflow and Databricks webhook payloads into typed, serialisable events."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union

from bot.core.errors import BotError
from bot.core.grammar import alias_problem, intake_version_problem


class PayloadError(BotError):
    """A payload does not have the shape its event promises (the message names the field)."""


class UnsupportedEvent(PayloadError):
    """The payload is not an event of a kind this bot recognises at all."""


@dataclass(frozen=True)
class Ignored:
    """A well-formed delivery the bot deliberately does not act on."""

    reason: str


_E = TypeVar("_E", bound="_Event")


class _Event:
    """Mixin: JSON round trip for the queue, with the payload validated on the way back."""

    KIND: ClassVar[str]

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.KIND}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_payload(cls: type[_E], payload: Mapping[str, Any]) -> _E:
        if not isinstance(payload, Mapping):
            raise PayloadError(f"{cls.__name__} payload must be an object")
        if payload.get("type") != cls.KIND:
            raise PayloadError(f"payload type is not {cls.KIND!r}")
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in payload:
                if (
                    f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING
                ):
                    continue
                raise PayloadError(f"{cls.KIND}: missing field {f.name!r}")
            kwargs[f.name] = _coerce(payload[f.name], hints[f.name], f"{cls.KIND}.{f.name}")
        return cls(**kwargs)


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _coerce(value: object, hint: Any, where: str) -> Any:
    """Check a JSON value against a field's type hint (the small subset events use)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, where)
            except PayloadError:
                continue
        raise PayloadError(f"{where}: unexpected {_type_name(value)}")
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise PayloadError(f"{where}: not one of {typing.get_args(hint)}")
        return value
    if origin is tuple:
        (item_hint, _ellipsis) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise PayloadError(f"{where}: expected a list, got {_type_name(value)}")
        return tuple(_coerce(v, item_hint, f"{where}[]") for v in value)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise PayloadError(f"{where}: expected an object, got {_type_name(value)}")
        return {str(k): _coerce(v, str, f"{where}.{k}") for k, v in value.items()}
    if hint is type(None):
        if value is not None:
            raise PayloadError(f"{where}: expected null")
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise PayloadError(f"{where}: expected a boolean, got {_type_name(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PayloadError(f"{where}: expected an integer, got {_type_name(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise PayloadError(f"{where}: expected a string, got {_type_name(value)}")
        return value
    raise TypeError(f"unsupported field type {hint!r} at {where}")  # a bug in this module


# --------------------------------------------------------------------------- GitHub events


@dataclass(frozen=True)
class CommentCreated(_Event):
    """A new comment on an issue or pull request (commands live here)."""

    KIND: ClassVar[str] = "issue_comment.created"
    repo: str  # "owner/name"
    installation_id: int | None  # None only for non-App (repository) webhooks
    issue_number: int
    is_pull_request: bool
    comment_id: int
    body: str
    author: str
    author_type: str  # "User" | "Bot" | "Organization" | "Mannequin"
    author_association: str  # OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE, ...
    issue_state: str = ""  # "open" | "closed"


@dataclass(frozen=True)
class PullRequestEvent(_Event):
    KIND: ClassVar[str] = "pull_request"
    repo: str
    installation_id: int | None
    action: str  # opened | reopened | synchronize | closed | ready_for_review | edited
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    author: str
    merged: bool
    draft: bool
    title: str
    body: str = ""
    head_repo: str = ""  # "owner/name" of the head branch's repository (differs for forks)
    sender: str = ""  # who triggered the action (e.g. who merged or pushed)
    merge_commit_sha: str = ""


@dataclass(frozen=True)
class ReviewEvent(_Event):
    KIND: ClassVar[str] = "pull_request_review"
    repo: str
    installation_id: int | None
    action: str  # submitted | dismissed | edited
    number: int
    reviewer: str  # "" when GitHub sends no user (deleted account)
    state: str  # upper case as in the REST API: APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    commit_id: str  # the commit the review was made on
    head_sha: str  # the pull request's head when the event was sent


@dataclass(frozen=True)
class CheckEvent(_Event):
    KIND: ClassVar[str] = "check"
    repo: str
    installation_id: int | None
    kind: Literal["check_run", "check_suite", "status"]
    action: str  # completed | rerequested ("" for status)
    head_sha: str
    conclusion: str  # check conclusion, or the status state; "" while not concluded
    name: str  # check run name, or status context; "" for a check suite
    pull_numbers: tuple[int, ...]  # PRs GitHub associates (empty for forks and statuses)
    app_slug: str = ""  # GitHub App owning the check run / suite
    status: str = ""  # queued | in_progress | completed (checks only)


@dataclass(frozen=True)
class InstallationEvent(_Event):
    KIND: ClassVar[str] = "installation"
    installation_id: int
    event: Literal["installation", "installation_repositories"]
    action: str
    account: str
    repositories: tuple[str, ...] = ()  # listed, or added, repositories ("owner/name")
    repositories_removed: tuple[str, ...] = ()
    repo: str = ""  # not scoped to one repository


@dataclass(frozen=True)
class Ping(_Event):
    KIND: ClassVar[str] = "ping"
    zen: str
    hook_id: int | None
    repo: str = ""  # "" for an App's own hook


GitHubEvent = (
    CommentCreated | PullRequestEvent | ReviewEvent | CheckEvent | InstallationEvent | Ping
)


# --------------------------------------------------------------------------- registry events


@dataclass(frozen=True)
class ModelVersionCreated(_Event):
    KIND: ClassVar[str] = "model_version.created"
    name: str
    version: str
    source: str  # "" when the registry does not send it (Databricks)
    run_id: str  # "" when none
    tags: dict[str, str]
    description: str  # "" when none
    registry: Literal["mlflow", "databricks"] = "mlflow"


@dataclass(frozen=True)
class AliasCreated(_Event):
    KIND: ClassVar[str] = "model_version_alias.created"
    name: str
    alias: str
    version: str


@dataclass(frozen=True)
class TagSet(_Event):
    KIND: ClassVar[str] = "model_version_tag.set"
    name: str
    version: str
    key: str
    value: str


@dataclass(frozen=True)
class StageTransition(_Event):
    """Databricks workspace registry: a model version moved to a stage."""

    KIND: ClassVar[str] = "model_version.transitioned_stage"
    name: str
    version: str
    to_stage: str  # "Staging" | "Production" | "Archived" | "None"
    from_stage: str = ""
    registry: Literal["mlflow", "databricks"] = "databricks"


MlflowEvent = ModelVersionCreated | AliasCreated | TagSet | StageTransition
Event = GitHubEvent | MlflowEvent

_EVENT_CLASSES: dict[str, type[_Event]] = {
    cls.KIND: cls
    for cls in (
        CommentCreated,
        PullRequestEvent,
        ReviewEvent,
        CheckEvent,
        InstallationEvent,
        Ping,
        ModelVersionCreated,
        AliasCreated,
        TagSet,
        StageTransition,
    )
}


def event_from_payload(payload: Mapping[str, Any]) -> Event:
    """Rebuild any event from its `to_payload()` form (e.g. a queued job's payload)."""
    if not isinstance(payload, Mapping):
        raise PayloadError("event payload must be an object")
    kind = payload.get("type")
    cls = _EVENT_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise PayloadError("event payload has no known 'type'")
    return typing.cast(Event, cls.from_payload(payload))


# --------------------------------------------------------------------------- field access


def _obj(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        what = "missing" if value is None else f"expected an object, got {_type_name(value)}"
        raise PayloadError(f"{where}{key}: {what}")
    return value


def _str(parent: Mapping[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str):
        what = "missing" if key not in parent else f"expected a string, got {_type_name(value)}"
        raise PayloadError(f"{where}{key}: {what}")
    return value


def _checked(
    parent: Mapping[str, Any], key: str, where: str, problem: Callable[[str], str | None]
) -> str:
    """A string that must also pass its grammar (`problem` says why not)."""
    value = _str(parent, key, where)
    why = problem(value)
    if why is not None:
        raise PayloadError(f"{where}{key}: {why}")
    return value


def _version(parent: Mapping[str, Any], key: str, where: str) -> str:
    """A model version: a string of the shape every version grammar shares."""
    return _checked(parent, key, where, intake_version_problem)


def _alias(parent: Mapping[str, Any], key: str, where: str) -> str:
    return _checked(parent, key, where, alias_problem)


def _opt_str(parent: Mapping[str, Any], key: str, where: str) -> str:
    """A string that may be absent or null (read as "")."""
    value = parent.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"{where}{key}: expected a string or null, got {_type_name(value)}")
    return value


def _int(parent: Mapping[str, Any], key: str, where: str) -> int:
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        what = "missing" if key not in parent else f"expected an integer, got {_type_name(value)}"
        raise PayloadError(f"{where}{key}: {what}")
    return value


def _bool(parent: Mapping[str, Any], key: str, where: str, default: bool | None = None) -> bool:
    value = parent.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        what = "missing" if key not in parent else f"expected a boolean, got {_type_name(value)}"
        raise PayloadError(f"{where}{key}: {what}")
    return value


def _login(parent: Mapping[str, Any], key: str, where: str) -> str:
    """The login of a user object that GitHub may send as null (deleted account)."""
    if parent.get(key) is None:
        return ""
    return _str(_obj(parent, key, where), "login", f"{where}{key}.")


def _repo_name(payload: Mapping[str, Any]) -> str:
    full_name = _str(_obj(payload, "repository", ""), "full_name", "repository.")
    owner, sep, name = full_name.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise PayloadError("repository.full_name: expected owner/name")
    return full_name


def _installation_id(payload: Mapping[str, Any]) -> int | None:
    if payload.get("installation") is None:
        return None
    return _int(_obj(payload, "installation", ""), "id", "installation.")


# --------------------------------------------------------------------------- GitHub parsing

_PR_ACTIONS = frozenset({"opened", "reopened", "synchronize", "closed", "ready_for_review"})
_CHECK_ACTIONS = frozenset({"completed", "rerequested"})
_INSTALLATION_ACTIONS = frozenset(
    {"created", "deleted", "suspend", "unsuspend", "new_permissions_accepted"}
)


def _is_own_event(payload: Mapping[str, Any], bot_login: str | None) -> bool:
    if not bot_login:
        return False
    sender = payload.get("sender")
    if not isinstance(sender, Mapping):
        return False
    return sender.get("type") == "Bot" and sender.get("login") == bot_login


def _action(payload: Mapping[str, Any]) -> str:
    return _str(payload, "action", "")


def _comment(payload: Mapping[str, Any]) -> CommentCreated | Ignored:
    action = _action(payload)
    if action != "created":
        return Ignored(f"issue_comment.{action} is not handled (only new comments carry commands)")
    issue = _obj(payload, "issue", "")
    comment = _obj(payload, "comment", "")
    user = _obj(comment, "user", "comment.")
    return CommentCreated(
        repo=_repo_name(payload),
        installation_id=_installation_id(payload),
        issue_number=_int(issue, "number", "issue."),
        is_pull_request=issue.get("pull_request") is not None,
        comment_id=_int(comment, "id", "comment."),
        body=_opt_str(comment, "body", "comment."),
        author=_str(user, "login", "comment.user."),
        author_type=_str(user, "type", "comment.user."),
        author_association=_str(comment, "author_association", "comment."),
        issue_state=_opt_str(issue, "state", "issue."),
    )


def _pull_request(payload: Mapping[str, Any]) -> PullRequestEvent | Ignored:
    action = _action(payload)
    if action == "edited":
        changes = payload.get("changes")
        if not (isinstance(changes, Mapping) and "base" in changes):
            return Ignored("pull_request.edited without a base branch change is not handled")
    elif action not in _PR_ACTIONS:
        return Ignored(f"pull_request.{action} is not handled")
    pr = _obj(payload, "pull_request", "")
    head = _obj(pr, "head", "pull_request.")
    base = _obj(pr, "base", "pull_request.")
    head_repo = head.get("repo")
    return PullRequestEvent(
        repo=_repo_name(payload),
        installation_id=_installation_id(payload),
        action=action,
        number=_int(pr, "number", "pull_request."),
        head_sha=_str(head, "sha", "pull_request.head."),
        head_ref=_str(head, "ref", "pull_request.head."),
        base_ref=_str(base, "ref", "pull_request.base."),
        author=_login(pr, "user", "pull_request."),
        merged=_bool(pr, "merged", "pull_request.", default=False),
        draft=_bool(pr, "draft", "pull_request.", default=False),
        title=_str(pr, "title", "pull_request."),
        body=_opt_str(pr, "body", "pull_request."),
        # A deleted fork has head.repo null.
        head_repo=(
            _str(head_repo, "full_name", "pull_request.head.repo.")
            if isinstance(head_repo, Mapping)
            else ""
        ),
        sender=_login(payload, "sender", ""),
        merge_commit_sha=_opt_str(pr, "merge_commit_sha", "pull_request."),
    )


def _review(payload: Mapping[str, Any]) -> ReviewEvent | Ignored:
    action = _action(payload)
    if action not in ("submitted", "dismissed", "edited"):
        return Ignored(f"pull_request_review.{action} is not handled")
    review = _obj(payload, "review", "")
    pr = _obj(payload, "pull_request", "")
    return ReviewEvent(
        repo=_repo_name(payload),
        installation_id=_installation_id(payload),
        action=action,
        number=_int(pr, "number", "pull_request."),
        reviewer=_login(review, "user", "review."),
        state=_str(review, "state", "review.").upper(),
        commit_id=_opt_str(review, "commit_id", "review."),
        head_sha=_str(_obj(pr, "head", "pull_request."), "sha", "pull_request.head."),
    )


def _pull_numbers(obj: Mapping[str, Any], where: str) -> tuple[int, ...]:
    prs = obj.get("pull_requests")
    if prs is None:
        return ()
    if not isinstance(prs, list):
        raise PayloadError(f"{where}pull_requests: expected a list, got {_type_name(prs)}")
    numbers = []
    for i, pr in enumerate(prs):
        if not isinstance(pr, Mapping):
            raise PayloadError(f"{where}pull_requests[{i}]: expected an object")
        numbers.append(_int(pr, "number", f"{where}pull_requests[{i}]."))
    return tuple(numbers)


def _app_slug(obj: Mapping[str, Any], where: str) -> str:
    app = obj.get("app")
    if not isinstance(app, Mapping):
        return ""
    return _opt_str(app, "slug", f"{where}app.")


def _check_run(payload: Mapping[str, Any]) -> CheckEvent | Ignored:
    action = _action(payload)
    if action not in _CHECK_ACTIONS:
        return Ignored(f"check_run.{action} is not handled")
    run = _obj(payload, "check_run", "")
    return CheckEvent(
        repo=_repo_name(payload),
        installation_id=_installation_id(payload),
        kind="check_run",
        action=action,
        head_sha=_str(run, "head_sha", "check_run."),
        conclusion=_opt_str(run, "conclusion", "check_run."),
        name=_str(run, "name", "check_run."),
        pull_numbers=_pull_numbers(run, "check_run."),
        app_slug=_app_slug(run, "check_run."),
        status=_opt_str(run, "status", "check_run."),
    )


def _check_suite(payload: Mapping[str, Any]) -> CheckEvent | Ignored:
    action = _action(payload)
    if action not in _CHECK_ACTIONS:
        return Ignored(f"check_suite.{action} is not handled")
    suite = _obj(payload, "check_suite", "")
    return CheckEvent(
        repo=_repo_name(payload),
        installation_id=_installation_id(payload),
        kind="check_suite",
        action=action,
        head_sha=_str(suite, "head_sha", "check_suite."),
        conclusion=_opt_str(suite, "conclusion", "check_suite."),
        name="",
        pull_numbers=_pull_numbers(suite, "check_suite."),
        app_slug=_app_slug(suite, "check_suite."),
        status=_opt_str(suite, "status", "check_suite."),
    )


def _status(payload: Mapping[str, Any]) -> CheckEvent:
    return CheckEvent(
        repo=_repo_name(payload),
        installation_id=_installation_id(payload),
        kind="status",
        action="",
        head_sha=_str(payload, "sha", ""),
        conclusion=_str(payload, "state", ""),
        name=_str(payload, "context", ""),
        pull_numbers=(),
    )


def _repo_list(payload: Mapping[str, Any], key: str) -> tuple[str, ...]:
    repos = payload.get(key)
    if repos is None:
        return ()
    if not isinstance(repos, list):
        raise PayloadError(f"{key}: expected a list, got {_type_name(repos)}")
    names = []
    for i, repo in enumerate(repos):
        if not isinstance(repo, Mapping):
            raise PayloadError(f"{key}[{i}]: expected an object")
        names.append(_str(repo, "full_name", f"{key}[{i}]."))
    return tuple(names)


def _installation(payload: Mapping[str, Any], event: str) -> InstallationEvent | Ignored:
    action = _action(payload)
    installation = _obj(payload, "installation", "")
    installation_id = _int(installation, "id", "installation.")
    account_obj = installation.get("account")
    account = (
        _opt_str(account_obj, "login", "installation.account.")
        if isinstance(account_obj, Mapping)
        else ""
    )
    if event == "installation":
        if action not in _INSTALLATION_ACTIONS:
            return Ignored(f"installation.{action} is not handled")
        return InstallationEvent(
            installation_id=installation_id,
            event="installation",
            action=action,
            account=account,
            repositories=_repo_list(payload, "repositories"),
        )
    if action not in ("added", "removed"):
        return Ignored(f"installation_repositories.{action} is not handled")
    return InstallationEvent(
        installation_id=installation_id,
        event="installation_repositories",
        action=action,
        account=account,
        repositories=_repo_list(payload, "repositories_added"),
        repositories_removed=_repo_list(payload, "repositories_removed"),
    )


def _ping(payload: Mapping[str, Any]) -> Ping:
    hook_id = payload.get("hook_id")
    repo = _repo_name(payload) if payload.get("repository") is not None else ""
    return Ping(
        zen=_opt_str(payload, "zen", ""),
        hook_id=_int(payload, "hook_id", "") if hook_id is not None else None,
        repo=repo,
    )


def parse_github(
    event: str, payload: Mapping[str, Any], *, bot_login: str | None = None
) -> GitHubEvent | Ignored:
    """Turn one GitHub App delivery (X-GitHub-Event + JSON body) into a typed event.

    Raises PayloadError when a handled event lacks a field or has the wrong type.
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("payload must be a JSON object")
    if event == "ping":
        return _ping(payload)
    if _is_own_event(payload, bot_login):
        return Ignored(f"{event} sent by the bot itself ({bot_login})")
    if event == "issue_comment":
        return _comment(payload)
    if event == "pull_request":
        return _pull_request(payload)
    if event == "pull_request_review":
        return _review(payload)
    if event == "check_run":
        return _check_run(payload)
    if event == "check_suite":
        return _check_suite(payload)
    if event == "status":
        return _status(payload)
    if event in ("installation", "installation_repositories"):
        return _installation(payload, event)
    return Ignored(f"GitHub event {event[:64]!r} is not handled")


# --------------------------------------------------------------------------- MLflow parsing

# Entity/action pairs MLflow 3.x can send (mlflow/entities/webhook.py VALID_ENTITY_ACTIONS).
_MLFLOW_KNOWN_EVENTS = frozenset(
    {
        "registered_model.created",
        "model_version.created",
        "model_version_tag.set",
        "model_version_tag.deleted",
        "model_version_alias.created",
        "model_version_alias.deleted",
        "prompt.created",
        "prompt_version.created",
        "prompt_tag.set",
        "prompt_tag.deleted",
        "prompt_version_tag.set",
        "prompt_version_tag.deleted",
        "prompt_alias.created",
        "prompt_alias.deleted",
        "budget_policy.exceeded",
    }
)


def _tags(data: Mapping[str, Any]) -> dict[str, str]:
    tags = data.get("tags")
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise PayloadError(f"data.tags: expected an object, got {_type_name(tags)}")
    out: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise PayloadError("data.tags: keys and values must be strings")
        out[key] = value
    return out


def parse_mlflow(payload: Mapping[str, Any]) -> MlflowEvent | Ignored:
    """Parse an open-source MLflow (3.3+) webhook body `{entity, action, timestamp, data}`.

    Raises UnsupportedEvent when the body is not a known MLflow event, PayloadError when a
    known event is malformed.
    """
    if not isinstance(payload, Mapping):
        raise UnsupportedEvent("not an MLflow webhook event: body is not a JSON object")
    entity, action = payload.get("entity"), payload.get("action")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise UnsupportedEvent("not an MLflow webhook event: 'entity' and 'action' are required")
    name = f"{entity}.{action}"
    if name not in _MLFLOW_KNOWN_EVENTS:
        raise UnsupportedEvent(f"unsupported MLflow event {name[:80]!r}")
    data = _obj(payload, "data", "")
    where = "data."
    if name == "model_version.created":
        return ModelVersionCreated(
            name=_str(data, "name", where),
            version=_version(data, "version", where),
            source=_str(data, "source", where),
            run_id=_opt_str(data, "run_id", where),
            tags=_tags(data),
            description=_opt_str(data, "description", where),
        )
    if name == "model_version_alias.created":
        return AliasCreated(
            name=_str(data, "name", where),
            alias=_alias(data, "alias", where),
            version=_version(data, "version", where),
        )
    if name == "model_version_tag.set":
        return TagSet(
            name=_str(data, "name", where),
            version=_version(data, "version", where),
            key=_str(data, "key", where),
            value=_str(data, "value", where),
        )
    return Ignored(f"MLflow event {name} is not acted on")


# --------------------------------------------------------------------------- Databricks parsing

# Events of Databricks workspace model registry webhooks (docs: model-registry-webhooks).
_DATABRICKS_TRANSITIONS = {
    "MODEL_VERSION_TRANSITIONED_STAGE": None,
    "MODEL_VERSION_TRANSITIONED_TO_STAGING": "Staging",
    "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION": "Production",
    "MODEL_VERSION_TRANSITIONED_TO_ARCHIVED": "Archived",
}
_DATABRICKS_OTHER_EVENTS = frozenset(
    {
        "TRANSITION_REQUEST_CREATED",
        "COMMENT_CREATED",
        "REGISTERED_MODEL_CREATED",
        "MODEL_VERSION_TAG_SET",
        "TRANSITION_REQUEST_TO_STAGING_CREATED",
        "TRANSITION_REQUEST_TO_PRODUCTION_CREATED",
        "TRANSITION_REQUEST_TO_ARCHIVED_CREATED",
    }
)


def parse_databricks(payload: Mapping[str, Any]) -> MlflowEvent | Ignored:
    """Parse a Databricks workspace registry webhook body (`{"event", "model_name", ...}`).

    Databricks leaves the artifact location out of its payloads, so `source` is "".
    """
    if not isinstance(payload, Mapping):
        raise UnsupportedEvent("not a Databricks registry webhook event: body is not an object")
    event = payload.get("event")
    if not isinstance(event, str):
        raise UnsupportedEvent("not a Databricks registry webhook event: 'event' is required")
    if event == "MODEL_VERSION_CREATED":
        return ModelVersionCreated(
            name=_str(payload, "model_name", ""),
            version=_version(payload, "version", ""),
            source="",
            run_id="",
            tags={},
            description="",
            registry="databricks",
        )
    if event in _DATABRICKS_TRANSITIONS:
        implied = _DATABRICKS_TRANSITIONS[event]
        to_stage = (
            _str(payload, "to_stage", "")
            if implied is None
            else (_opt_str(payload, "to_stage", "") or implied)
        )
        return StageTransition(
            name=_str(payload, "model_name", ""),
            version=_version(payload, "version", ""),
            to_stage=to_stage,
            from_stage=_opt_str(payload, "from_stage", ""),
        )
    if event in _DATABRICKS_OTHER_EVENTS:
        return Ignored(f"Databricks event {event} is not acted on")
    raise UnsupportedEvent(f"unsupported Databricks registry event {event[:80]!r}")


__all__ = [
    "AliasCreated",
    "CheckEvent",
    "CommentCreated",
    "Event",
    "GitHubEvent",
    "Ignored",
    "InstallationEvent",
    "MlflowEvent",
    "ModelVersionCreated",
    "PayloadError",
    "Ping",
    "PullRequestEvent",
    "ReviewEvent",
    "StageTransition",
    "TagSet",
    "UnsupportedEvent",
    "event_from_payload",
    "parse_databricks",
    "parse_github",
    "parse_mlflow",
]
