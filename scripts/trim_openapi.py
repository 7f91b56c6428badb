"""Trim GitHub's OpenAPI description to the operations in the gitops-bot GitHub contract."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# (method, path) pairs exactly as in notes/GITHUB_CONTRACT.md.
OPERATIONS: list[tuple[str, str]] = [
    ("get", "/repos/{owner}/{repo}/installation"),
    ("post", "/app/installations/{installation_id}/access_tokens"),
    ("get", "/repos/{owner}/{repo}"),
    ("get", "/repos/{owner}/{repo}/git/ref/{ref}"),
    ("get", "/repos/{owner}/{repo}/tarball/{ref}"),
    ("get", "/repos/{owner}/{repo}/contents/{path}"),
    ("post", "/repos/{owner}/{repo}/git/trees"),
    ("post", "/repos/{owner}/{repo}/git/commits"),
    ("get", "/repos/{owner}/{repo}/git/commits/{commit_sha}"),
    ("post", "/repos/{owner}/{repo}/git/refs"),
    ("patch", "/repos/{owner}/{repo}/git/refs/{ref}"),
    ("get", "/repos/{owner}/{repo}/commits"),
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("patch", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/files"),
    ("get", "/repos/{owner}/{repo}/compare/{basehead}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("put", "/repos/{owner}/{repo}/pulls/{pull_number}/merge"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("delete", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("post", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("post", "/repos/{owner}/{repo}/check-runs"),
    ("patch", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/status"),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    ("get", "/orgs/{org}/teams/{team_slug}/memberships/{username}"),
    # after the merge: a deployment per merged promotion, its statuses following Argo CD/Flagger
    ("get", "/repos/{owner}/{repo}/deployments"),
    ("post", "/repos/{owner}/{repo}/deployments"),
    ("get", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"),
    ("post", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"),
    # user-to-server (the operator page's "Sign in with GitHub"): who signed in, what they read
    ("get", "/user"),
    ("get", "/user/installations"),
    ("get", "/user/installations/{installation_id}/repositories"),
]


def _refs(node: Any) -> set[str]:
    """All `$ref` strings in a JSON node."""
    found: set[str] = set()
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            ref = cur.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return found


def _strip_examples(node: Any, in_properties: bool = False) -> Any:
    """Drop `examples`/`example` keywords (documentation only) to keep the file small."""
    if isinstance(node, dict):
        return {
            k: _strip_examples(v, k == "properties" and not in_properties)
            for k, v in node.items()
            if in_properties or k not in ("examples", "example")
        }
    if isinstance(node, list):
        return [_strip_examples(v) for v in node]
    return node


def _null_in_nullable_enums(node: Any) -> None:
    """Add null to `enum` where `nullable: true`: GitHub returns null there (e.g. a check run's
    `conclusion`), but OpenAPI 3.0.3 validators reject null unless the enum lists it."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if node.get("nullable") is True and isinstance(enum, list) and None not in enum:
            enum.append(None)
        for value in node.values():
            _null_in_nullable_enums(value)
    elif isinstance(node, list):
        for value in node:
            _null_in_nullable_enums(value)


def trim(spec: dict[str, Any], package: str, version: str) -> dict[str, Any]:
    """Keep the contract's operations and the components they reference, transitively."""
    paths: dict[str, Any] = {}
    for method, path in OPERATIONS:
        item = spec["paths"].get(path)
        if item is None or method not in item:
            raise KeyError(f"{method.upper()} {path} is not in the OpenAPI description")
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k == "parameters"})
        kept[method] = _strip_examples(item[method])

    components: dict[str, dict[str, Any]] = {}
    pending = _refs(paths)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)  # "#/components/<kind>/<name>"
        value = _strip_examples(spec["components"][kind][name])
        components.setdefault(kind, {})[name] = value
        pending |= _refs(value) - seen

    _null_in_nullable_enums(paths)
    _null_in_nullable_enums(components)
    info = dict(spec["info"])
    info["x-trimmed-from"] = {
        "package": package,
        "version": version,
        "file": "generated/api.github.com.json",
        "script": "scripts/trim_openapi.py",
        "note": "only the operations gitops-bot uses; examples removed; "
        "null added to enums of nullable schemas",
    }
    return {
        "openapi": spec["openapi"],
        "info": info,
        "servers": spec.get("servers", []),
        "paths": paths,
        "components": {k: dict(sorted(v.items())) for k, v in sorted(components.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("package_dir", type=Path, help="path to node_modules/@octokit/openapi")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent
        / "tests/openapi/api.github.com.trimmed.json",
    )
    args = parser.parse_args(argv)
    meta = json.loads((args.package_dir / "package.json").read_text())
    spec = json.loads((args.package_dir / "generated/api.github.com.json").read_text())
    trimmed = trim(spec, meta["name"], meta["version"])
    args.out.write_text(json.dumps(trimmed, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.out} ({len(trimmed['paths'])} paths)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
