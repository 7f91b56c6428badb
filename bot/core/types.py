"""Plain data types shared by the pure core: config, edits, renders, diffs and plans."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from bot.core.grammar import DEFAULT_VERSION_PATTERN

# A repository snapshot: repo-relative POSIX path -> file content.
Snapshot = Mapping[str, bytes]

# Remote stores serving systems read; never MLflow's own indirections or local paths.
DEFAULT_STORAGE_SCHEMES = ("s3", "gs", "wasbs", "abfss", "hdfs", "https")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Approvals:
    required: int = 0
    users: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()  # "team-slug" in the repo owner's org


@dataclass(frozen=True)
class Environment:
    name: str
    path: str  # repo-relative overlay directory holding kustomization.yaml
    auto_merge: bool = False
    promote_from: str | None = None
    approvals: Approvals = field(default_factory=Approvals)
    merge_method: Literal["merge", "squash", "rebase"] = "squash"
    required_checks: tuple[str, ...] = ()
    auto_promote: bool = False  # open this env's PR when a promote_from PR merges
    # URI schemes of model locations its serving system can load
    storage_schemes: tuple[str, ...] = DEFAULT_STORAGE_SCHEMES
    # promote_from's soak time: the upstream must have run the version healthy this long
    healthy_for_s: float = 0.0
    production: bool = False  # GitHub deployments of it are `production_environment`
    argocd_application: str | None = None  # the Argo CD Application syncing its overlay
    argocd_sync: bool = False  # the bot triggers that application's sync after a merge
    flagger_canary: tuple[str, str] | None = None  # (namespace, name) of its Flagger Canary
    on_canary_failure: Literal["none", "rollback"] = "none"


@dataclass(frozen=True)
class SetRule:
    file: str  # relative to the environment's path
    field: str  # Kustomize field path, e.g. images.[name=x].newTag
    value: str  # template with {storage_uri}, {version}, {model}, {registry_name}, {run_id}
    environments: tuple[str, ...] = ()  # the environments it applies to; () = every one

    def applies_to(self, environment: str) -> bool:
        return not self.environments or environment in self.environments


@dataclass(frozen=True)
class TrafficRule:
    file: str  # relative to the environment's path
    baseline: str  # field path of the baseline weight
    candidate: str  # field path of the candidate weight
    environments: tuple[str, ...] = ()  # the environments it applies to; () = every one

    def applies_to(self, environment: str) -> bool:
        return not self.environments or environment in self.environments


@dataclass(frozen=True)
class Model:
    name: str  # name used in commands
    registry_name: str  # MLflow registered model name
    set: tuple[SetRule, ...]
    traffic: TrafficRule | None = None
    version_pattern: str = DEFAULT_VERSION_PATTERN  # whole-match regex


@dataclass(frozen=True)
class Trigger:
    on: str  # model_version.created | model_version_alias.created | model_version_tag.set
    promote_to: str
    model: str | None = None
    alias: str | None = None
    tag: str | None = None  # "key" or "key=value" for model_version_tag.set


@dataclass(frozen=True)
class Config:
    version: int
    environments: tuple[Environment, ...]
    models: tuple[Model, ...]
    triggers: tuple[Trigger, ...] = ()

    def environment(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name == name), None)

    def model(self, name: str) -> Model | None:
        return next((m for m in self.models if m.name == name), None)

    def model_by_registry_name(self, registry_name: str) -> Model | None:
        return next((m for m in self.models if m.registry_name == registry_name), None)

    def environment_of_canary(self, namespace: str, name: str) -> Environment | None:
        """The environment whose model the Flagger Canary `namespace/name` rolls out."""
        return next((e for e in self.environments if e.flagger_canary == (namespace, name)), None)

    def environment_of_application(self, application: str) -> Environment | None:
        """The environment whose overlay the Argo CD application `application` syncs."""
        return next((e for e in self.environments if e.argocd_application == application), None)


# --------------------------------------------------------------------------- edits


@dataclass(frozen=True)
class FieldEdit:
    """Set one scalar, addressed by a Kustomize field path, in one repo file."""

    path: str  # repo-relative file path
    field: str
    value: str | int


@dataclass(frozen=True)
class FileChange:
    path: str
    before: bytes
    after: bytes
    # (field path, old value or None when created, new value) for each edit applied;
    # values are "<redacted>" when the edit feeds a Secret
    edits: tuple[tuple[str, str | None, str], ...] = ()
    secret: bool = False  # the file carries Secret material: never show its values


# --------------------------------------------------------------------------- render + diff


@dataclass(frozen=True)
class RenderResult:
    overlay: str  # repo-relative overlay directory
    ok: bool
    output: str = ""  # rendered multi-document YAML (when ok)
    error: str = ""  # Kustomize's error message (when not ok), paths made repo-relative


@dataclass(frozen=True)
class FieldChange:
    path: str  # dotted path inside the resource, e.g. spec.storageUri
    old: str | None  # rendered scalar (redacted for secrets); None when added
    new: str | None  # None when removed


@dataclass(frozen=True)
class ResourceChange:
    resource: str  # "Kind/name" or "Kind/namespace/name"
    status: Literal["added", "removed", "changed"]
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class EnvironmentDiff:
    environment: str  # environment name (or overlay path if not configured)
    overlay: str
    base: RenderResult
    head: RenderResult
    changes: tuple[ResourceChange, ...] = ()
    unified_diff: str = ""  # unified diff of the (redacted, normalised) rendered YAML
    # repo paths the build references that do not exist, every one the graph knows (Kustomize
    # names only the first); filled for a side that fails to build
    base_missing: tuple[str, ...] = ()
    head_missing: tuple[str, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        out = {"added": 0, "changed": 0, "removed": 0}
        for change in self.changes:
            out[change.status] += 1
        return out


# --------------------------------------------------------------------------- no-op diagnosis


@dataclass(frozen=True)
class DuplicateKey:
    """A key written more than once in one mapping of a kustomization file."""

    file: str
    key: str  # dotted path of the key, e.g. "patches" or "images.0.newTag"
    lines: tuple[int, ...]  # 1-based, in file order; Kustomize keeps the last

    @property
    def kept(self) -> int:
        return self.lines[-1]

    @property
    def shadowed(self) -> tuple[int, ...]:
        return self.lines[:-1]


@dataclass(frozen=True)
class Unchanged:
    """One reason the target environment's render does not change."""

    kind: Literal["already-set", "shadowed", "not-loaded", "no-effect"]
    file: str  # the edited file (already-set: the file holding the value)
    field: str = ""  # already-set: the field path
    value: str = ""  # already-set: the value it already has
    duplicate: DuplicateKey | None = None  # shadowed: the duplicate key
    line: int = 0  # shadowed: the line of the occurrence that references the file


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class PromotionRequest:
    model: str  # config model name
    version: str
    environment: str
    source_uri: str = ""
    traffic: tuple[int, int] | None = None  # (baseline, candidate), sums to 100
    requester: str = ""  # GitHub login or "mlflow"
    trigger: str = ""  # human description: "MLflow model_version.created", "/promote by @x"
    run_id: str = ""
    source_note: str = ""  # e.g. "source not resolved: no MLFLOW_TRACKING_URI configured"
    kind: Literal["promote", "rollback"] = "promote"


@dataclass(frozen=True)
class Plan:
    request: PromotionRequest
    branch: str
    title: str
    changes: tuple[FileChange, ...]
    diffs: tuple[EnvironmentDiff, ...]
    environment: Environment
    model: Model
    meta: Mapping[str, object] = field(default_factory=dict)  # goes into the hidden marker
    # every configured environment whose render the change alters (the target first): the
    # approval gate applies each one's policy, so the PR names them all
    affected: tuple[Environment, ...] = ()
    # why the target's render does not change (empty when it does, or fails to build)
    unchanged: tuple[Unchanged, ...] = ()
    # duplicate keys in the kustomizations the affected environments build
    duplicates: tuple[DuplicateKey, ...] = ()


@dataclass(frozen=True)
class PullRequestText:
    title: str
    body: str
    parts: tuple[str, ...] = ()  # follow-up comments, "part i/N"
    check_summary: str = ""  # full text for the check run output (<= 65535)
