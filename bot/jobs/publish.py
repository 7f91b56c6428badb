"""Publish a plan on GitHub idempotently: branch commit, PR, detail comments, render check."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.approval import Check
from bot.core.github_port import GitHubPort, PullRequestInfo
from bot.core.planner import BRANCH_PREFIX
from bot.core.rendering import render_changed
from bot.core.report import render_pull_request
from bot.core.templating import render_template
from bot.core.types import EnvironmentDiff, Plan
from bot.gateways.records import PromotionRecords
from bot.jobs.deps import Deps, FreshPr
from bot.jobs.repo_state import RepoState

log = logging.getLogger(__name__)

RENDER_CHECK = "gitops-bot/render"
PART_MARKER_PREFIX = "<!-- gitops-bot:part "
SUPERSEDED_MARKER = "<!-- gitops-bot:superseded -->"
LABEL = "gitops-bot"


@dataclass(frozen=True)
class Published:
    number: int
    url: str
    head_sha: str
    created: bool
    author: str = ""  # GitHub's answer: the App's bot user
    # set when this job opened the PR on a commit it made just now: the gate then knows
    # every fact it would read (no review, no other check, no comment can predate it)
    fresh: FreshPr | None = None


def commit_message(plan: Plan) -> str:
    lines = [plan.title, ""]
    lines += [
        f"- {c.path}: " + ", ".join(f"{f} → {new}" for f, _, new in c.edits) for c in plan.changes
    ]
    if plan.request.trigger:
        lines += ["", f"Triggered by {plan.request.trigger}."]
    return "\n".join(lines)


def publish_detail_comments(
    client: GitHubPort, repo: str, number: int, parts: tuple[str, ...]
) -> None:
    """Create or update `part i/N` comments in place; delete parts left over from a bigger diff."""
    keep: set[int] = set()
    for index, body in enumerate(parts, start=1):
        marker = f"{PART_MARKER_PREFIX}{index}/"  # position only: N may change between renders
        keep.add(client.upsert_comment(repo, number, marker, body))
    client.delete_comments(repo, number, PART_MARKER_PREFIX, keep)


def publish_render_check(
    client: GitHubPort,
    repo: str,
    head_sha: str,
    diffs: Sequence[EnvironmentDiff],
    summary: str,
    *,
    new_commit: bool = False,
) -> None:
    """`gitops-bot/render`: fails when any affected overlay does not build at the head.
    `new_commit`: the bot made head_sha just now, so no check run of ours is on it yet."""
    broken = [d.environment for d in diffs if not d.head.ok]
    client.upsert_check_run(
        repo,
        head_sha,
        RENDER_CHECK,
        status="completed",
        conclusion=_render_conclusion(diffs),
        title=(
            f"Kustomize build failed for {', '.join(broken)}"
            if broken
            else f"Rendered {len(diffs)} environment(s)"
        ),
        summary=summary,
        known=[] if new_commit else None,
    )


def _render_conclusion(diffs: Sequence[EnvironmentDiff]) -> str:
    return "failure" if any(not d.head.ok for d in diffs) else "success"


def env_prefix(plan: Plan) -> str:
    return branch_prefix(plan.environment.name)


def branch_prefix(environment: str) -> str:
    """The branches of one environment's promotions: `gitops-bot/<env>/`."""
    return f"{BRANCH_PREFIX}{environment}/"


def list_env_prs(client: GitHubPort, repo: str, environment: str) -> list[PullRequestInfo]:
    """Open PRs from the repository's own branches of one environment's promotions."""
    return list(client.list_open_prs(repo, head_prefix=branch_prefix(environment)))


def close_superseded(
    client: GitHubPort,
    records: PromotionRecords,
    repo: str,
    plan: Plan,
    current: Published,
    open_prs: list[PullRequestInfo] | None = None,
) -> list[int]:
    """Close older open promotion PRs for the same model and environment (as the bot's
    records tell them, never their editable descriptions).

    `open_prs`: the environment's open bot PRs, if the caller already listed them."""
    closed = []
    if open_prs is None:
        open_prs = list_env_prs(client, repo, plan.environment.name)
    candidates = [p for p in open_prs if p.number != current.number and p.author == current.author]
    known = records.promotions(repo, [p.number for p in candidates])
    for pr in candidates:
        record = known.get(pr.number)
        if record is None or record.model != plan.model.name:
            continue
        if record.environment != plan.environment.name:
            continue
        body = render_template(
            "superseded.md.j2", number=current.number, url=current.url, title=plan.title
        )
        client.upsert_comment(repo, pr.number, SUPERSEDED_MARKER, SUPERSEDED_MARKER + "\n" + body)
        client.close_pr(repo, pr.number)
        closed.append(pr.number)
    return closed


def publish_plan(
    client: GitHubPort,
    records: PromotionRecords,
    repo: str,
    plan: Plan,
    *,
    base_branch: str,
    base_sha: str,
    open_prs: list[PullRequestInfo] | None = None,
) -> Published | None:
    """Make GitHub show `plan`, and remember what the bot did; safe to run any number of
    times. The records are written before anything can act on them: the commit as soon as
    it exists, the promotion and its render as soon as the PR does."""
    if not plan.changes:
        log.info("nothing to change for %s in %s: already deployed", plan.title, repo)
        return None
    text = render_pull_request(plan)
    files: dict[str, bytes | None] = {c.path: c.after for c in plan.changes}
    pushed_before = records.note_branch(repo, plan.branch)
    head_sha = client.commit_files(
        repo,
        branch=plan.branch,
        base_sha=base_sha,
        files=files,
        message=commit_message(plan),
        look_first=pushed_before,
    )
    # no record of it: made just now (a crash before the record left no check run on it)
    new_commit = not records.is_bot_commit(repo, head_sha)
    records.record_commit(repo, head_sha, plan.branch)
    # One listing serves both finding this branch's PR and closing the ones it supersedes
    # (`open_prs`: the environment's open PRs, when the caller listed them already).
    if plan.branch.startswith(env_prefix(plan)):
        if open_prs is None:
            open_prs = list_env_prs(client, repo, plan.environment.name)
        pr = next((p for p in open_prs if p.head_ref == plan.branch), None)
    else:
        pr = client.find_open_pr(repo, plan.branch)
    created = pr is None
    if pr is None:
        pr = client.create_pr(
            repo, branch=plan.branch, base=base_branch, title=text.title, body=text.body
        )
    records.save_promotion(repo, pr.number, plan.branch, plan.meta)
    if not created:
        pr = client.update_pr(repo, pr.number, title=text.title, body=text.body, current=pr)
    # not only after creating: a run that died between creating the PR and labelling it
    # must not leave it unlabelled forever
    missing = [x for x in (LABEL, f"env:{plan.environment.name}") if x not in pr.labels]
    if missing:
        client.add_labels(repo, pr.number, missing)
    if text.parts or not created:  # a PR opened just now has no leftover parts to delete
        publish_detail_comments(client, repo, pr.number, text.parts)
    publish_render_check(
        client,
        repo,
        head_sha,
        plan.diffs,
        text.check_summary or text.body,
        new_commit=new_commit,
    )
    # the diff just published is the one reviewers approve: record what it reaches
    records.save_render(
        repo,
        pr.number,
        head_sha=head_sha,
        base_ref=base_branch,
        merge_base=base_sha,
        environments={plan.environment.name}
        | {d.environment for d in plan.diffs if render_changed(d)},
    )
    fresh = None
    if created and new_commit:
        render_check = Check(RENDER_CHECK, "completed", _render_conclusion(plan.diffs))
        fresh = FreshPr(pr=pr, checks=(render_check,))
    published = Published(
        number=pr.number,
        url=pr.html_url,
        head_sha=head_sha,
        created=created,
        author=pr.author,
        fresh=fresh,
    )
    close_superseded(client, records, repo, plan, published, open_prs)
    return published


def publish_on_default_branch(
    deps: Deps, state: RepoState, plan: Plan, open_prs: list[PullRequestInfo] | None = None
) -> Published | None:
    """`publish_plan` on the default branch as the job read it (`state`)."""
    return publish_plan(
        deps.client,
        deps.records,
        state.repo,
        plan,
        base_branch=state.default_branch,
        base_sha=state.sha,
        open_prs=open_prs,
    )
