"""MLflow tracking server REST client: resolve storage locations and aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from bot.core.errors import BotError, TransientError


@dataclass(frozen=True)
class ModelVersionInfo:
    name: str
    version: str
    source: str
    run_id: str
    storage_location: str = ""


class MlflowError(BotError):
    """MLflow answered, but not with what we asked for (unknown model, version, alias)."""


class MlflowClient:
    """The handful of registry calls the bot needs, over MLflow's REST API 2.0."""

    def __init__(
        self,
        tracking_uri: str,
        *,
        timeout: float = 10.0,
        token: str = "",
        artifacts_destination: str = "",
    ) -> None:
        self.base = tracking_uri.rstrip("/")
        # the tracking server's `--artifacts-destination`: where `mlflow-artifacts:` points
        self.artifacts_destination = artifacts_destination
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _get(self, path: str, **params: str | list[str]) -> dict[str, Any]:
        return self._call("GET", path, params=params)

    def _call(
        self, method: str, path: str, *, params: Any = None, body: Any = None
    ) -> dict[str, Any]:
        url = f"{self.base}/api/2.0/mlflow/{path}"
        try:
            response = self.session.request(
                method, url, params=params, json=body, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise TransientError(f"MLflow unreachable ({type(exc).__name__})") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"MLflow answered {response.status_code} for {path}")
        try:
            data: dict[str, Any] = response.json()
        except ValueError:
            if response.status_code == 403 and "host" in response.text.lower():
                raise MlflowError(
                    f"MLflow answered 403 ({response.text.strip()[:100]}): start the server "
                    "with --allowed-hosts naming the host in MLFLOW_TRACKING_URI"
                ) from None
            raise MlflowError(
                f"MLflow returned non-JSON for {path} (HTTP {response.status_code})"
            ) from None
        if response.status_code >= 400:
            message = str(data.get("message") or data.get("error_code") or response.status_code)
            raise MlflowError(f"MLflow {path}: {message}")
        return data

    def download_uri(self, name: str, version: str) -> str:
        """Where the version's artifacts really live (resolves `models:/m-<id>` sources)."""
        data = self._get("model-versions/get-download-uri", name=name, version=str(version))
        return str(data.get("artifact_uri", ""))

    def model_version(self, name: str, version: str) -> ModelVersionInfo:
        data = self._get("model-versions/get", name=name, version=str(version))
        mv = data.get("model_version") or {}
        return ModelVersionInfo(
            name=str(mv.get("name", name)),
            version=str(mv.get("version", version)),
            source=str(mv.get("source", "")),
            run_id=str(mv.get("run_id", "")),
            storage_location=str(mv.get("storage_location", "")),
        )

    def alias_version(self, name: str, alias: str) -> str:
        data = self._get("registered-models/alias", name=name, alias=alias)
        return str((data.get("model_version") or {}).get("version", ""))

    def webhooks(self) -> list[dict[str, Any]]:
        """Every registry webhook of the server (MLflow 3.3+), all pages."""
        found: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"max_results": "100", **({"page_token": token} if token else {})}
            data = self._get("webhooks", **params)
            found += list(data.get("webhooks") or [])
            token = str(data.get("next_page_token") or "")
            if not token:
                return found

    def test_webhook(self, webhook_id: str, event: tuple[str, str]) -> dict[str, Any]:
        """Ask MLflow to send its example payload of `event` (entity, action) now."""
        # protobuf JSON: enum values by their upper-case names
        body = {"event": {"entity": event[0].upper(), "action": event[1].upper()}}
        data = self._call("POST", f"webhooks/{webhook_id}/test", body=body)
        return dict(data.get("result") or {})

    def latest_version(self, name: str, tag: str = "") -> str | None:
        """The highest version number of `name` (carrying `tag`, "key" or "key=value", when
        given), or None: one page of `model-versions/search`, newest first."""
        clauses = [f"name = {_quote(name)}"]
        if tag:
            key, sep, value = tag.partition("=")
            clauses.append(f"tag.`{key}` = {_quote(value)}" if sep else f"tag.`{key}` LIKE '%'")
        data = self._get(
            "model-versions/search",
            filter=" AND ".join(clauses),
            max_results="1",
            order_by=["version_number DESC"],
        )
        versions = data.get("model_versions") or []
        return str(versions[0].get("version")) if versions else None


def _quote(value: str) -> str:
    """A string literal of MLflow's search filter grammar."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
