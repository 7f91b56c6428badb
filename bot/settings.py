"""The one place that reads environment variables: typed settings with secrets kept hidden."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit


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
    argocd_webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    argocd_target_repos: tuple[str, ...] = ()  # default: mlflow_target_repos
    argocd_url: str = ""  # Argo CD's web UI, for deployment status links
    flagger_webhook_token: Secret = field(default_factory=lambda: Secret(""))
    argocd_server: str = ""  # Argo CD's API, read by the reconcile loop (with argocd_token)
    argocd_token: Secret = field(default_factory=lambda: Secret(""))
    database_url: str = "sqlite:///gitops-bot.db"
    kustomize_bin: str | None = None
    render_network_isolation: str = "required"  # or "off": see bot.gateways.kustomize
    render_cache_mib: int = 256  # renders kept by the content of their inputs; 0 = off
    github_etag_cache_mib: int = 32  # GET answers revalidated with their ETags; 0 = off
    worker_concurrency: int = 2
    worker_lease_s: float = 60.0  # a dead worker's job runs again after this long
    reconcile_interval_s: float = 300.0  # 0 = off
    # GitHub REST budget per installation (bot.gateways.rate_budget)
    reconcile_rate_share: float = 0.2  # reconcile spends at most this share of each window
    github_rate_reserve: float = 0.1  # below this share left, non-urgent work waits
    github_rate_floor: int = 20  # jobs never spend the last calls: they wait for the reset
    max_body_bytes: int = 1024 * 1024
    timestamp_tolerance_s: float = 300.0
    log_level: str = "INFO"
    # sign-in to the operator page through the App's own OAuth client (off without a client id)
    github_client_id: str = ""
    github_client_secret: Secret = field(default_factory=lambda: Secret(""))
    session_secret: Secret = field(default_factory=lambda: Secret(""))
    public_url: str = ""  # where browsers reach the bot, e.g. https://gitops-bot.example.com
    github_web_url: str = "https://github.com"
    session_lifetime_s: float = 3600.0
    # /metrics: on the main app only with this bearer token; unauthenticated on metrics_listen
    metrics_token: Secret = field(default_factory=lambda: Secret(""))
    metrics_listen: tuple[str, int] | None = ("127.0.0.1", 9102)

    @property
    def signin_enabled(self) -> bool:
        return bool(self.github_client_id)


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


def _share(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name} must be a share between 0 and 1 (e.g. 0.2)")
    return value


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise SettingsError(f"{name} must not be negative")
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


MIN_SESSION_SECRET = 32


def web_url_for(api_url: str) -> str:
    """GitHub's web root for an API root: github.com, a GHES host, or the same URL (a fake)."""
    if api_url == "https://api.github.com":
        return "https://github.com"
    if api_url.endswith("/api/v3"):
        return api_url[: -len("/api/v3")]
    return api_url


def _public_url(env: Mapping[str, str]) -> str:
    raw = env.get("PUBLIC_URL", "").strip().rstrip("/")
    if not raw:
        raise SettingsError(
            "PUBLIC_URL is required with GITHUB_CLIENT_ID (the bot's URL as browsers reach it, "
            "e.g. https://gitops-bot.example.com; the OAuth callback is PUBLIC_URL/oauth/callback)"
        )
    split = urlsplit(raw)
    if split.scheme not in ("http", "https") or not split.hostname:
        raise SettingsError(
            "PUBLIC_URL must be an http(s) URL such as https://gitops-bot.example.com"
        )
    if split.path or split.query or split.fragment or split.username or split.password:
        raise SettingsError("PUBLIC_URL must be scheme://host[:port] only (no path, query or user)")
    return raw


def _signin(env: Mapping[str, str]) -> dict[str, object]:
    """The OAuth sign-in settings, all or nothing: a half-configured sign-in is an error."""
    client_id = env.get("GITHUB_CLIENT_ID", "").strip()
    client_secret = env.get("GITHUB_CLIENT_SECRET", "")
    session_secret = env.get("SESSION_SECRET", "")
    if not client_id:
        for name, value in (
            ("GITHUB_CLIENT_SECRET", client_secret),
            ("SESSION_SECRET", session_secret),
        ):
            if value:
                raise SettingsError(f"{name} is set but GITHUB_CLIENT_ID is not")
        return {}
    if not client_secret:
        raise SettingsError("GITHUB_CLIENT_SECRET is required with GITHUB_CLIENT_ID")
    if len(session_secret) < MIN_SESSION_SECRET:
        raise SettingsError(
            f"SESSION_SECRET must be at least {MIN_SESSION_SECRET} characters with "
            "GITHUB_CLIENT_ID (it signs the session cookies; e.g. `openssl rand -hex 32`)"
        )
    return {
        "github_client_id": client_id,
        "github_client_secret": Secret(client_secret),
        "session_secret": Secret(session_secret),
        "public_url": _public_url(env),
        "session_lifetime_s": _positive(env, "SESSION_LIFETIME_SECONDS", 3600.0),
    }


def _listen(env: Mapping[str, str], name: str, default: str) -> tuple[str, int] | None:
    raw = env.get(name, default).strip()
    if raw.lower() in ("", "off"):
        return None
    host, sep, port = raw.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SettingsError(f"{name} must be host:port (e.g. 127.0.0.1:9102) or off")
    return host, int(port)


def _repos(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    repos = tuple(r.strip() for r in env.get(name, "").split(",") if r.strip())
    for repo in repos:
        if repo.count("/") != 1:
            raise SettingsError(f"{name}: '{repo}' is not owner/name")
    return repos


def _web_url(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip().rstrip("/")
    if raw:
        split = urlsplit(raw)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise SettingsError(f"{name} must be an http(s) URL such as https://argocd.example.com")
    return raw


def _argocd_api(env: Mapping[str, str]) -> dict[str, object]:
    """ARGOCD_SERVER and ARGOCD_TOKEN: both or neither."""
    server = _web_url(env, "ARGOCD_SERVER")
    token = env.get("ARGOCD_TOKEN", "").strip()
    if bool(server) != bool(token):
        missing = "ARGOCD_TOKEN" if server else "ARGOCD_SERVER"
        raise SettingsError(
            f"{missing} is required with {'ARGOCD_SERVER' if server else 'ARGOCD_TOKEN'}"
        )
    return {"argocd_server": server, "argocd_token": Secret(token)} if server else {}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment (or the given mapping, for tests)."""
    env = os.environ if env is None else env
    slug = env.get("GITHUB_APP_SLUG", "").strip()
    repos = _repos(env, "MLFLOW_TARGET_REPOS")
    api_url = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    return Settings(
        github_app_id=env.get("GITHUB_APP_ID", "").strip(),
        github_private_key=Secret(_private_key(env)),
        github_webhook_secret=Secret(env.get("GITHUB_WEBHOOK_SECRET", "")),
        github_api_url=api_url,
        github_web_url=env.get("GITHUB_WEB_URL", "").strip().rstrip("/") or web_url_for(api_url),
        bot_login=f"{slug}[bot]" if slug else None,
        mlflow_webhook_secret=Secret(env.get("MLFLOW_WEBHOOK_SECRET", "")),
        databricks_webhook_secret=Secret(env.get("DATABRICKS_WEBHOOK_SECRET", "")),
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI", "").rstrip("/"),
        mlflow_artifacts_destination=env.get("MLFLOW_ARTIFACTS_DESTINATION", "").strip(),
        mlflow_target_repos=repos,
        argocd_webhook_secret=Secret(env.get("ARGOCD_WEBHOOK_SECRET", "").strip()),
        argocd_target_repos=_repos(env, "ARGOCD_TARGET_REPOS") or repos,
        argocd_url=_web_url(env, "ARGOCD_URL"),
        flagger_webhook_token=Secret(env.get("FLAGGER_WEBHOOK_TOKEN", "").strip()),
        **_argocd_api(env),  # type: ignore[arg-type]
        database_url=env.get("DATABASE_URL", "sqlite:///gitops-bot.db"),
        kustomize_bin=env.get("KUSTOMIZE_BIN") or None,
        render_network_isolation=_choice(
            env, "RENDER_NETWORK_ISOLATION", ("required", "off"), "required"
        ),
        render_cache_mib=_int(env, "RENDER_CACHE_MIB", 256),
        github_etag_cache_mib=_non_negative_int(env, "GITHUB_ETAG_CACHE_MIB", 32),
        worker_concurrency=_int(env, "WORKER_CONCURRENCY", 2),
        worker_lease_s=_positive(env, "WORKER_LEASE_SECONDS", 60.0),
        reconcile_interval_s=_float(env, "RECONCILE_INTERVAL_SECONDS", 300.0),
        reconcile_rate_share=_share(env, "RECONCILE_RATE_SHARE", 0.2),
        github_rate_reserve=_share(env, "GITHUB_RATE_RESERVE", 0.1),
        github_rate_floor=_non_negative_int(env, "GITHUB_RATE_FLOOR", 20),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 1024 * 1024),
        timestamp_tolerance_s=_float(env, "WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS", 300.0),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        metrics_token=Secret(env.get("METRICS_TOKEN", "").strip()),
        metrics_listen=_listen(env, "METRICS_LISTEN", "127.0.0.1:9102"),
        **_signin(env),  # type: ignore[arg-type]
    )
