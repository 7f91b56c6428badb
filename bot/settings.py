"""The one place that reads environment variables: typed settings with secrets kept hidden."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable, never its value."""


class Secret:
    """A secret value that never shows in repr, str, logs or tracebacks."""

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def encode(self) -> bytes:
        return self._value.encode()

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    github_app_id: str = ""
    github_private_key: Secret = field(default_factory=lambda: Secret(""))
    github_webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    github_api_url: str = "https://api.github.com"
    bot_login: str | None = None  # "<app-slug>[bot]"
    mlflow_webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    databricks_webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    mlflow_tracking_uri: str = ""
    mlflow_artifacts_destination: str = ""  # the server's --artifacts-destination
    mlflow_target_repos: tuple[str, ...] = ()
    database_url: str = "sqlite:///gitops-bot.db"
    kustomize_bin: str | None = None
    render_network_isolation: str = "required"  # or "off": see bot.gateways.kustomize
    render_cache_mib: int = 256  # renders kept by the content of their inputs; 0 = off
    worker_concurrency: int = 2
    worker_lease_s: float = 60.0  # a dead worker's job runs again after this long
    reconcile_interval_s: float = 300.0  # 0 = off
    max_body_bytes: int = 1024 * 1024
    timestamp_tolerance_s: float = 300.0
    log_level: str = "INFO"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number") from None


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value


def _private_key(env: Mapping[str, str]) -> str:
    if env.get("GITHUB_PRIVATE_KEY"):
        return env["GITHUB_PRIVATE_KEY"].replace("\\n", "\n")
    path = env.get("GITHUB_PRIVATE_KEY_PATH", "")
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise SettingsError(f"GITHUB_PRIVATE_KEY_PATH cannot be read: {exc.strerror}") from None


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment (or the given mapping, for tests)."""
    env = os.environ if env is None else env
    slug = env.get("GITHUB_APP_SLUG", "").strip()
    repos = tuple(r.strip() for r in env.get("MLFLOW_TARGET_REPOS", "").split(",") if r.strip())
    for repo in repos:
        if repo.count("/") != 1:
            raise SettingsError(f"MLFLOW_TARGET_REPOS: '{repo}' is not owner/name")
    return Settings(
        github_app_id=env.get("GITHUB_APP_ID", "").strip(),
        github_private_key=Secret(_private_key(env)),
        github_webhook_secret=Secret(env.get("GITHUB_WEBHOOK_SECRET", "")),
        github_api_url=env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
        bot_login=f"{slug}[bot]" if slug else None,
        mlflow_webhook_secret=Secret(env.get("MLFLOW_WEBHOOK_SECRET", "")),
        databricks_webhook_secret=Secret(env.get("DATABRICKS_WEBHOOK_SECRET", "")),
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI", "").rstrip("/"),
        mlflow_artifacts_destination=env.get("MLFLOW_ARTIFACTS_DESTINATION", "").strip(),
        mlflow_target_repos=repos,
        database_url=env.get("DATABASE_URL", "sqlite:///gitops-bot.db"),
        kustomize_bin=env.get("KUSTOMIZE_BIN") or None,
        render_network_isolation=_choice(
            env, "RENDER_NETWORK_ISOLATION", ("required", "off"), "required"
        ),
        render_cache_mib=_int(env, "RENDER_CACHE_MIB", 256),
        worker_concurrency=_int(env, "WORKER_CONCURRENCY", 2),
        worker_lease_s=_positive(env, "WORKER_LEASE_SECONDS", 60.0),
        reconcile_interval_s=_float(env, "RECONCILE_INTERVAL_SECONDS", 300.0),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 1024 * 1024),
        timestamp_tolerance_s=_float(env, "WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS", 300.0),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
    )
