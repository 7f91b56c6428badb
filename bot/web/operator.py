"""Operator page: environments, what they deploy, open promotion PRs and recent jobs."""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import jinja2
from flask import Blueprint, Flask, Response, jsonify, request

from bot.core.approval import PullRequestFacts, Review, evaluate_merge, latest_opinions
from bot.core.canary import latest
from bot.core.deployed import Deployed, read_deployed
from bot.core.errors import BotError
from bot.core.feedback import format_duration
from bot.core.templating import clip, templates_dir
from bot.core.types import Config, Environment
from bot.gateways.queue import STATUSES, JobQueue
from bot.gateways.records import PromotionRecords
from bot.jobs.merge_gate import eligible_reviewers, gather_checks
from bot.jobs.repo_state import load_repo_state
from bot.web.signin import (
    CSP,
    OAuthClient,
    SignInSettings,
    Viewer,
    configure_sessions,
    current_viewer,
    signin_blueprint,
)

log = logging.getLogger(__name__)

PROMOTION_PREFIX = "gitops-bot/"
DEFAULT_JOB_LIMIT = 50
MAX_JOB_LIMIT = 500
# Shown instead of the message of an exception we did not raise ourselves: third-party
# messages may carry request details, and every signed-in reader of a repository sees them.
_UNEXPECTED = "{kind} while reading the repository (details in the bot's log)"

APPROVAL_STATES = ("ready", "changes_requested", "needs_approval", "blocked", "unknown")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class LiveOverview:
    """What runs in an environment after the merge, as Argo CD and Flagger told the bot."""

    application: str = ""  # the Argo CD application ("" when none reported yet)
    revision: str = ""  # the commit Argo CD runs
    ours: bool = False  # a merge commit of a promotion the bot merged
    runs_version: str = ""  # the version of the bot's deployment that revision runs
    sync_status: str = ""
    health_status: str = ""
    healthy_for: str = ""  # e.g. "2h 5m" (empty when not healthy)
    deployment_state: str = ""  # of the environment's newest GitHub deployment
    deployment_version: str = ""  # what that deployment rolls out
    deployment_age: str = ""  # e.g. "3h 10m"
    canary_phase: str = ""  # Flagger's latest phase for that deployment


@dataclass(frozen=True)
class EnvOverview:
    name: str
    path: str
    auto_merge: bool
    approvals_text: str  # e.g. "1 approval from @alice or team ml-platform"
    deployed: list[Deployed]
    promote_from: str | None = None
    live: LiveOverview | None = None  # None: no deployment or feedback recorded yet


def live_overview(
    records: PromotionRecords, repo: str, environment: Environment, now: float
) -> LiveOverview | None:
    """The environment's revision, health, canary phase and deployment age, from the
    bot's own records (no GitHub call)."""
    health = records.health(repo, environment.name)
    newest = next(iter(records.deployments(repo, environment.name, limit=1)), None)
    if health is None and newest is None:
        return None
    live = LiveOverview()
    if health is not None:
        live = dataclasses.replace(
            live,
            application=health.application,
            revision=health.revision[:12],
            ours=health.ours,
            runs_version=health.version,
            sync_status=health.sync_status,
            health_status=health.health_status,
            healthy_for=(
                format_duration(now - health.healthy_since)
                if health.healthy_since is not None
                else ""
            ),
        )
    if newest is not None:
        events = records.canary_events(repo, environment.name, newest.sha)
        phase = latest(events)
        live = dataclasses.replace(
            live,
            deployment_state=newest.state or "queued",
            deployment_version=newest.version,
            deployment_age=format_duration(now - newest.created_at),
            canary_phase=phase.phase if phase is not None else "",
        )
    return live


@dataclass(frozen=True)
class PrOverview:
    number: int
    title: str
    url: str
    env: str
    model: str
    version: str
    requester: str
    approval_state: str  # one of APPROVAL_STATES
    approval_reasons: tuple[str, ...]  # why it cannot merge yet, then notes on ignored reviews
    approvers: tuple[str, ...] = ()  # approvals that count
    required_approvals: int = 0
    head_sha: str = ""
    draft: bool = False


@dataclass(frozen=True)
class RefusalOverview:
    """A registry event the bot did not promote (stale, or an unservable location)."""

    model: str
    environment: str
    version: str
    kind: str
    reason: str
    at: float  # unix time


@dataclass(frozen=True)
class RepoOverview:
    repo: str
    default_branch: str
    sha: str
    environments: list[EnvOverview]
    open_prs: list[PrOverview]
    error: str | None = None
    fetched_at: float = 0.0  # unix time the data was read from GitHub (0: unknown)
    refusals: list[RefusalOverview] = field(default_factory=list)  # registry events not promoted


class OperatorData(Protocol):
    """What the page shows; the page itself never calls GitHub or the database directly.
    `repos` limits jobs and their counts to those repositories (lower-case owner/name)."""

    def repositories(self) -> list[RepoOverview]: ...
    def jobs(self, limit: int, repos: Collection[str]) -> list[dict[str, Any]]: ...
    def job_counts(self, repos: Collection[str]) -> dict[str, int]: ...


def approvals_text(environment: Environment) -> str:
    """Who must approve a promotion into `environment`, in one line."""
    approvals = environment.approvals
    if approvals.required <= 0:
        return "no approval required"
    who = [f"@{u}" for u in approvals.users] + [f"team {t}" for t in approvals.teams]
    noun = "approval" if approvals.required == 1 else "approvals"
    source = f" from {' or '.join(who)}" if who else " from anyone with write access"
    return f"{approvals.required} {noun}{source}"


def environment_overviews(config: Config, snapshot: Mapping[str, bytes]) -> list[EnvOverview]:
    """Each configured environment with what it deploys of every configured model."""
    return [
        EnvOverview(
            name=env.name,
            path=env.path,
            auto_merge=env.auto_merge,
            approvals_text=approvals_text(env),
            deployed=[read_deployed(snapshot, model, env) for model in config.models],
            promote_from=env.promote_from,
        )
        for env in config.environments
    ]


def public_error(exc: BaseException) -> str:
    """An error message fit for the page: our own errors verbatim, others by kind only."""
    if isinstance(exc, BotError):
        return str(exc) or type(exc).__name__
    return _UNEXPECTED.format(kind=type(exc).__name__)


# --------------------------------------------------------------------------- GitHub provider


class GitHubOperatorData:
    """OperatorData from the GitHub gateway and the job queue, cached for `cache_ttl_s`.

    Each repository is read at most once per TTL whatever the page traffic (errors are
    cached too, so a failing GitHub is not hammered); concurrent requests for a stale
    repository wait for one refresh instead of starting their own.
    """

    def __init__(
        self,
        app: Any,  # bot.gateways.github.GitHubApp
        queue: JobQueue,
        repos: Sequence[str],
        cache_ttl_s: float = 30.0,
        *,
        bot_login: str | None = None,
        max_prs: int = 30,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.queue = queue
        self.records = PromotionRecords(queue)
        self.repos = tuple(dict.fromkeys(repos))
        self.cache_ttl_s = cache_ttl_s
        self.bot_login = bot_login
        self.max_prs = max_prs
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: dict[str, tuple[float, RepoOverview]] = {}
        self._last_good: dict[str, RepoOverview] = {}
        self._locks = {repo: threading.Lock() for repo in self.repos}

    def repositories(self) -> list[RepoOverview]:
        stale = [r for r in self.repos if not self._fresh(r)]
        if len(stale) > 1:  # first load of several repositories: read them side by side
            with ThreadPoolExecutor(max_workers=min(8, len(stale))) as pool:
                list(pool.map(self.repository, stale))
        return [self.repository(repo) for repo in self.repos]

    def jobs(self, limit: int, repos: Collection[str]) -> list[dict[str, Any]]:
        return self.queue.recent(limit, repos=repos)

    def job_counts(self, repos: Collection[str]) -> dict[str, int]:
        return self.queue.counts(repos=repos)

    def _fresh(self, repo: str) -> bool:
        cached = self._cache.get(repo)
        return cached is not None and self._clock() - cached[0] < self.cache_ttl_s

    def repository(self, repo: str) -> RepoOverview:
        """The overview of one configured repository (from the cache when fresh)."""
        with self._locks[repo]:
            cached = self._cache.get(repo)
            if cached is not None and self._clock() - cached[0] < self.cache_ttl_s:
                return cached[1]
            overview = self._read(repo)
            self._cache[repo] = (self._clock(), overview)
            return overview

    def _read(self, repo: str) -> RepoOverview:
        try:
            overview = self._load(repo)
        except Exception as exc:
            log.warning("operator page: cannot read %s: %s", repo, public_error(exc))
            if not isinstance(exc, BotError):
                log.debug("operator page: %s", repo, exc_info=True)
            previous = self._last_good.get(repo)
            if previous is not None:  # keep showing the last good data, marked as stale
                return dataclasses.replace(previous, error=public_error(exc))
            return RepoOverview(repo, "", "", [], [], error=public_error(exc))
        self._last_good[repo] = overview
        return overview

    def _load(self, repo: str) -> RepoOverview:
        client = self.app.client_for_repo(repo)
        state = load_repo_state(client, repo)
        now = self._wall_clock()
        environments = [
            dataclasses.replace(overview, live=live_overview(self.records, repo, environment, now))
            for overview, environment in zip(
                environment_overviews(state.config, state.snapshot),
                state.config.environments,
                strict=True,
            )
        ]
        prs = sorted(
            client.list_open_prs(repo, head_prefix=PROMOTION_PREFIX),
            key=lambda p: p.number,
            reverse=True,
        )
        return RepoOverview(
            repo=repo,
            default_branch=state.default_branch,
            sha=state.sha,
            environments=environments,
            open_prs=[self._pr(client, repo, state.config, pr) for pr in prs[: self.max_prs]],
            fetched_at=self._wall_clock(),
            refusals=[
                RefusalOverview(r.model, r.environment, r.version, r.kind, r.reason, r.created_at)
                for r in self.records.refusals(repo)
            ],
        )

    def _pr(self, client: Any, repo: str, config: Config, pr: Any) -> PrOverview:
        record = self.records.promotion(repo, pr.number) if pr.author == self.bot_login else None
        meta = record.meta if record is not None else {}
        env_name = str(meta.get("env") or "")
        base = PrOverview(
            number=pr.number,
            title=pr.title,
            url=pr.html_url,
            env=env_name,
            model=str(meta.get("model") or ""),
            version=str(meta.get("version") or ""),
            requester=str(meta.get("requester") or getattr(pr, "author", "") or ""),
            approval_state="unknown",
            approval_reasons=(),
            head_sha=pr.head_sha,
            draft=bool(getattr(pr, "draft", False)),
        )
        if record is None:
            return dataclasses.replace(
                base, approval_reasons=("gitops-bot has no record of opening this pull request",)
            )
        environment = config.environment(env_name)
        if environment is None:
            return dataclasses.replace(
                base, approval_reasons=(f"environment '{env_name}' is not configured",)
            )
        try:
            return self._evaluate(client, repo, config, environment, base)
        except Exception as exc:
            log.warning("operator page: cannot evaluate %s#%s: %s", repo, pr.number, exc)
            return dataclasses.replace(base, approval_reasons=(public_error(exc),))

    def _evaluate(
        self, client: Any, repo: str, config: Config, environment: Environment, base: PrOverview
    ) -> PrOverview:
        """The merge gate's own decision (the same policy, read-only: no check run written)."""
        pr = client.get_pr(repo, base.number)  # list responses carry no mergeability
        reviews = [
            Review(r.user, r.state, r.commit_id, order=index)
            for index, r in enumerate(client.reviews(repo, base.number))
        ]
        render = self.records.render(repo, pr.number, pr.head_sha, pr.base_ref)
        names = {environment.name, *(render.environments if render else ())}
        environments = [e for e in config.environments if e.name in names]
        eligible = eligible_reviewers(client, repo, reviews, environments)
        facts = PullRequestFacts(
            number=pr.number,
            head_sha=pr.head_sha,
            state=pr.state,
            merged=pr.merged,
            draft=pr.draft,
            mergeable=pr.mergeable,
            requester=base.requester,
            authors=self.records.pushers(repo, pr.number),
            rendered=render is not None,
        )
        decision = evaluate_merge(
            facts,
            reviews,
            gather_checks(client, repo, pr.head_sha),
            environments,
            eligible=eligible,
            bot_logins=(self.bot_login,) if self.bot_login else (),
        )
        eligible_somewhere = {u for users in eligible.values() for u in users}
        blocking_review = any(
            r.state == "CHANGES_REQUESTED" and user in eligible_somewhere
            for user, r in latest_opinions(reviews).items()
        )
        required = environment.approvals.required
        if decision.ready:
            state = "ready"
        elif blocking_review:
            state = "changes_requested"
        elif len(decision.approvers) < required:
            state = "needs_approval"
        else:
            state = "blocked"
        return dataclasses.replace(
            base,
            head_sha=pr.head_sha,
            draft=pr.draft,
            approval_state=state,
            approval_reasons=decision.reasons + decision.notes,
            approvers=decision.approvers,
            required_approvals=required,
        )


# --------------------------------------------------------------------------- rendering


@functools.cache
def html_environment() -> jinja2.Environment:
    """A Jinja2 environment for HTML templates: autoescaping on (the shared one is markdown)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clip"] = clip
    env.filters["safe_url"] = safe_url
    env.filters["short_sha"] = lambda sha: str(sha or "")[:7]
    return env


def safe_url(url: object) -> str:
    """`url` if it is an http(s) link, else "" (no javascript: or data: links in the page)."""
    text = str(url or "")
    return text if urlsplit(text).scheme in ("http", "https") else ""


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ago(value: object, now: float) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago' ('' when unreadable)."""
    moment = _parse_time(value)
    if moment is None:
        return ""
    seconds = max(0, int(now - moment.timestamp()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def utc_text(value: object) -> str:
    moment = _parse_time(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else str(value)


def _job_rows(jobs: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    rows = []
    for job in jobs:
        row = dict(job)
        row["updated_text"] = utc_text(job.get("updated_at"))
        row["updated_ago"] = ago(job.get("updated_at"), now)
        row["created_text"] = utc_text(job.get("created_at"))
        rows.append(row)
    return rows


def _status_counts(counts: Mapping[str, int]) -> dict[str, int]:
    out = {status: int(counts.get(status, 0)) for status in STATUSES}
    out.update({k: int(v) for k, v in counts.items() if k not in out})
    return out


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


@dataclass
class _Snapshot:
    repositories: list[RepoOverview] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _gather(provider: OperatorData, limit: int, viewer: Viewer) -> _Snapshot:
    """What `viewer` may see (their repositories, those repositories' jobs and job counts);
    a failing source becomes an error line, never a 500."""
    snap = _Snapshot()
    try:
        snap.repositories = [r for r in provider.repositories() if viewer.can_see(r.repo)]
    except Exception as exc:
        log.exception("operator page: repositories unavailable")
        snap.errors.append(f"Repositories unavailable: {public_error(exc)}")
    try:
        jobs = provider.jobs(limit, viewer.repos)
        snap.jobs = [job for job in jobs if viewer.can_see(job.get("repo"))]
        snap.counts = _status_counts(provider.job_counts(viewer.repos))
    except Exception as exc:
        log.warning("operator page: job queue unavailable (%s)", type(exc).__name__)
        snap.errors.append(f"Job queue unavailable ({type(exc).__name__})")
    return snap


def _limit() -> int:
    raw = request.args.get("limit", "")
    try:
        value = int(raw) if raw else DEFAULT_JOB_LIMIT
    except ValueError:
        value = DEFAULT_JOB_LIMIT
    return max(1, min(value, MAX_JOB_LIMIT))


def _html(html: str, status: int = 200) -> Response:
    """An HTML answer with the page's headers: no script, no caching, no referrer."""
    response = Response(html, status=status, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = CSP  # no script, no loads, forms to self
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def signin_page(status: int = 200, *, message: str = "", enabled: bool = True) -> Response:
    """The page a signed-out visitor gets: a sign-in link (or why there is none), no data."""
    template = html_environment().get_template("signin.html.j2")
    return _html(template.render(message=message, enabled=enabled), status)


def _unauthorised() -> Response:
    response = jsonify({"error": "sign in first: /login"})
    response.status_code = 401
    response.headers["Cache-Control"] = "no-store"
    return response


def operator_disabled_blueprint() -> Blueprint:
    """`/` and `/api/status` when sign-in is not configured: 404, never public data."""
    bp = Blueprint("operator", __name__)
    message = "The operator page is disabled: sign-in (GITHUB_CLIENT_ID) is not configured."

    @bp.get("/")
    def page() -> Response:
        return signin_page(404, message=message, enabled=False)

    @bp.get("/api/status")
    def status() -> Response:
        response = jsonify({"error": message})
        response.status_code = 404
        return response

    return bp


def operator_blueprint(
    provider: OperatorData, *, clock: Callable[[], float] = time.time
) -> Blueprint:
    """Routes `/` (HTML operator page) and `/api/status` (the same data as JSON), for a
    signed-in viewer and only their repositories (`bot.web.signin`); signed out: a sign-in
    link, and 401 from the API."""
    bp = Blueprint("operator", __name__)

    @bp.get("/")
    def page() -> Response:
        viewer = current_viewer()
        if viewer is None:
            return signin_page()
        now = clock()
        snap = _gather(provider, _limit(), viewer)
        html = (
            html_environment()
            .get_template("operator.html.j2")
            .render(
                viewer=viewer,
                repositories=snap.repositories,
                jobs=_job_rows(snap.jobs, now),
                counts=snap.counts,
                total_jobs=sum(snap.counts.values()),
                errors=snap.errors,
                generated=utc_text(now),
                ago=lambda value: ago(value, now),
                states=APPROVAL_STATES,
            )
        )
        return _html(html)

    @bp.get("/api/status")
    def status() -> Response:
        viewer = current_viewer()
        if viewer is None:
            return _unauthorised()
        snap = _gather(provider, _limit(), viewer)
        response = jsonify(
            {
                "generated_at": datetime.fromtimestamp(clock(), UTC).isoformat(),
                "viewer": viewer.login,
                "repositories": _to_json(snap.repositories),
                "jobs": _to_json(snap.jobs),
                "job_counts": snap.counts,
                "errors": snap.errors,
            }
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    return bp


def install_operator_page(
    app: Flask,
    provider: OperatorData,
    *,
    oauth: OAuthClient | None,
    settings: SignInSettings,
    repos: Collection[str],
    clock: Callable[[], float] = time.time,
) -> None:
    """The operator page behind "Sign in with GitHub" on `app`; without an OAuth client
    (no GITHUB_CLIENT_ID) the page is disabled: 404, never public."""
    if oauth is None:
        app.register_blueprint(operator_disabled_blueprint())
        return
    configure_sessions(app, settings)
    app.register_blueprint(signin_blueprint(oauth, settings, repos, signin_page))
    app.register_blueprint(operator_blueprint(provider, clock=clock))
