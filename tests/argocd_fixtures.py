"""Argo CD Notifications deliveries, rendered from the template the README tells users to
install, over Application objects shaped like Argo CD's.

Sources of the shapes:
- the body: README.md "After the merge" (`template.gitops-bot`), itself written against Argo
  CD's notification docs (operator-manual/notifications/services/webhook.md: a webhook
  service with `headers`, a template's `webhook.<service>.method/body`; templates.md: the
  template sees the Application as `.app`, with Sprig functions such as `toJson`);
- the Application: Argo CD's `Application` CRD status (`status.sync.status` Synced/OutOfSync/
  Unknown and `status.sync.revision`; `status.health.status` Healthy/Progressing/Degraded/
  Suspended/Missing/Unknown; `status.operationState.phase` Running/Failed/Error/Succeeded/
  Terminating with `message` and `finishedAt`), `spec.source.repoURL`.

The renderer covers exactly what the template uses: `{{.a.b}}`, `{{toJson .a.b}}`,
`{{if .a.b}}…{{else}}…{{end}}` (a missing key prints `<no value>`, like Go's text/template).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
SECRET = "argocd-webhook-secret-for-tests"
NO_VALUE = "<no value>"


def readme_template() -> str:
    """The webhook body of `template.gitops-bot` in the README, as Argo CD would read it."""
    text = README.read_text(encoding="utf-8")
    start = text.index("  template.gitops-bot: |")
    body = text.index("        body: |\n", start) + len("        body: |\n")
    lines = []
    for line in text[body:].splitlines():
        if not line.startswith("          "):
            break
        lines.append(line[10:])
    return "\n".join(lines)


def _lookup(scope: dict[str, Any], path: str) -> Any:
    node: Any = scope
    for part in path.strip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


_ACTION = re.compile(r"\{\{(.*?)\}\}")


def render(template: str, scope: dict[str, Any]) -> str:
    out: list[str] = []
    stack: list[bool] = []  # per open `if`: is its branch being emitted?
    pos = 0
    for match in _ACTION.finditer(template):
        if all(stack):
            out.append(template[pos : match.start()])
        pos = match.end()
        action = match.group(1).strip()
        if action.startswith("if "):
            stack.append(all(stack) and bool(_lookup(scope, action[3:])))
        elif action == "else":
            outer = all(stack[:-1])
            stack[-1] = outer and not stack[-1]
        elif action == "end":
            stack.pop()
        elif not all(stack):
            continue
        elif action.startswith("toJson "):
            out.append(json.dumps(_lookup(scope, action[7:])))
        else:
            value = _lookup(scope, action)
            out.append(NO_VALUE if value is None else str(value))
    out.append(template[pos:])
    return "".join(out)


def application(
    name: str,
    revision: str,
    *,
    sync: str = "Synced",
    health: str = "Healthy",
    phase: str | None = "Succeeded",
    message: str = "successfully synced (all tasks run)",
    finished_at: str = "2026-12-02T09:30:00Z",
    repo_url: str = "https://github.com/acme/gitops.git",
) -> dict[str, Any]:
    """An Argo CD Application as the notification template sees it (`.app`)."""
    status: dict[str, Any] = {
        "sync": {"status": sync, "revision": revision},
        "health": {"status": health},
    }
    if phase is not None:
        status["operationState"] = {
            "phase": phase,
            "message": message,
            "finishedAt": finished_at,
            "syncResult": {"revision": revision},
        }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"source": {"repoURL": repo_url, "path": "k8s/overlays/staging"}},
        "status": status,
    }


def notification_body(app: dict[str, Any]) -> bytes:
    """The bytes Argo CD posts for `app` with the README's template."""
    return render(readme_template(), {"app": app}).encode()


def headers(secret: str = SECRET) -> dict[str, str]:
    """What the README's `service.webhook.gitops-bot` sends."""
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
