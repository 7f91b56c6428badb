"""The `gitops-bot` command line: plan, check-config, serve, worker, replay, mlflow check."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.core.errors import BotError, ConfigError
from bot.settings import SettingsError

CONFIG_FILE = ".gitops-bot.yaml"


def _traffic(value: str) -> tuple[int, int]:
    parts = value.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected BASELINE/CANDIDATE integer weights such as 90/10, got '{value}'"
        )
    baseline, candidate = (int(p) for p in parts)
    if baseline + candidate != 100:
        raise argparse.ArgumentTypeError(f"weights must sum to 100, got {baseline}+{candidate}")
    return baseline, candidate


def _load_local_config(repo: Path):  # type: ignore[no-untyped-def]
    from bot.core.config import load_config_bytes

    path = repo / CONFIG_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BotError(f"{path}: not found (the bot reads its config from {CONFIG_FILE})") from None
    return load_config_bytes(raw, CONFIG_FILE)


def cmd_plan(args: argparse.Namespace) -> int:
    from bot.core.planner import source_diff
    from bot.core.promotion import build_plan
    from bot.core.report import render_pull_request
    from bot.core.types import PromotionRequest
    from bot.gateways.kustomize import Renderer
    from bot.gateways.localrepo import DirectorySnapshot

    repo = Path(args.repo)
    config = _load_local_config(repo)
    snapshot = DirectorySnapshot(repo)
    request = PromotionRequest(
        model=args.model,
        version=str(args.version),
        environment=args.to,
        source_uri=args.source or "",
        traffic=args.traffic,
        run_id=args.run_id or "",
        requester=args.requester,
        trigger="gitops-bot plan (local checkout)",
        source_note="" if args.source else "no --source given",
    )
    # a local checkout is the user's own content, built on their machine as they would:
    # no network namespace needed (and none exists on macOS)
    renderer = Renderer(binary=args.kustomize, isolation="off")
    plan = build_plan(config, snapshot, request, renderer.render_pair)
    text = render_pull_request(plan)
    out = sys.stdout
    out.write(f"Branch: {plan.branch}\nTitle:  {text.title}\n\n")
    if plan.changes:
        out.write(f"Files changed ({len(plan.changes)}):\n\n{source_diff(plan.changes)}\n")
    else:
        out.write("No files change: the overlay already deploys this version.\n\n")
    out.write("PR body:\n\n" + text.body + "\n")
    for part in text.parts:
        out.write("\nFollow-up comment:\n\n" + part + "\n")
    if args.write:
        for change in plan.changes:
            snapshot.write(change.path, change.after)
        out.write(f"\nWrote {len(plan.changes)} file(s) in {repo}.\n")
    code = plan_exit_code(plan)
    if code:
        from bot.core.report import render_status
        from bot.core.templating import render_template

        broken = [(d, render_status(d).label) for d in plan.diffs if not d.head.ok]
        broken.sort(key=lambda item: item[0].base.ok, reverse=True)  # broken by this change first
        reason = plan.unchanged[0] if plan.unchanged and code == EXIT_UNCHANGED else None
        more = len(plan.unchanged) - 1 if reason is not None else 0
        summary = render_template(
            "plan_summary.txt.j2", plan=plan, code=code, broken=broken, reason=reason, more=more
        )
        if summary.strip():
            print(summary.strip(), file=sys.stderr)
    return code


EXIT_BROKEN = 3  # this change breaks the build of an overlay it affects
EXIT_UNCHANGED = 4  # the target environment's rendered manifests do not change
EXIT_ALREADY_BROKEN = 5  # an affected overlay fails to build, as it did on the base already


def plan_exit_code(plan) -> int:  # type: ignore[no-untyped-def]
    """0: the target's render changes and every affected overlay builds; see README."""
    failing = [d for d in plan.diffs if not d.head.ok]
    if any(d.base.ok for d in failing):
        return EXIT_BROKEN
    if failing:
        return EXIT_ALREADY_BROKEN
    if plan.unchanged:
        return EXIT_UNCHANGED
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from bot.core.config_check import check_repository
    from bot.gateways.localrepo import DirectorySnapshot

    repo = Path(args.repo)
    config = _load_local_config(repo)
    problems = check_repository(config, DirectorySnapshot(repo))
    if problems:
        for problem in problems:
            print(f"{repo / CONFIG_FILE}: {problem}", file=sys.stderr)
        return 1
    print(
        f"{repo / CONFIG_FILE}: OK — {len(config.environments)} environment(s), "
        f"{len(config.models)} model(s), {len(config.triggers)} trigger(s)"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.runtime import serve

    return serve(host=args.host, port=args.port, workers=not args.no_workers)


def cmd_worker(args: argparse.Namespace) -> int:
    from bot.runtime import run_worker

    return run_worker()


def cmd_replay(args: argparse.Namespace) -> int:
    from bot.runtime import replay

    return replay(Path(args.payload), event=args.event, source=args.source)


def cmd_mlflow_check(args: argparse.Namespace) -> int:
    from bot.gateways.mlflow import MlflowClient
    from bot.mlflow_check import EVENTS, check_mlflow
    from bot.settings import load_settings

    settings = load_settings()
    if not settings.mlflow_tracking_uri:
        raise BotError("MLFLOW_TRACKING_URI is not set")
    needed = list(EVENTS)
    if args.repo:
        needed = sorted({t.on for t in _load_local_config(Path(args.repo)).triggers})
    findings = check_mlflow(MlflowClient(settings.mlflow_tracking_uri), args.url, needed)
    for finding in findings:
        print(f"{'ok ' if finding.ok else 'FAIL'} {finding.text}")
    return 0 if all(f.ok for f in findings) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gitops-bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="show the PR the bot would open, from a local checkout")
    plan.add_argument("repo", help="path to the GitOps repository checkout")
    plan.add_argument("--model", required=True, help="model name from .gitops-bot.yaml")
    plan.add_argument("--version", required=True, help="model version to promote")
    plan.add_argument("--to", required=True, help="target environment")
    plan.add_argument("--source", help="model storage URI (e.g. s3://bucket/path)")
    plan.add_argument("--traffic", type=_traffic, help="A/B weights BASELINE/CANDIDATE")
    plan.add_argument("--run-id", help="MLflow run id, shown in the PR")
    plan.add_argument("--requester", default="", help="who asks (shown in the PR)")
    plan.add_argument("--kustomize", help="kustomize or kubectl binary (default: pinned kubectl)")
    plan.add_argument("--write", action="store_true", help="apply the edits to the checkout")
    plan.set_defaults(func=cmd_plan)

    check = sub.add_parser("check-config", help="validate .gitops-bot.yaml against the repo")
    check.add_argument("repo", nargs="?", default=".", help="repository checkout (default .)")
    check.set_defaults(func=cmd_check_config)

    serve = sub.add_parser("serve", help="run the webhook server with in-process workers")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--no-workers", action="store_true", help="web only (use `worker`)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run job workers only")
    worker.set_defaults(func=cmd_worker)

    mlflow = sub.add_parser("mlflow", help="MLflow integration")
    mlflow_sub = mlflow.add_subparsers(dest="mlflow_command", required=True)
    mcheck = mlflow_sub.add_parser(
        "check", help="verify MLflow reaches this bot: server, webhook, events, signed test"
    )
    mcheck.add_argument("--url", required=True, help="the bot's /webhooks/mlflow URL")
    mcheck.add_argument("--repo", help="GitOps checkout whose triggers say which events matter")
    mcheck.set_defaults(func=cmd_mlflow_check)

    replay = sub.add_parser("replay", help="run one webhook payload through the worker")
    replay.add_argument("payload", help="JSON file with the webhook body")
    replay.add_argument("--source", choices=["github", "mlflow"], default="github")
    replay.add_argument("--event", help="GitHub event name (X-GitHub-Event)")
    replay.set_defaults(func=cmd_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print("Invalid configuration:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    except (BotError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
