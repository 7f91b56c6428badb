"""The bot's own memory of pull requests: promotions it opened, commits it pushed, who else
pushed, and which environments each rendered head changes. The gate trusts only this.

Stored next to the job queue (same database: SQLite by default, PostgreSQL for replicas);
statements are written once in psycopg's `%(name)s` style and run by the queue backend.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.canary import CanaryEvent
from bot.core.feedback import EnvironmentHealth

# Portable DDL: SQLite accepts these types through its affinity rules.
RECORDS_DDL = (
    """CREATE TABLE IF NOT EXISTS {promotion_prs} (
    repo TEXT NOT NULL,
    number BIGINT NOT NULL,
    branch TEXT NOT NULL,
    environment TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (repo, number))""",
    """CREATE TABLE IF NOT EXISTS {bot_commits} (
    repo TEXT NOT NULL,
    sha TEXT NOT NULL,
    branch TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (repo, sha))""",
    """CREATE TABLE IF NOT EXISTS {bot_branches} (
    repo TEXT NOT NULL,
    branch TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (repo, branch))""",
    """CREATE TABLE IF NOT EXISTS {pr_pushers} (
    repo TEXT NOT NULL,
    number BIGINT NOT NULL,
    login TEXT NOT NULL,
    PRIMARY KEY (repo, number, login))""",
    """CREATE TABLE IF NOT EXISTS {pr_flags} (
    repo TEXT NOT NULL,
    number BIGINT NOT NULL,
    flag TEXT NOT NULL,
    PRIMARY KEY (repo, number, flag))""",
    """CREATE TABLE IF NOT EXISTS {refusals} (
    repo TEXT NOT NULL,
    model TEXT NOT NULL,
    environment TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (repo, model, environment, version, kind))""",
    """CREATE TABLE IF NOT EXISTS {pr_renders} (
    repo TEXT NOT NULL,
    number BIGINT NOT NULL,
    head_sha TEXT NOT NULL,
    base_ref TEXT NOT NULL,
    merge_base TEXT NOT NULL,
    environments TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (repo, number, head_sha, base_ref))""",
    # a GitHub deployment per merged promotion (deployment_id 0: being created)
    """CREATE TABLE IF NOT EXISTS {deployments} (
    repo TEXT NOT NULL,
    environment TEXT NOT NULL,
    sha TEXT NOT NULL,
    deployment_id BIGINT NOT NULL,
    number BIGINT NOT NULL,
    meta TEXT NOT NULL,
    approvers TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    rollback_number BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (repo, environment, sha))""",
    # what Argo CD last said about each environment
    """CREATE TABLE IF NOT EXISTS {environment_health} (
    repo TEXT NOT NULL,
    environment TEXT NOT NULL,
    application TEXT NOT NULL,
    revision TEXT NOT NULL,
    sync_status TEXT NOT NULL,
    health_status TEXT NOT NULL,
    operation_phase TEXT NOT NULL,
    message TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    ours INTEGER NOT NULL,
    healthy_since DOUBLE PRECISION,
    observed_at DOUBLE PRECISION NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (repo, environment))""",
    # the phases Flagger reported for the canary of each deployment
    """CREATE TABLE IF NOT EXISTS {canary_events} (
    repo TEXT NOT NULL,
    environment TEXT NOT NULL,
    sha TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    phase TEXT NOT NULL,
    name TEXT NOT NULL,
    namespace TEXT NOT NULL,
    checksum TEXT NOT NULL,
    message TEXT NOT NULL,
    event_type TEXT NOT NULL,
    PRIMARY KEY (repo, environment, sha, at_ms, phase))""",
    # Flagger's confirm-promotion question names a canary, not a repository
    """CREATE INDEX IF NOT EXISTS canary_events_by_canary
    ON {canary_events} (namespace, name, at_ms)""",
)
RECORD_TABLES = (
    "promotion_prs",
    "bot_commits",
    "bot_branches",
    "pr_pushers",
    "pr_flags",
    "pr_renders",
    "refusals",
    "deployments",
    "environment_health",
    "canary_events",
)


class SqlRunner(Protocol):
    """What the queue backends offer: run one statement in its own transaction."""

    def run_sql(self, statement: str, params: Mapping[str, object]) -> list[dict[str, Any]]: ...


class _PromotionMeta:
    """Model and version of a promotion, from the metadata the bot recorded with it."""

    meta: Mapping[str, object]

    @property
    def model(self) -> str:
        return str(self.meta.get("model") or "")

    @property
    def version(self) -> str:
        return str(self.meta.get("version") or "")


@dataclass(frozen=True)
class PromotionRecord(_PromotionMeta):
    """What the bot itself knows about a promotion PR it opened."""

    repo: str
    number: int
    branch: str
    meta: Mapping[str, object]

    @property
    def environment(self) -> str:
        return str(self.meta.get("env") or "")

    @property
    def requester(self) -> str:
        return str(self.meta.get("requester") or "")


@dataclass(frozen=True)
class RefusalRecord:
    """A registry event the bot did not promote, and why (shown on the operator page)."""

    repo: str
    model: str
    environment: str
    version: str
    kind: str
    reason: str
    created_at: float


@dataclass(frozen=True)
class RenderRecord:
    """A head that was rendered and published: the environments its change reaches."""

    head_sha: str
    base_ref: str
    merge_base: str
    environments: tuple[str, ...]


@dataclass(frozen=True)
class DeploymentRecord(_PromotionMeta):
    """The GitHub deployment of a merged promotion, as the bot created it."""

    repo: str
    environment: str
    sha: str  # the merge commit
    deployment_id: int  # 0 while being created (a crash there: look it up on GitHub)
    number: int  # the promotion PR
    meta: Mapping[str, object]
    approvers: tuple[str, ...]
    state: str  # the last status the bot gave it ("" before the first)
    created_at: float
    rollback_number: int = 0  # the PR that rolls it back after its canary failed


def _key(repo: str) -> str:
    return repo.lower()  # GitHub names are case-insensitive


class PromotionRecords:
    """Reads and writes the bot's records through the queue's database."""

    def __init__(self, db: SqlRunner) -> None:
        self.db = db

    # -- promotion PRs ---------------------------------------------------------------------

    def save_promotion(
        self, repo: str, number: int, branch: str, meta: Mapping[str, object]
    ) -> None:
        self.db.run_sql(
            "INSERT INTO {promotion_prs} (repo, number, branch, environment, model, version,"
            " meta, created_at) VALUES (%(repo)s, %(number)s, %(branch)s, %(env)s, %(model)s,"
            " %(version)s, %(meta)s, %(now)s) ON CONFLICT (repo, number) DO UPDATE SET"
            " branch = excluded.branch, environment = excluded.environment,"
            " model = excluded.model, version = excluded.version, meta = excluded.meta",
            {
                "repo": _key(repo),
                "number": int(number),
                "branch": branch,
                "env": str(meta.get("env") or ""),
                "model": str(meta.get("model") or ""),
                "version": str(meta.get("version") or ""),
                "meta": json.dumps(dict(meta), sort_keys=True, default=str),
                "now": time.time(),
            },
        )

    def promotion(self, repo: str, number: int) -> PromotionRecord | None:
        found = self.promotions(repo, [number])
        return found.get(int(number))

    def promotions(self, repo: str, numbers: Iterable[int]) -> dict[int, PromotionRecord]:
        wanted = sorted({int(n) for n in numbers})
        if not wanted:
            return {}
        marks = ", ".join(f"%(n{i})s" for i in range(len(wanted)))
        rows = self.db.run_sql(
            "SELECT number, branch, meta FROM {promotion_prs}"
            f" WHERE repo = %(repo)s AND number IN ({marks})",
            {"repo": _key(repo), **{f"n{i}": n for i, n in enumerate(wanted)}},
        )
        return {
            int(row["number"]): PromotionRecord(
                repo, int(row["number"]), str(row["branch"]), json.loads(row["meta"])
            )
            for row in rows
        }

    # -- commits the bot pushed ------------------------------------------------------------

    def record_commit(self, repo: str, sha: str, branch: str) -> None:
        self.db.run_sql(
            "INSERT INTO {bot_commits} (repo, sha, branch, created_at)"
            " VALUES (%(repo)s, %(sha)s, %(branch)s, %(now)s) ON CONFLICT (repo, sha) DO NOTHING",
            {"repo": _key(repo), "sha": sha, "branch": branch, "now": time.time()},
        )

    def is_bot_commit(self, repo: str, sha: str) -> bool:
        rows = self.db.run_sql(
            "SELECT 1 AS found FROM {bot_commits} WHERE repo = %(repo)s AND sha = %(sha)s",
            {"repo": _key(repo), "sha": sha},
        )
        return bool(rows)

    def note_branch(self, repo: str, branch: str) -> bool:
        """Remember that the bot is about to push to `branch`; True when it had before (a
        rerun, or an earlier promotion of the same version): then the branch is looked at
        before anything is created, so a rerun never makes a second commit."""
        before = bool(
            self.db.run_sql(
                "SELECT 1 AS found FROM {bot_branches}"
                " WHERE repo = %(repo)s AND branch = %(branch)s",
                {"repo": _key(repo), "branch": branch},
            )
        )
        if not before:
            self.db.run_sql(
                "INSERT INTO {bot_branches} (repo, branch, created_at)"
                " VALUES (%(repo)s, %(branch)s, %(now)s) ON CONFLICT (repo, branch) DO NOTHING",
                {"repo": _key(repo), "branch": branch, "now": time.time()},
            )
        return before

    # -- people who pushed to a PR ---------------------------------------------------------

    def add_pusher(self, repo: str, number: int, login: str) -> None:
        self.db.run_sql(
            "INSERT INTO {pr_pushers} (repo, number, login) VALUES (%(repo)s, %(number)s,"
            " %(login)s) ON CONFLICT (repo, number, login) DO NOTHING",
            {"repo": _key(repo), "number": int(number), "login": login.lower()},
        )

    def pushers(self, repo: str, number: int) -> frozenset[str]:
        rows = self.db.run_sql(
            "SELECT login FROM {pr_pushers} WHERE repo = %(repo)s AND number = %(number)s",
            {"repo": _key(repo), "number": int(number)},
        )
        return frozenset(str(row["login"]) for row in rows)

    # -- flags: facts about a PR worth a database row, not a GitHub call -------------------

    def set_flag(self, repo: str, number: int, flag: str, on: bool = True) -> None:
        if on:
            statement = (
                "INSERT INTO {pr_flags} (repo, number, flag) VALUES (%(repo)s, %(number)s,"
                " %(flag)s) ON CONFLICT (repo, number, flag) DO NOTHING"
            )
        else:
            statement = (
                "DELETE FROM {pr_flags} WHERE repo = %(repo)s AND number = %(number)s"
                " AND flag = %(flag)s"
            )
        self.db.run_sql(statement, {"repo": _key(repo), "number": int(number), "flag": flag})

    def has_flag(self, repo: str, number: int, flag: str) -> bool:
        rows = self.db.run_sql(
            "SELECT 1 AS found FROM {pr_flags} WHERE repo = %(repo)s AND number = %(number)s"
            " AND flag = %(flag)s",
            {"repo": _key(repo), "number": int(number), "flag": flag},
        )
        return bool(rows)

    # -- registry events not promoted ------------------------------------------------------

    def save_refusal(
        self, repo: str, model: str, environment: str, version: str, kind: str, reason: str
    ) -> bool:
        """Record a refusal; False when the same one was recorded already (a redelivery)."""
        rows = self.db.run_sql(
            "INSERT INTO {refusals} (repo, model, environment, version, kind, reason,"
            " created_at) VALUES (%(repo)s, %(model)s, %(env)s, %(version)s, %(kind)s,"
            " %(reason)s, %(now)s) ON CONFLICT (repo, model, environment, version, kind)"
            " DO NOTHING RETURNING 1 AS inserted",
            {
                "repo": _key(repo),
                "model": model,
                "env": environment,
                "version": version,
                "kind": kind,
                "reason": reason,
                "now": time.time(),
            },
        )
        return bool(rows)

    def refusals(self, repo: str, limit: int = 20) -> list[RefusalRecord]:
        rows = self.db.run_sql(
            "SELECT model, environment, version, kind, reason, created_at FROM {refusals}"
            " WHERE repo = %(repo)s ORDER BY created_at DESC LIMIT %(limit)s",
            {"repo": _key(repo), "limit": int(limit)},
        )
        return [
            RefusalRecord(
                repo,
                str(r["model"]),
                str(r["environment"]),
                str(r["version"]),
                str(r["kind"]),
                str(r["reason"]),
                float(r["created_at"]),
            )
            for r in rows
        ]

    # -- rendered heads --------------------------------------------------------------------

    def save_render(
        self,
        repo: str,
        number: int,
        *,
        head_sha: str,
        base_ref: str,
        merge_base: str,
        environments: Collection[str],
    ) -> RenderRecord:
        names = tuple(sorted(set(environments)))
        self.db.run_sql(
            "INSERT INTO {pr_renders} (repo, number, head_sha, base_ref, merge_base,"
            " environments, created_at) VALUES (%(repo)s, %(number)s, %(head)s, %(base_ref)s,"
            " %(merge_base)s, %(envs)s, %(now)s) ON CONFLICT (repo, number, head_sha, base_ref)"
            " DO UPDATE SET merge_base = excluded.merge_base,"
            " environments = excluded.environments, created_at = excluded.created_at",
            {
                "repo": _key(repo),
                "number": int(number),
                "head": head_sha,
                "base_ref": base_ref,
                "merge_base": merge_base,
                "envs": json.dumps(list(names)),
                "now": time.time(),
            },
        )
        return RenderRecord(head_sha, base_ref, merge_base, names)

    def render(self, repo: str, number: int, head_sha: str, base_ref: str) -> RenderRecord | None:
        rows = self.db.run_sql(
            "SELECT merge_base, environments FROM {pr_renders} WHERE repo = %(repo)s"
            " AND number = %(number)s AND head_sha = %(head)s AND base_ref = %(base_ref)s",
            {"repo": _key(repo), "number": int(number), "head": head_sha, "base_ref": base_ref},
        )
        if not rows:
            return None
        envs = tuple(str(e) for e in json.loads(rows[0]["environments"]))
        return RenderRecord(head_sha, base_ref, str(rows[0]["merge_base"]), envs)

    # -- deployments -----------------------------------------------------------------------

    def reserve_deployment(
        self,
        repo: str,
        environment: str,
        sha: str,
        *,
        number: int,
        meta: Mapping[str, object],
        approvers: Iterable[str] = (),
        now: float | None = None,
    ) -> tuple[DeploymentRecord, bool]:
        """The record of the deployment of `sha` to `environment`, and whether this call
        created it (True: no deployment exists yet; create one, then `set_deployment_id`)."""
        at = time.time() if now is None else now
        rows = self.db.run_sql(
            "INSERT INTO {deployments} (repo, environment, sha, deployment_id, number, meta,"
            " approvers, state, created_at, updated_at) VALUES (%(repo)s, %(env)s, %(sha)s, 0,"
            " %(number)s, %(meta)s, %(approvers)s, '', %(now)s, %(now)s)"
            " ON CONFLICT (repo, environment, sha) DO NOTHING RETURNING 1 AS inserted",
            {
                "repo": _key(repo),
                "env": environment,
                "sha": sha,
                "number": int(number),
                "meta": json.dumps(dict(meta), sort_keys=True, default=str),
                "approvers": json.dumps(list(approvers)),
                "now": at,
            },
        )
        found = self.deployment(repo, environment, sha)
        assert found is not None
        return found, bool(rows)

    def set_deployment_id(self, repo: str, environment: str, sha: str, deployment_id: int) -> None:
        self.db.run_sql(
            "UPDATE {deployments} SET deployment_id = %(id)s WHERE repo = %(repo)s"
            " AND environment = %(env)s AND sha = %(sha)s",
            {"repo": _key(repo), "env": environment, "sha": sha, "id": int(deployment_id)},
        )

    def set_deployment_state(
        self, repo: str, environment: str, sha: str, state: str, now: float | None = None
    ) -> None:
        self.db.run_sql(
            "UPDATE {deployments} SET state = %(state)s, updated_at = %(now)s"
            " WHERE repo = %(repo)s AND environment = %(env)s AND sha = %(sha)s",
            {
                "repo": _key(repo),
                "env": environment,
                "sha": sha,
                "state": state,
                "now": time.time() if now is None else now,
            },
        )

    def set_rollback(self, repo: str, environment: str, sha: str, number: int) -> None:
        self.db.run_sql(
            "UPDATE {deployments} SET rollback_number = %(number)s WHERE repo = %(repo)s"
            " AND environment = %(env)s AND sha = %(sha)s",
            {"repo": _key(repo), "env": environment, "sha": sha, "number": int(number)},
        )

    def deployment(self, repo: str, environment: str, sha: str) -> DeploymentRecord | None:
        rows = self.db.run_sql(
            "SELECT environment, sha, deployment_id, number, meta, approvers, state, created_at,"
            " rollback_number FROM {deployments} WHERE repo = %(repo)s"
            " AND environment = %(env)s AND sha = %(sha)s",
            {"repo": _key(repo), "env": environment, "sha": sha},
        )
        return _deployment(repo, rows[0]) if rows else None

    def deployments(self, repo: str, environment: str, limit: int = 20) -> list[DeploymentRecord]:
        """The environment's deployments, newest first."""
        rows = self.db.run_sql(
            "SELECT environment, sha, deployment_id, number, meta, approvers, state, created_at,"
            " rollback_number FROM {deployments} WHERE repo = %(repo)s"
            " AND environment = %(env)s ORDER BY created_at DESC, deployment_id DESC"
            " LIMIT %(limit)s",
            {"repo": _key(repo), "env": environment, "limit": int(limit)},
        )
        return [_deployment(repo, row) for row in rows]

    # -- what Argo CD says runs in each environment ----------------------------------------

    def health(self, repo: str, environment: str) -> EnvironmentHealth | None:
        rows = self.db.run_sql(
            "SELECT environment, application, revision, sync_status, health_status,"
            " operation_phase, message, finished_at, ours, healthy_since, observed_at, model,"
            " version FROM {environment_health} WHERE repo = %(repo)s AND environment = %(env)s",
            {"repo": _key(repo), "env": environment},
        )
        if not rows:
            return None
        row = rows[0]
        since = row["healthy_since"]
        return EnvironmentHealth(
            environment=str(row["environment"]),
            application=str(row["application"]),
            revision=str(row["revision"]),
            sync_status=str(row["sync_status"]),
            health_status=str(row["health_status"]),
            operation_phase=str(row["operation_phase"]),
            message=str(row["message"]),
            finished_at=str(row["finished_at"]),
            ours=bool(row["ours"]),
            healthy_since=None if since is None else float(since),
            observed_at=float(row["observed_at"]),
            model=str(row["model"]),
            version=str(row["version"]),
        )

    def save_health(self, repo: str, health: EnvironmentHealth) -> None:
        self.db.run_sql(
            "INSERT INTO {environment_health} (repo, environment, application, revision,"
            " sync_status, health_status, operation_phase, message, finished_at, ours,"
            " healthy_since, observed_at, model, version) VALUES (%(repo)s, %(env)s, %(app)s,"
            " %(rev)s, %(sync)s, %(health)s, %(phase)s, %(message)s, %(finished)s, %(ours)s,"
            " %(since)s, %(observed)s, %(model)s, %(version)s)"
            " ON CONFLICT (repo, environment) DO UPDATE SET"
            " application = excluded.application, revision = excluded.revision,"
            " sync_status = excluded.sync_status, health_status = excluded.health_status,"
            " operation_phase = excluded.operation_phase, message = excluded.message,"
            " finished_at = excluded.finished_at, ours = excluded.ours,"
            " healthy_since = excluded.healthy_since, observed_at = excluded.observed_at,"
            " model = excluded.model, version = excluded.version",
            {
                "repo": _key(repo),
                "env": health.environment,
                "app": health.application,
                "rev": health.revision,
                "sync": health.sync_status,
                "health": health.health_status,
                "phase": health.operation_phase,
                "message": health.message,
                "finished": health.finished_at,
                "ours": int(health.ours),
                "since": health.healthy_since,
                "observed": health.observed_at,
                "model": health.model,
                "version": health.version,
            },
        )

    # -- Flagger's canary phases -----------------------------------------------------------

    def add_canary_event(self, repo: str, environment: str, sha: str, event: CanaryEvent) -> bool:
        """Remember one event for the deployment of `sha`; False when it was known already."""
        rows = self.db.run_sql(
            "INSERT INTO {canary_events} (repo, environment, sha, at_ms, phase, name, namespace,"
            " checksum, message, event_type) VALUES (%(repo)s, %(env)s, %(sha)s, %(at)s,"
            " %(phase)s, %(name)s, %(namespace)s, %(checksum)s, %(message)s, %(type)s)"
            " ON CONFLICT (repo, environment, sha, at_ms, phase) DO NOTHING"
            " RETURNING 1 AS inserted",
            {
                "repo": _key(repo),
                "env": environment,
                "sha": sha,
                "at": int(event.timestamp_ms),
                "phase": event.phase,
                "name": event.name,
                "namespace": event.namespace,
                "checksum": event.checksum,
                "message": event.message,
                "type": event.event_type,
            },
        )
        return bool(rows)

    def canary_target(self, namespace: str, name: str) -> tuple[str, str, str] | None:
        """(repo, environment, sha) of the deployment whose canary `namespace/name` last
        reported (what the bot learned from Flagger's events; any repository)."""
        rows = self.db.run_sql(
            "SELECT repo, environment, sha FROM {canary_events} WHERE namespace = %(namespace)s"
            " AND name = %(name)s ORDER BY at_ms DESC LIMIT 1",
            {"namespace": namespace, "name": name},
        )
        if not rows:
            return None
        return str(rows[0]["repo"]), str(rows[0]["environment"]), str(rows[0]["sha"])

    def canary_sha(self, repo: str, environment: str, checksum: str) -> str | None:
        """The deployment whose canary events carried `checksum` (Flagger's hash of the
        canary's spec: one per rollout), None when no event did."""
        rows = self.db.run_sql(
            "SELECT sha FROM {canary_events} WHERE repo = %(repo)s AND environment = %(env)s"
            " AND checksum = %(checksum)s ORDER BY at_ms DESC LIMIT 1",
            {"repo": _key(repo), "env": environment, "checksum": checksum},
        )
        return str(rows[0]["sha"]) if rows else None

    def canary_events(
        self, repo: str, environment: str, sha: str, limit: int = 100
    ) -> list[CanaryEvent]:
        """The deployment's canary events, oldest first (the newest `limit`)."""
        rows = self.db.run_sql(
            "SELECT at_ms, phase, name, namespace, checksum, message, event_type"
            " FROM {canary_events} WHERE repo = %(repo)s AND environment = %(env)s"
            " AND sha = %(sha)s ORDER BY at_ms DESC LIMIT %(limit)s",
            {"repo": _key(repo), "env": environment, "sha": sha, "limit": int(limit)},
        )
        events = [
            CanaryEvent(
                name=str(r["name"]),
                namespace=str(r["namespace"]),
                phase=str(r["phase"]),
                checksum=str(r["checksum"]),
                message=str(r["message"]),
                event_type=str(r["event_type"]),
                timestamp_ms=int(r["at_ms"]),
            )
            for r in rows
        ]
        return sorted(events, key=lambda e: e.timestamp_ms)


def _deployment(repo: str, row: Mapping[str, Any]) -> DeploymentRecord:
    return DeploymentRecord(
        repo=repo,
        environment=str(row["environment"]),
        sha=str(row["sha"]),
        deployment_id=int(row["deployment_id"]),
        number=int(row["number"]),
        meta=json.loads(row["meta"]),
        approvers=tuple(str(a) for a in json.loads(row["approvers"])),
        state=str(row["state"]),
        created_at=float(row["created_at"]),
        rollback_number=int(row["rollback_number"]),
    )
