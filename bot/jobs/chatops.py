"""Run ChatOps comment commands: authorise, acknowledge, act, and reply in place."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from bot.core.commands import USAGE as COMMAND_USAGE
from bot.core.commands import Diff, Help, Merge, Outcome, Promote, Reply, Rollback, parse_comment
from bot.core.deployed import read_deployed
from bot.core.errors import BotError, PlanError, TransientError
from bot.core.github_port import PullRequestInfo
from bot.core.grammar import version_problem
from bot.core.locations import unservable
from bot.core.planner import did_you_mean, request_from_meta, resolve_target
from bot.core.promotion import build_plan
from bot.core.report import render_pull_request
from bot.core.triggers import RegistryEvent
from bot.core.types import Environment, Model, PromotionRequest
from bot.gateways.records import PromotionRecord
from bot.jobs.deps import Deps, FreshPr, promotion_of
from bot.jobs.merge_gate import GateResult, can_act_for, evaluate_pr
from bot.jobs.pr_diff import handle_pr_diff
from bot.jobs.publish import list_env_prs, publish_on_default_branch
from bot.jobs.registry import (
    RegistryFacts,
    check_promote_from,
    check_soak,
    refuse_backwards,
    resolve_source,
)
from bot.jobs.replies import upsert_reply
from bot.jobs.repo_state import RepoState, load_repo_state

log = logging.getLogger(__name__)

DRY_RUN_LIMIT = 60_000  # leave room for the reply around the plan text
HISTORY_LIMIT = 30


@dataclass(frozen=True)
class CommentContext:
    repo: str
    issue_number: int
    is_pull_request: bool
    comment_id: int
    author: str


def reply_marker(ctx: CommentContext, index: int) -> str:
    return f"<!-- gitops-bot:reply {ctx.comment_id}/{index} -->"


def handle_comment(deps: Deps, ctx: CommentContext, body: str) -> int:
    """Run every command in a comment; returns how many outcomes were answered."""
    outcomes = parse_comment(body)
    state: RepoState | None = None
    for index, outcome in enumerate(outcomes, start=1):
        marker = reply_marker(ctx, index)
        if isinstance(outcome, Reply):
            upsert_reply(
                deps.client,
                ctx.repo,
                ctx.issue_number,
                marker,
                "command_usage.md.j2",
                reply=outcome,
                usage=COMMAND_USAGE[outcome.command],
            )
            continue
        if isinstance(outcome, Help):
            if state is None:
                state = _state_or_none(deps, ctx.repo)
            upsert_reply(
                deps.client,
                ctx.repo,
                ctx.issue_number,
                marker,
                "help_reply.md.j2",
                environments=[e.name for e in state.config.environments] if state else [],
                models=[m.name for m in state.config.models] if state else [],
            )
            continue
        try:
            state = state or load_repo_state(deps.client, ctx.repo)
            _run(deps, ctx, state, outcome, marker)
        except BotError as exc:  # user-facing failure: say why, where they asked
            if isinstance(exc, TransientError):
                raise
            upsert_reply(
                deps.client,
                ctx.repo,
                ctx.issue_number,
                marker,
                "command_result.md.j2",
                ok=False,
                command=outcome.line,
                message=str(exc),
                author=ctx.author,
            )
    return len(outcomes)


def _state_or_none(deps: Deps, repo: str) -> RepoState | None:
    try:
        return load_repo_state(deps.client, repo)
    except BotError:
        return None


def _refuse(deps: Deps, ctx: CommentContext, marker: str, command: str, reason: str) -> None:
    upsert_reply(
        deps.client,
        ctx.repo,
        ctx.issue_number,
        marker,
        "command_refused.md.j2",
        command=command,
        reason=reason,
        author=ctx.author,
    )


def _run(deps: Deps, ctx: CommentContext, state: RepoState, outcome: Outcome, marker: str) -> None:
    client = deps.client
    if isinstance(outcome, (Diff, Merge)) and not ctx.is_pull_request:
        raise PlanError(f"`{outcome.line}` only works on a pull request.")
    target_env = _target_environment(state, outcome)
    allowed, reason = can_act_for(client, ctx.repo, ctx.author, target_env)
    if not allowed:
        _refuse(deps, ctx, marker, outcome.line, reason)
        return
    client.add_reaction(ctx.repo, ctx.comment_id, "eyes")
    if isinstance(outcome, Promote):
        _promote(deps, ctx, state, outcome, marker)
    elif isinstance(outcome, Rollback):
        _rollback(deps, ctx, state, outcome, marker)
    elif isinstance(outcome, Diff):
        _rediff(deps, ctx, state, marker)
    elif isinstance(outcome, Merge):
        result = _gate(deps, ctx.repo, ctx.issue_number, state, asked_by=ctx.author)
        upsert_reply(
            client,
            ctx.repo,
            ctx.issue_number,
            marker,
            "merge_result.md.j2",
            result=result,
            author=ctx.author,
        )


def _gate(
    deps: Deps,
    repo: str,
    number: int,
    state: RepoState,
    asked_by: str | None = None,
    fresh: FreshPr | None = None,
) -> GateResult:
    return evaluate_pr(deps, repo, number, state.config, asked_by=asked_by, fresh=fresh)


def _target_environment(state: RepoState, outcome: Outcome) -> Environment | None:
    if not isinstance(outcome, (Promote, Rollback)):
        return None
    env = state.config.environment(outcome.environment)
    if env is None:
        names = [e.name for e in state.config.environments]
        raise PlanError(
            f"Unknown environment '{outcome.environment}'."
            + did_you_mean(outcome.environment, names)
        )
    return env


def _publish_or_dry_run(
    deps: Deps,
    ctx: CommentContext,
    state: RepoState,
    request: PromotionRequest,
    dry_run: bool,
    marker: str,
    open_prs: list[PullRequestInfo] | None = None,
) -> None:
    """`open_prs`: the environment's open PRs, when the caller listed them already."""
    plan = build_plan(state.config, state.snapshot, request, deps.render_pair)
    if dry_run:
        text = render_pull_request(plan, limit=DRY_RUN_LIMIT)
        upsert_reply(
            deps.client,
            ctx.repo,
            ctx.issue_number,
            marker,
            "dry_run.md.j2",
            plan=plan,
            body=text.body,
            changed=bool(plan.changes),
            author=ctx.author,
        )
        return
    published = publish_on_default_branch(deps, state, plan, open_prs)
    if published is not None:  # the approval check appears at once; auto-merge envs may merge
        _gate(deps, ctx.repo, published.number, state, fresh=published.fresh)
    upsert_reply(
        deps.client,
        ctx.repo,
        ctx.issue_number,
        marker,
        "command_result.md.j2",
        ok=True,
        command=request.trigger,
        author=ctx.author,
        published=published,
        plan=plan,
        message=""
        if published
        else f"{plan.environment.name} already deploys this version; nothing to change.",
    )


def _promote(deps: Deps, ctx: CommentContext, state: RepoState, cmd: Promote, marker: str) -> None:
    trigger = f"`{cmd.line}` by @{ctx.author}"
    if cmd.model is None:
        request = _same_change_request(deps, ctx, cmd, trigger)
        model, env = resolve_target(state.config, request.model, cmd.environment)
    else:
        model, env = resolve_target(state.config, cmd.model, cmd.environment)
        version = cmd.version or _alias_version(deps, model, cmd.alias or "")
        _check_version(model, version)
        check_promote_from(state, model, env, version)
        open_prs = _refuse_downgrade(deps, ctx, state, model, env, version, cmd)
        source, run_id, note = _source_for(deps, state, model, version)
        request = PromotionRequest(
            model=model.name,
            version=version,
            environment=env.name,
            source_uri=source,
            traffic=cmd.traffic,
            requester=ctx.author,
            trigger=trigger,
            run_id=run_id,
            source_note=note,
        )
    check_promote_from(state, model, env, request.version)
    check_soak(deps, ctx.repo, state.config, model, env, request.version)
    if cmd.model is None:
        open_prs = _refuse_downgrade(deps, ctx, state, model, env, request.version, cmd)
    refusal = unservable(env, model, request.source_uri)
    if refusal is not None:
        raise PlanError(f"Not promoting: {refusal.reason}.")
    _publish_or_dry_run(deps, ctx, state, request, cmd.dry_run, marker, open_prs)


def _check_version(model: Model, version: str) -> None:
    problem = version_problem(version, model.version_pattern)
    if problem is not None:
        raise PlanError(f"Not promoting: {problem}.")


def _refuse_downgrade(
    deps: Deps,
    ctx: CommentContext,
    state: RepoState,
    model: Model,
    env: Environment,
    version: str,
    cmd: Promote,
) -> list[PullRequestInfo] | None:
    """Going back to an older version takes an explicit `--allow-downgrade`; returns the
    environment's open PRs it listed (None when it had no need to)."""
    if cmd.allow_downgrade:
        return None
    open_prs = list_env_prs(deps.client, ctx.repo, env.name)
    refusal = refuse_backwards(deps, ctx.repo, state, model, env, version, open_prs)
    if refusal is not None:
        raise PlanError(
            f"Not promoting: {refusal.reason}. To go back on purpose, add "
            "`--allow-downgrade` (or use `/rollback`)."
        )
    return open_prs


def _same_change_request(
    deps: Deps, ctx: CommentContext, cmd: Promote, trigger: str
) -> PromotionRequest:
    """`/promote <env>` on a merged promotion PR: the same model version, to another env."""
    if not ctx.is_pull_request:
        raise PlanError(
            "`/promote <env>` works on a merged promotion pull request; "
            "elsewhere use `/promote <model> <version> to <env>`."
        )
    pr = deps.client.get_pr(ctx.repo, ctx.issue_number)
    promotion = promotion_of(deps, ctx.repo, pr)
    if promotion is None or promotion.meta.get("kind") != "promote":
        raise PlanError("This pull request was not opened by gitops-bot for a promotion.")
    if not pr.merged:
        raise PlanError(
            f"#{ctx.issue_number} is not merged yet: promote it further once it is deployed."
        )
    return request_from_meta(
        promotion.meta,
        environment=cmd.environment,
        traffic=cmd.traffic,
        requester=ctx.author,
        trigger=f"{trigger} on #{ctx.issue_number}",
    )


def _alias_version(deps: Deps, model: Model, alias: str) -> str:
    if deps.mlflow is None:
        raise PlanError(f"Cannot resolve @{alias}: no MLflow tracking URI is configured.")
    version = str(deps.mlflow.alias_version(model.registry_name, alias))
    if not version:
        raise PlanError(f"MLflow has no alias @{alias} on {model.registry_name}.")
    return version


def _source_for(deps: Deps, state: RepoState, model: Model, version: str) -> tuple[str, str, str]:
    """Storage URI of a version: from MLflow, else from an environment that deploys it."""
    if deps.mlflow is not None:
        event = RegistryEvent("model_version.created", model.registry_name, version)
        return resolve_source(RegistryFacts(event), deps.mlflow)
    for env in state.config.environments:
        deployed = read_deployed(state.snapshot, model, env)
        if deployed.version == version and deployed.storage_uri:
            return deployed.storage_uri, "", f"Storage URI taken from {env.name}."
    needs_uri = any("{storage_uri}" in rule.value for rule in model.set)
    if needs_uri:
        raise PlanError(
            f"No storage URI known for {model.registry_name} v{version}: no environment deploys it "
            "and no MLflow tracking URI is configured."
        )
    return "", "", ""


def _rollback(
    deps: Deps, ctx: CommentContext, state: RepoState, cmd: Rollback, marker: str
) -> None:
    env = state.config.environment(cmd.environment)
    assert env is not None  # checked by _target_environment
    model = _rollback_model(deps, ctx, state)
    if cmd.version is not None:
        _check_version(model, cmd.version)
    current = read_deployed(state.snapshot, model, env)
    version, source = version_from_history(deps, state, model, env, current.version, cmd.version)
    request = PromotionRequest(
        model=model.name,
        version=version,
        environment=env.name,
        source_uri=source,
        requester=ctx.author,
        trigger=f"`{cmd.line}` by @{ctx.author}",
        kind="rollback",
        source_note=f"Values restored from the git history of {env.path}.",
    )
    _publish_or_dry_run(deps, ctx, state, request, False, marker)


def _rollback_model(deps: Deps, ctx: CommentContext, state: RepoState) -> Model:
    if ctx.is_pull_request:
        pr = deps.client.get_pr(ctx.repo, ctx.issue_number)
        promotion = promotion_of(deps, ctx.repo, pr)
        model = state.config.model(promotion.model) if promotion is not None else None
        if model is not None:
            return model
    if len(state.config.models) == 1:
        return state.config.models[0]
    raise PlanError(
        "Several models are configured: comment `/rollback` on a promotion PR of the model "
        "to roll back."
    )


def version_from_history(
    deps: Deps,
    state: RepoState,
    model: Model,
    env: Environment,
    current: str | None,
    wanted: str | None,
) -> tuple[str, str]:
    """Walk the overlay files' history (newest first) to the previous or the wanted version."""
    client = deps.client
    files = sorted({f"{env.path}/{rule.file}" for rule in model.set})
    commits: list[str] = []
    for path in files:
        for sha in client.path_history(state.repo, path, ref=state.sha, limit=HISTORY_LIMIT):
            if sha not in commits:
                commits.append(sha)
    seen: list[str] = []
    for sha in commits:  # history order per file, merged; each commit checked once
        snapshot = {
            path: content
            for path in files
            if (content := client.read_file(state.repo, path, sha)) is not None
        }
        deployed = read_deployed(snapshot, model, env)
        if deployed.version is None:
            continue
        if wanted is not None and deployed.version == wanted:
            return deployed.version, deployed.storage_uri or ""
        if wanted is None and deployed.version != current:
            return deployed.version, deployed.storage_uri or ""
        if deployed.version not in seen:
            seen.append(deployed.version)
    if wanted is not None:
        versions = ", ".join("v" + v for v in seen) or "none"
        raise PlanError(
            f"{env.name} never deployed {model.registry_name} v{wanted} in the last "
            f"{HISTORY_LIMIT} changes of {env.path} (seen: {versions})."
        )
    raise PlanError(f"No earlier version of {model.registry_name} in the history of {env.path}.")


def _rediff(deps: Deps, ctx: CommentContext, state: RepoState, marker: str) -> None:
    """Re-render: the bot's own promotion from its record while the branch holds only what
    the bot pushed; anything else as untrusted content, head as it is."""
    pr = deps.client.get_pr(ctx.repo, ctx.issue_number)
    promotion = promotion_of(deps, ctx.repo, pr)
    if (
        promotion is not None
        and not pr.merged
        and pr.state == "open"
        and deps.records.is_bot_commit(ctx.repo, pr.head_sha)
    ):
        _republish(deps, ctx, state, promotion)
    else:
        handle_pr_diff(deps, ctx.repo, ctx.issue_number, state.config)
    upsert_reply(
        deps.client,
        ctx.repo,
        ctx.issue_number,
        marker,
        "command_result.md.j2",
        ok=True,
        command="/diff",
        author=ctx.author,
        published=None,
        plan=None,
        message=f"Re-rendered the diff for {pr.head_sha[:7]}.",
    )


def _republish(
    deps: Deps, ctx: CommentContext, state: RepoState, promotion: PromotionRecord
) -> None:
    request = request_from_meta(promotion.meta)
    plan = build_plan(state.config, state.snapshot, request, deps.render_pair)
    plan = replace(plan, meta=promotion.meta)  # keep the original requester and trigger
    publish_on_default_branch(deps, state, plan)
