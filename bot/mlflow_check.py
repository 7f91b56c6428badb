"""`gitops-bot mlflow check`: is MLflow set up so its registry events reach this bot?"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.errors import BotError
from bot.gateways.mlflow import MlflowClient

# trigger kinds of .gitops-bot.yaml -> the (entity, action) MLflow's webhooks subscribe to
EVENTS = {
    "model_version.created": ("model_version", "created"),
    "model_version_alias.created": ("model_version_alias", "created"),
    "model_version_tag.set": ("model_version_tag", "set"),
}


@dataclass(frozen=True)
class Finding:
    ok: bool
    text: str


def check_mlflow(client: MlflowClient, url: str, needed: Iterable[str]) -> list[Finding]:
    """Reachability, a webhook at `url` with the `needed` trigger kinds, a signed test."""
    findings: list[Finding] = []
    try:
        hooks = client.webhooks()
    except BotError as exc:
        return [Finding(False, f"MLflow at {client.base}: {exc}")]
    findings.append(Finding(True, f"MLflow answers at {client.base} ({len(hooks)} webhook(s))"))
    matching = [h for h in hooks if str(h.get("url", "")).rstrip("/") == url.rstrip("/")]
    if not matching:
        urls = ", ".join(sorted({str(h.get("url")) for h in hooks})) or "none"
        findings.append(Finding(False, f"no webhook points at {url} (webhook URLs: {urls})"))
        return findings
    hook = matching[0]
    name = f"webhook {hook.get('name') or hook.get('webhook_id')}"
    if str(hook.get("status", "ACTIVE")).upper() != "ACTIVE":
        findings.append(Finding(False, f"{name} is {hook.get('status')}: activate it"))
    subscribed = {
        (str(e.get("entity", "")).lower(), str(e.get("action", "")).lower())
        for e in hook.get("events") or []
    }
    missing = sorted(kind for kind in set(needed) if EVENTS[kind] not in subscribed)
    if missing:
        findings.append(Finding(False, f"{name} does not send {', '.join(missing)}"))
    else:
        findings.append(Finding(True, f"{name} sends every event the triggers need"))
    event = EVENTS[sorted(set(needed))[0]] if needed else EVENTS["model_version.created"]
    try:
        result = client.test_webhook(str(hook.get("webhook_id")), event)
    except BotError as exc:
        findings.append(Finding(False, f"MLflow could not test {name}: {exc}"))
        return findings
    status = result.get("response_status")
    if result.get("success"):
        findings.append(Finding(True, f"test delivery accepted by the bot (HTTP {status})"))
    elif status == 401:
        findings.append(
            Finding(
                False,
                "test delivery refused (401): the webhook's secret is not MLFLOW_WEBHOOK_SECRET",
            )
        )
    else:
        error = result.get("error_message") or result.get("response_body") or ""
        findings.append(Finding(False, f"test delivery failed (HTTP {status}): {error}"[:300]))
    return findings
