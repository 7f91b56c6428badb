"""FakeGitHub: GitHub's REST operations used by gitops-bot, over real git and OpenAPI checks."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import jwt

from . import shapes
from .gitrepo import Person
from .keys import app_key_pair
from .oauth import OAuthMixin
from .openapi import Validator, match
from .payloads import PayloadMixin
from .scenario import ScenarioMixin
from .state import (
    CheckRun,
    Comment,
    Deployment,
    DeploymentStatus,
    Issue,
    Pull,
    Reaction,
    Repo,
    Status,
    Urls,
    iso,
    now,
)
from .transport import TransportMixin

Response = tuple[int, dict[str, str], bytes]
MAX_BODY = 65536
MAX_CHECK_TEXT = 65535
VALIDATION_STATUS = 599
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID {rid}."
)
HEAD_MODIFIED = "Head branch was modified. Review and try the merge again."
BASE_MODIFIED = "Base branch was modified. Review and try the merge again."
PERMISSION_LEVEL = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}
APP_OPS = {
    ("GET", "/repos/{owner}/{repo}/installation"),
    ("POST", "/app/installations/{installation_id}/access_tokens"),
}
USER_OPS = {  # user-to-server: a user access token (ghu_), never an installation token
    ("GET", "/user"),
    ("GET", "/user/installations"),
    ("GET", "/user/installations/{installation_id}/repositories"),
}
_HANDLERS: dict[tuple[str, str], Callable[..., Any]] = {}


def op(method: str, pattern: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _HANDLERS[(method, pattern)] = fn
        return fn

    return register


@dataclass
class RateWindow:
    """One installation's REST rate-limit window in the fake."""

    limit: int
    remaining: int
    reset: int  # Unix seconds


class HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = shapes.error(message, **extra)


def _unprocessable(message: str, **extra: Any) -> HttpError:
    return HttpError(422, message, **extra)


NOT_FOUND = "Not Found"
PR_FILES_LIMIT = 3000  # GET /pulls/{n}/files lists at most 3000 files
COMPARE_COMMITS_LIMIT = 250  # compare lists at most 250 commits
COMPARE_FILES_LIMIT = 300  # ... and at most 300 files


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # API-relative, without query
    query: str
    status: int
    operation: str | None  # the OpenAPI path pattern
    body: bytes | None = None  # the raw request body (e.g. to check the merge `sha` guard)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    count: int
    headers: dict[str, str]
    body: Any
    after: bool


@dataclass
class Pause:
    """A request held before it is performed: see `FakeGitHub.pause_next`."""

    method: str
    path: re.Pattern[str]
    timeout: float
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    perform: bool = True

    def release(self, *, perform: bool = True) -> None:
        """Let the held request go on; `perform=False` answers it with a 502 without performing
        it (its client is gone: e.g. the worker that sent it was killed)."""
        self.perform = perform
        self.released.set()


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, str]
    params: dict[str, str]
    body: Any
    u: Urls
    repo: Repo | None = None
    installation_id: int | None = None
    user_login: str | None = None
    link_base: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)


class FakeGitHub(OAuthMixin, ScenarioMixin, PayloadMixin, TransportMixin):
    """A GitHub App's view of GitHub, for tests. See tests/fakegithub/__init__.py."""

    def __init__(
        self,
        root: Path,
        *,
        api_url: str = "https://api.github.com",
        codeload_url: str = "https://codeload.github.localhost",
        app_id: int = 424242,
        app_slug: str = "gitops-bot",
        validate_responses: bool = True,
    ) -> None:
        self.root = Path(root)
        self.api_url = api_url.rstrip("/")
        self.codeload_url = codeload_url.rstrip("/")
        self.app_id = app_id
        self.app_slug = app_slug
        self.bot_login = f"{app_slug}[bot]"
        self.private_key_pem, self.public_key_pem = app_key_pair()
        self.validate_responses = validate_responses
        self.repos: dict[str, Repo] = {}
        self.teams: dict[tuple[str, str], dict[str, str]] = {}
        self.tokens: dict[str, tuple[int, int]] = {}  # token -> (installation id, expiry)
        self.calls: list[Call] = []
        self.validation_errors: list[str] = []
        self.response_errors: list[str] = []
        self.signed_commits: set[str] = set()
        self.deployment_requests: list[tuple[str, dict[str, Any]]] = []  # (repo, request body)
        self._faults: list[Fault] = []
        self._pauses: list[Pause] = []
        self._archives: dict[str, tuple[str, str]] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count(100_001)
        self._served: list[Any] = []
        # installation id -> its REST window, for installations given one with set_rate_limit
        self.rate_windows: dict[int, RateWindow] = {}
        self._rate_used = 0  # requests counted against the default (unset) window
        self._init_oauth()

    # ------------------------------------------------------------------------------------
    # dispatch
    # ------------------------------------------------------------------------------------

    @property
    def app_info(self) -> dict[str, Any]:
        return {"id": self.app_id, "slug": self.app_slug, "name": "gitops-bot"}

    def _bases(self) -> list[tuple[str, Urls]]:
        served = [(b, Urls(b, f"{b}/_codeload")) for b in self.served_urls]
        return [(self.api_url, Urls(self.api_url, self.codeload_url)), *served]

    @property
    def served_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{s.server_port}" for s in self._served]

    def handle(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Response:
        """The one dispatch function behind both adapters."""
        method = method.upper()
        headers = {k.title(): v for k, v in headers.items()}
        url = _without_default_port(url)
        abandoned = self._hold_if_paused(method, url)  # outside the lock: others go on
        if abandoned is not None:
            return abandoned
        with self._lock:
            for _base, u in self._bases():
                if url.startswith(u.web + "/login/oauth/"):
                    split = urlsplit(url[len(u.web) :])
                    return self._oauth_web(method, split.path, split.query, headers, body)
            for _base, u in self._bases():
                if url.startswith(u.codeload + "/"):
                    return self._codeload(url[len(u.codeload) :])
            for base, u in self._bases():
                if url.startswith(base + "/"):
                    split = urlsplit(url[len(base) :])
                    return self._api(method, split.path, split.query, headers, body, u)
            return 404, {"Content-Type": "text/plain"}, b"no fake GitHub here"

    def _api(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes | None,
        u: Urls,
    ) -> Response:
        found = match(method, path)
        if found is None:
            msg = f"{method} {path}: not an operation of the trimmed OpenAPI description"
            return self._invalid(method, path, query, msg, None)
        route, raw_params = found
        params = {k: unquote(v) for k, v in raw_params.items()}
        validator = Validator(method, path, query, headers, body, route, raw_params)
        errors = validator.request_errors()
        if errors:
            return self._invalid(method, path, query, "\n".join(errors), route.pattern)

        fault = self._take_fault(method, path)
        if fault is not None and not fault.after:
            return self._finish(
                Call(method, path, query, fault.status, route.pattern, body),
                *self._fault_response(fault),
            )

        req = Req(
            method=method,
            path=path,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            params=params,
            body=json.loads(body) if body else None,
            u=u,
            link_base=f"{u.api}{path}",
        )
        try:
            self._authorize(req, headers, route.pattern)
            self._spend_rate(req)
            status, obj = _HANDLERS[(method, route.pattern)](self, req)
        except HttpError as e:
            status, obj = e.status, e.body
        resp_headers = {"Content-Type": "application/json; charset=utf-8", **req.extra_headers}
        data = b"" if obj is None else json.dumps(obj).encode()
        if method == "GET" and status == 200:
            status, resp_headers, data = self._conditional(req, headers, resp_headers, data)
        if self.validate_responses and fault is None:
            for err in validator.response_errors(status, resp_headers, data):
                self.response_errors.append(f"{method} {path} -> {status}: {err}")
        if fault is not None:
            status, resp_headers, data = self._fault_response(fault)
        return self._finish(
            Call(method, path, query, status, route.pattern, body), status, resp_headers, data
        )

    def _conditional(
        self, req: Req, headers: dict[str, str], resp_headers: dict[str, str], data: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """GitHub's conditional GETs: every 200 carries a (weak) ETag of its representation;
        a request whose `If-None-Match` names it gets `304 Not Modified`, no body, the rate
        headers, and is not counted against the rate limit."""
        etag = 'W/"' + hashlib.sha256(data).hexdigest()[:40] + '"'
        cache = {"ETag": etag, "Cache-Control": "private, max-age=60, s-maxage=60"}
        cache["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
        if not _etag_matches(headers.get("If-None-Match", ""), etag):
            return 200, {**resp_headers, **cache}, data
        self._refund_rate(req)
        rate = {k: v for k, v in req.extra_headers.items() if k.startswith("X-RateLimit-")}
        return 304, {**rate, **cache}, b""

    def _finish(self, call: Call, status: int, headers: dict[str, str], data: bytes) -> Response:
        self.calls.append(call)
        if status != 304:  # a 304 does not count against the rate limit
            self._rate_used += 1
        rid = f"FAKE:{len(self.calls):06X}"
        base = {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": str(max(0, 5000 - self._rate_used)),
            "X-RateLimit-Reset": str(now() + 3600),
            "X-RateLimit-Used": str(self._rate_used),
            "X-RateLimit-Resource": "core",
            "X-GitHub-Request-Id": rid,
            "X-GitHub-Api-Version-Selected": "2022-11-28",
        }
        return status, {**base, **headers}, data.replace(b"{rid}", rid.encode())

    def _invalid(
        self, method: str, path: str, query: str, msg: str, pattern: str | None
    ) -> Response:
        self.validation_errors.append(f"{method} {path}?{query}: {msg}")
        body = shapes.error(f"fake GitHub: request failed OpenAPI validation: {msg}")
        return self._finish(
            Call(method, path, query, VALIDATION_STATUS, pattern, None),
            VALIDATION_STATUS,
            {"Content-Type": "application/json"},
            json.dumps(body).encode(),
        )

    # -- faults ----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 502,
        count: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        *,
        after: bool = False,
    ) -> None:
        """The next `count` matching requests get `status`. With `after=True` the operation is
        performed first and only its response is replaced (a lost response)."""
        if body is None:
            body = shapes.error("Server Error" if status >= 500 else "Fault injected by the fake")
        with self._lock:
            self._faults.append(
                Fault(
                    method.upper(),
                    re.compile(path_regex),
                    status,
                    count,
                    headers or {},
                    body,
                    after,
                )
            )

    def rate_limit_next(
        self, method: str, path_regex: str, count: int = 1, retry_after: int = 1
    ) -> None:
        """GitHub's secondary rate limit: 403 with Retry-After."""
        self.fail_next(
            method,
            path_regex,
            status=403,
            count=count,
            headers={"Retry-After": str(retry_after)},
            body=shapes.error(
                SECONDARY_RATE_LIMIT,
                doc="https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            ),
        )

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.method == method and fault.path.search(path) and fault.count > 0:
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_response(fault: Fault) -> tuple[int, dict[str, str], bytes]:
        body = fault.body if isinstance(fault.body, bytes) else json.dumps(fault.body).encode()
        return (
            fault.status,
            {"Content-Type": "application/json; charset=utf-8", **fault.headers},
            body,
        )

    # -- pauses ----------------------------------------------------------------------------

    def pause_next(self, method: str, path_regex: str, *, timeout: float = 60.0) -> Pause:
        """Hold the next matching API request before it is performed until `release()`;
        `pause.reached` is set when it arrives. Other requests are served meanwhile.
        After `timeout` seconds without a release the request is abandoned (502)."""
        pause = Pause(method.upper(), re.compile(path_regex), timeout)
        with self._lock:
            self._pauses.append(pause)
        return pause

    def _hold_if_paused(self, method: str, url: str) -> Response | None:
        """Block a paused request; a response only if it was abandoned instead of performed."""
        if not self._pauses:
            return None
        path = next(
            (urlsplit(url[len(b) :]).path for b, _u in self._bases() if url.startswith(b + "/")),
            None,
        )
        if path is None:
            return None
        with self._lock:
            pause = next(
                (p for p in self._pauses if p.method == method and p.path.search(path)), None
            )
            if pause is None:
                return None
            self._pauses.remove(pause)
        pause.reached.set()
        if pause.released.wait(pause.timeout) and pause.perform:
            return None
        found = match(method, path)
        fault = Fault(method, pause.path, 502, 1, {}, shapes.error("Server Error"), False)
        with self._lock:
            return self._finish(
                Call(method, path, "", 502, found[0].pattern if found else None),
                *self._fault_response(fault),
            )

    # -- auth ------------------------------------------------------------------------------

    def _authorize(self, req: Req, headers: dict[str, str], pattern: str) -> None:
        scheme, _, cred = headers.get("Authorization", "").partition(" ")
        if not cred:
            raise HttpError(401, "Requires authentication")
        if (req.method, pattern) in APP_OPS:
            if scheme.lower() != "bearer":
                raise HttpError(401, "A JSON web token could not be decoded")
            try:
                claims = jwt.decode(
                    cred,
                    self.public_key_pem,
                    algorithms=["RS256"],
                    options={"require": ["exp", "iat", "iss"]},
                    leeway=0,
                )
            except jwt.PyJWTError as e:
                raise HttpError(401, f"A JSON web token could not be decoded: {e}") from e
            if str(claims["iss"]) != str(self.app_id):
                raise HttpError(401, "'Issuer' claim ('iss') must be an Integer")
            if claims["exp"] - claims["iat"] > 660:
                raise HttpError(401, "'Expiration time' claim ('exp') is too far in the future")
            self._resolve_repo(req)
            return
        if (req.method, pattern) in USER_OPS:
            user = self.user_tokens.get(cred) if scheme.lower() in ("token", "bearer") else None
            if user is None and cred in self.tokens:
                raise HttpError(403, "Resource not accessible by integration")
            if user is None or user[1] <= now():
                raise HttpError(401, "Bad credentials")
            req.user_login = user[0]
            return
        token = self.tokens.get(cred) if scheme.lower() in ("token", "bearer") else None
        if token is None or token[1] <= now():
            raise HttpError(401, "Bad credentials")
        req.installation_id = token[0]
        self._resolve_repo(req)
        if req.repo is not None and req.repo.installation_id != token[0]:
            raise HttpError(404, NOT_FOUND)

    def _resolve_repo(self, req: Req) -> None:
        if "owner" in req.params:
            key = f"{req.params['owner']}/{req.params['repo']}".lower()
            req.repo = self.repos.get(key)
            if req.repo is None:
                raise HttpError(404, NOT_FOUND)

    # -- per-installation rate limits --------------------------------------------------------

    def set_rate_limit(
        self, installation_id: int, remaining: int, *, limit: int = 5000, reset_in: int = 3600
    ) -> None:
        """From now on, requests with this installation's token count against a window of
        `limit` calls with `remaining` left, refilled `reset_in` seconds from now; answers
        carry its X-RateLimit-* headers, and once it is empty requests get GitHub's 403."""
        with self._lock:
            self.rate_windows[installation_id] = RateWindow(limit, remaining, now() + reset_in)

    def _spend_rate(self, req: Req) -> None:
        window = self.rate_windows.get(req.installation_id or -1)
        if window is None:
            return
        if now() >= window.reset:
            window.remaining, window.reset = window.limit, now() + 3600
        exhausted = window.remaining <= 0
        if not exhausted:
            window.remaining -= 1
        self._rate_headers(req, window)
        if exhausted:
            raise HttpError(
                403, f"API rate limit exceeded for installation ID {req.installation_id}."
            )

    def _refund_rate(self, req: Req) -> None:
        """A request answered 304 gives back what `_spend_rate` took."""
        window = self.rate_windows.get(req.installation_id or -1)
        if window is None:
            return
        window.remaining = min(window.limit, window.remaining + 1)
        self._rate_headers(req, window)

    @staticmethod
    def _rate_headers(req: Req, window: RateWindow) -> None:
        req.extra_headers.update(
            {
                "X-RateLimit-Limit": str(window.limit),
                "X-RateLimit-Remaining": str(window.remaining),
                "X-RateLimit-Reset": str(window.reset),
                "X-RateLimit-Used": str(window.limit - window.remaining),
                "X-RateLimit-Resource": "core",
            }
        )

    def revoke_tokens(self) -> None:
        """Expire every issued installation token (the next request gets 401)."""
        with self._lock:
            self.tokens.clear()

    # ------------------------------------------------------------------------------------
    # state helpers
    # ------------------------------------------------------------------------------------

    def _id(self) -> int:
        return next(self._ids)

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def _issue(self, r: Repo, number: int | str, *, pull: bool = False) -> Issue:
        i = r.issues.get(int(number))
        if i is None or (pull and i.pull is None):
            raise HttpError(404, NOT_FOUND)
        return i

    def _resolve(self, r: Repo, ref: str) -> str | None:
        """A branch, tag, full ref or (abbreviated) sha -> commit sha."""
        for cand in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
            if cand.startswith("-"):
                return None
            sha = r.git.rev_parse(cand)
            if sha:
                return sha
        return None

    def _bot_person(self) -> Person:
        uid = shapes.user_id(self.bot_login)
        return Person(self.bot_login, f"{uid}+{self.bot_login}@users.noreply.github.com", now())

    def _refresh(self, r: Repo, i: Issue) -> None:
        p = i.pull
        assert p is not None
        if i.state == "open":
            p.head_sha = r.git.rev_parse(f"refs/heads/{p.head_ref}") or p.head_sha
            p.base_sha = r.git.rev_parse(f"refs/heads/{p.base_ref}") or p.base_sha

    def _mergeable(self, r: Repo, i: Issue) -> bool | None:
        p = i.pull
        assert p is not None
        if p.mergeable_override != "auto":
            return p.mergeable_override  # type: ignore[return-value]
        if p.merged or i.state != "open":
            return None if p.merged else False
        return r.git.merge_trees(p.base_sha, p.head_sha) is not None

    def _pull_json(self, u: Urls, r: Repo, i: Issue, *, simple: bool = False) -> dict[str, Any]:
        self._refresh(r, i)
        assert i.pull is not None
        extra: dict[str, Any] = {}
        if not simple:
            mergeable = self._mergeable(r, i)
            base = r.git.merge_base(i.pull.base_sha, i.pull.head_sha) or i.pull.base_sha
            changes = r.git.diff(base, i.pull.head_sha)
            state = (
                "draft"
                if i.pull.draft
                else "unknown"
                if mergeable is None
                else "dirty"
                if not mergeable
                else "clean"
            )
            extra = {
                "mergeable": mergeable,
                "rebaseable": mergeable,
                "mergeable_state": state,
                "commits": len(r.git.log(f"{base}..{i.pull.head_sha}")),
                "additions": sum(c.additions for c in changes),
                "deletions": sum(c.deletions for c in changes),
                "changed_files": len(changes),
            }
        return shapes.pull(u, r, i, simple=simple, extra=extra)

    def _commit_json(self, u: Urls, r: Repo, sha: str, *, git: bool) -> dict[str, Any]:
        info = r.git.commit_info(sha)
        if info is None:
            raise HttpError(404, NOT_FOUND)
        signed = sha in self.signed_commits
        raw = r.git.raw_commit(sha) if signed else ""
        if git:
            return shapes.git_commit(u, r, info, signed, raw)
        return shapes.commit(u, r, info, signed, raw)

    def _page(self, req: Req, items: list[Any]) -> list[Any]:
        per_page = min(int(req.query.get("per_page", 30)), 100)
        page = max(int(req.query.get("page", 1)), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        links = []

        def link(n: int, rel: str) -> str:
            q = urlencode({**req.query, "page": n})
            return f'<{req.link_base}?{q}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        if links:
            req.extra_headers["Link"] = ", ".join(links)
        return items[(page - 1) * per_page : page * per_page]

    def _write_commit(
        self,
        r: Repo,
        tree: str,
        parents: list[str],
        message: str,
        author: Person,
        committer: Person | None,
    ) -> str:
        signed = committer is None
        committer = committer or Person("GitHub", "noreply@github.com", author.date)
        sha = r.git.commit_tree(tree, parents, message, author, committer)
        if signed:
            self.signed_commits.add(sha)
        return sha

    # ------------------------------------------------------------------------------------
    # operations (one handler per contract entry)
    # ------------------------------------------------------------------------------------

    @op("GET", "/repos/{owner}/{repo}/installation")
    def _get_installation(self, req: Req) -> tuple[int, Any]:
        assert req.repo
        return 200, shapes.installation(req.u, req.repo, self.app_info)

    @op("POST", "/app/installations/{installation_id}/access_tokens")
    def _create_token(self, req: Req) -> tuple[int, Any]:
        inst = int(req.params["installation_id"])
        if not any(r.installation_id == inst for r in self.repos.values()):
            raise HttpError(404, NOT_FOUND)
        token = "ghs_" + secrets.token_urlsafe(27)[:36]
        expires = now() + 3600
        self.tokens[token] = (inst, expires)
        body = {
            "token": token,
            "expires_at": iso(expires),
            "permissions": shapes.APP_PERMISSIONS,
            "repository_selection": "selected",
        }
        return 201, body

    @op("GET", "/repos/{owner}/{repo}")
    def _get_repo(self, req: Req) -> tuple[int, Any]:
        assert req.repo
        return 200, shapes.repository(req.u, req.repo, full=True)

    @op("GET", "/repos/{owner}/{repo}/git/ref/{ref}")
    def _get_ref(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        full = f"refs/{req.params['ref']}"
        sha = r.git.refs().get(full)
        if sha is None:
            raise HttpError(404, NOT_FOUND)
        return 200, shapes.git_ref(req.u, r, full, sha)

    @op("GET", "/repos/{owner}/{repo}/tarball/{ref}")
    def _tarball(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        sha = self._resolve(r, req.params["ref"])
        if sha is None:
            raise HttpError(404, NOT_FOUND)
        token = secrets.token_hex(16)
        self._archives[token] = (r.full_name.lower(), sha)
        ref = quote(req.params["ref"], safe="/")
        req.extra_headers["Location"] = (
            f"{req.u.codeload}/{r.full_name}/legacy.tar.gz/{ref}?token={token}"
        )
        return 302, None

    def _codeload(self, path: str) -> Response:
        split = urlsplit(path)
        token = dict(parse_qsl(split.query)).get("token", "")
        found = self._archives.get(token)
        if found is None:
            return 404, {"Content-Type": "text/plain"}, b"404: Not Found"
        r = self.repos[found[0]]
        prefix = f"{r.owner}-{r.name}-{found[1][:7]}"
        data = r.git.archive_targz(found[1], prefix + "/")
        headers = {
            "Content-Type": "application/x-gzip",
            "Content-Disposition": f"attachment; filename={prefix}.tar.gz",
            "ETag": f'"{found[1]}"',
        }
        return 200, headers, data

    @op("GET", "/repos/{owner}/{repo}/contents/{path}")
    def _get_contents(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        ref = req.query.get("ref") or r.default_branch
        sha = self._resolve(r, ref)
        path = req.params["path"].strip("/")
        entry = r.git.entry(sha, path) if sha else None
        if entry is None or sha is None:
            raise HttpError(404, NOT_FOUND)
        _mode, typ, obj = entry
        if typ == "blob":
            return 200, shapes.content(req.u, r, ref, path, "file", obj, r.git.read_blob(obj))
        listing = []
        for _m, t, s, name in r.git.ls_tree(obj, recursive=False):
            kind = "file" if t == "blob" else "dir" if t == "tree" else "submodule"
            child = f"{path}/{name}"
            size = len(r.git.read_blob(s)) if t == "blob" else 0
            item = shapes.content(req.u, r, ref, child, kind, s, None)
            item["size"] = size
            listing.append(item)
        return 200, listing

    @op("POST", "/repos/{owner}/{repo}/git/trees")
    def _create_tree(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        base = req.body.get("base_tree")
        if base and r.git.object_type(base) not in ("tree", "commit"):
            raise _unprocessable("base_tree is not a valid tree oid")
        base_tree = r.git.tree_of(base) if base else None
        changes: list[tuple[str, str | None, str | None]] = []
        for e in req.body["tree"]:
            path, mode = e.get("path"), e.get("mode")
            if not path:
                raise _unprocessable("Must supply a valid tree.path")
            if "content" in e and e.get("sha") is not None:
                raise _unprocessable("Must supply either tree.sha or tree.content, not both")
            if "content" in e:
                changes.append((path, mode, r.git.hash_blob(e["content"].encode())))
            elif e.get("sha") is None and "sha" in e:
                changes.append((path, None, None))
            elif e.get("type") == "tree" or mode == "040000":
                if r.git.object_type(e["sha"]) != "tree":
                    raise _unprocessable(f"tree.sha {e['sha']} is not a valid tree")
                if base_tree and r.git.entry(base_tree, path):
                    changes.append((path, None, None))  # the given tree replaces what was there
                for m, _t, s, p in r.git.ls_tree(e["sha"]):
                    changes.append((f"{path}/{p}", m, s))
            else:
                if r.git.object_type(str(e.get("sha"))) != "blob":
                    raise _unprocessable(f"tree.sha {e.get('sha')} is not a valid blob")
                changes.append((path, mode, e["sha"]))
        try:
            sha = r.git.build_tree(base_tree, changes)
        except KeyError as e:
            raise _unprocessable(
                f"GitRPC::BadObjectState: path {e.args[0]!r} does not exist"
            ) from e
        entries = []
        for m, t, s, p in r.git.ls_tree(sha, recursive=False):
            entries.append((m, t, s, p, len(r.git.read_blob(s)) if t == "blob" else None))
        return 201, shapes.tree(req.u, r, sha, entries)

    @op("POST", "/repos/{owner}/{repo}/git/commits")
    def _create_commit(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        b = req.body
        if r.git.object_type(b["tree"]) != "tree":
            raise _unprocessable("Tree SHA does not exist")
        for p in b.get("parents", []):
            if r.git.object_type(p) != "commit":
                raise _unprocessable("Parent SHA does not exist or is not a commit object")

        def person(d: dict[str, Any] | None) -> Person | None:
            if not d:
                return None
            return Person(d["name"], d["email"], _parse_ts(d["date"]) if d.get("date") else now())

        author = person(b.get("author")) or self._bot_person()
        committer = person(b.get("committer"))
        if committer is None and b.get("author"):
            committer = author  # GitHub uses the author as committer when only author is given
        sha = self._write_commit(
            r, b["tree"], list(b.get("parents", [])), b["message"], author, committer
        )
        return 201, self._commit_json(req.u, r, sha, git=True)

    @op("GET", "/repos/{owner}/{repo}/git/commits/{commit_sha}")
    def _get_commit(self, req: Req) -> tuple[int, Any]:
        assert req.repo
        return 200, self._commit_json(req.u, req.repo, req.params["commit_sha"], git=True)

    @op("POST", "/repos/{owner}/{repo}/git/refs")
    def _create_ref(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        ref, sha = req.body["ref"], req.body["sha"]
        if not ref.startswith("refs/") or ref.count("/") < 2:
            raise _unprocessable("Reference name is invalid")
        if r.git.object_type(sha) != "commit":
            raise _unprocessable("Object does not exist")
        if ref in r.git.refs():
            raise _unprocessable("Reference already exists")
        r.git.update_ref(ref, sha)
        return 201, shapes.git_ref(req.u, r, ref, sha)

    @op("PATCH", "/repos/{owner}/{repo}/git/refs/{ref}")
    def _update_ref(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        ref = f"refs/{req.params['ref']}"
        sha, force = req.body["sha"], bool(req.body.get("force", False))
        current = r.git.refs().get(ref)
        if current is None:
            raise _unprocessable("Reference does not exist")
        if r.git.object_type(sha) != "commit":
            raise _unprocessable("Object does not exist")
        if not force and not r.git.is_ancestor(current, sha):
            raise _unprocessable("Update is not a fast forward")
        r.git.update_ref(ref, sha, current)
        return 200, shapes.git_ref(req.u, r, ref, sha)

    @op("GET", "/repos/{owner}/{repo}/commits")
    def _list_commits(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        start = self._resolve(r, req.query.get("sha") or r.default_branch)
        if start is None:
            raise HttpError(404, "No commit found for SHA: " + req.query.get("sha", ""))
        shas = r.git.log(start, req.query.get("path") or None)
        return 200, [self._commit_json(req.u, r, s, git=False) for s in self._page(req, shas)]

    # -- pulls -----------------------------------------------------------------------------

    @op("GET", "/repos/{owner}/{repo}/pulls")
    def _list_pulls(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        state = req.query.get("state", "open")
        head = req.query.get("head")
        base = req.query.get("base")
        out = []
        for i in sorted(r.issues.values(), key=lambda i: -i.number):
            if i.pull is None or (state != "all" and i.state != state):
                continue
            # like GitHub: a head filter without "owner:" is ignored
            if head and ":" in head and f"{r.owner}:{i.pull.head_ref}".lower() != head.lower():
                continue
            if base and i.pull.base_ref != base:
                continue
            out.append(i)
        return 200, [self._pull_json(req.u, r, i, simple=True) for i in self._page(req, out)]

    @op("POST", "/repos/{owner}/{repo}/pulls")
    def _create_pull(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        b = req.body
        head = b["head"].split(":", 1)[-1]
        base = b["base"]
        number = self._new_pull(
            r, head, base, b.get("title", ""), b.get("body"), self.bot_login, bool(b.get("draft"))
        )
        return 201, self._pull_json(req.u, r, r.issues[number])

    def _new_pull(
        self, r: Repo, head: str, base: str, title: str, body: str | None, user: str, draft: bool
    ) -> int:
        head_sha = r.git.rev_parse(f"refs/heads/{head}")
        base_sha = r.git.rev_parse(f"refs/heads/{base}")
        if base_sha is None:
            raise _unprocessable(
                "Validation Failed",
                errors=[{"resource": "PullRequest", "field": "base", "code": "invalid"}],
            )
        if head_sha is None:
            raise _unprocessable(
                "Validation Failed",
                errors=[{"resource": "PullRequest", "field": "head", "code": "invalid"}],
            )
        for other in r.issues.values():
            if (
                other.pull
                and other.state == "open"
                and (other.pull.head_ref, other.pull.base_ref) == (head, base)
            ):
                raise _unprocessable(
                    "Validation Failed",
                    errors=[
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {r.owner}:{head}.",
                        }
                    ],
                )
        if r.git.is_ancestor(head_sha, base_sha):
            raise _unprocessable(
                "Validation Failed",
                errors=[
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"No commits between {base} and {head}",
                    }
                ],
            )
        _check_body(body, "PullRequest")
        number = r.next_number()
        t = now()
        r.issues[number] = Issue(
            number=number, id=self._id(), title=title, body=body, user=user, created_at=t,
            updated_at=t,
            pull=Pull(id=self._id(), head_ref=head, base_ref=base, head_sha=head_sha,
                      base_sha=base_sha, draft=draft),
        )  # fmt: skip
        return number

    @op("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")
    def _get_pull(self, req: Req) -> tuple[int, Any]:
        assert req.repo
        i = self._issue(req.repo, req.params["pull_number"], pull=True)
        return 200, self._pull_json(req.u, req.repo, i)

    @op("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}")
    def _update_pull(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        i = self._issue(r, req.params["pull_number"], pull=True)
        assert i.pull
        b = req.body or {}
        if "body" in b:
            _check_body(b["body"], "PullRequest")
            i.body = b["body"]
        if "title" in b:
            i.title = b["title"]
        if "base" in b:
            if r.git.rev_parse(f"refs/heads/{b['base']}") is None:
                raise _unprocessable(
                    "Validation Failed",
                    errors=[{"resource": "PullRequest", "field": "base", "code": "invalid"}],
                )
            i.pull.base_ref = b["base"]
        if b.get("state") == "closed" and i.state == "open":
            self._refresh(r, i)
            i.state, i.closed_at = "closed", now()
        elif b.get("state") == "open" and i.state == "closed":
            if i.pull.merged:
                raise _unprocessable(
                    "Validation Failed",
                    errors=[
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": "state cannot be changed. The pull request has been merged.",
                        }
                    ],
                )
            i.state, i.closed_at = "open", None
        i.updated_at = now()
        return 200, self._pull_json(req.u, r, i)

    @op("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/files")
    def _pull_files(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        i = self._issue(r, req.params["pull_number"], pull=True)
        assert i.pull
        self._refresh(r, i)
        base = r.git.merge_base(i.pull.base_sha, i.pull.head_sha) or i.pull.base_sha
        changes = r.git.diff(base, i.pull.head_sha)[:PR_FILES_LIMIT]  # GitHub lists no more
        return 200, [
            shapes.diff_entry(req.u, r, i.pull.head_sha, c) for c in self._page(req, changes)
        ]

    @op("GET", "/repos/{owner}/{repo}/compare/{basehead}")
    def _compare(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        base_rev, sep, head_rev = req.params["basehead"].partition("...")
        base, head = self._resolve(r, base_rev), self._resolve(r, head_rev)
        if not sep or base is None or head is None:
            raise HttpError(404, NOT_FOUND)
        merge_base = r.git.merge_base(base, head) or base
        ahead = list(reversed(r.git.log(f"{merge_base}..{head}")))  # oldest first, as GitHub
        behind = r.git.log(f"{merge_base}..{base}")
        status = (
            "identical" if base == head
            else "ahead" if not behind
            else "behind" if not ahead
            else "diverged"
        )  # fmt: skip
        api = f"{req.u.api}/repos/{r.full_name}"
        web = f"{req.u.web}/{r.full_name}"
        spec = req.params["basehead"]
        return 200, {
            "url": f"{api}/compare/{spec}",
            "html_url": f"{web}/compare/{spec}",
            "permalink_url": f"{web}/compare/{r.owner}:{base}...{r.owner}:{head}",
            "diff_url": f"{web}/compare/{spec}.diff",
            "patch_url": f"{web}/compare/{spec}.patch",
            "base_commit": self._commit_json(req.u, r, base, git=False),
            "merge_base_commit": self._commit_json(req.u, r, merge_base, git=False),
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": len(behind),
            "total_commits": len(ahead),
            "commits": [
                self._commit_json(req.u, r, sha, git=False) for sha in ahead[:COMPARE_COMMITS_LIMIT]
            ],
            "files": [
                shapes.diff_entry(req.u, r, head, c)
                for c in r.git.diff(merge_base, head)[:COMPARE_FILES_LIMIT]
            ],
        }

    @op("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews")
    def _pull_reviews(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        i = self._issue(r, req.params["pull_number"], pull=True)
        assert i.pull
        return 200, [
            shapes.review(req.u, r, i.number, rv) for rv in self._page(req, i.pull.reviews)
        ]

    @op("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge")
    def _merge_pull(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        i = self._issue(r, req.params["pull_number"], pull=True)
        b = req.body or {}
        sha = self._merge(r, i, self.bot_login, b.get("merge_method", "merge"), b.get("sha"),
                          b.get("commit_title"), b.get("commit_message"))  # fmt: skip
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}

    def _merge(
        self, r: Repo, i: Issue, user: str, method: str, expected_sha: str | None,
        title: str | None, message: str | None,
    ) -> str:  # fmt: skip
        p = i.pull
        assert p is not None
        self._refresh(r, i)
        if i.state != "open" or p.merged:
            raise HttpError(405, "Pull Request is not mergeable")
        if p.draft:
            raise HttpError(405, "Pull Request is still a draft")
        if expected_sha and expected_sha != p.head_sha:
            raise HttpError(409, HEAD_MODIFIED)
        if not self._mergeable(r, i):
            raise HttpError(405, "Pull Request is not mergeable")
        base_tip = p.base_sha
        tree = r.git.merge_trees(base_tip, p.head_sha)
        if tree is None:
            raise HttpError(405, "Merge conflict")
        uid = shapes.user_id(i.user)
        author = Person(i.user, f"{uid}+{i.user}@users.noreply.github.com", now())
        if method == "merge":
            parents = [base_tip, p.head_sha]
            msg = title or f"Merge pull request #{i.number} from {r.owner}/{p.head_ref}"
            msg += "\n\n" + (message if message is not None else i.title)
            author = Person(user, f"{shapes.user_id(user)}+{user}@users.noreply.github.com", now())
        else:  # squash; "rebase" is approximated by a squash commit
            parents = [base_tip]
            subjects = [
                r.git.commit_info(s).message.split("\n", 1)[0]  # type: ignore[union-attr]
                for s in r.git.log(f"{p.base_sha}..{p.head_sha}")
            ]
            msg = (title or f"{i.title} (#{i.number})") + "\n\n"
            msg += (
                message
                if message is not None
                else "\n\n".join(f"* {s}" for s in reversed(subjects))
            )
        new = self._write_commit(r, tree, parents, msg.rstrip("\n"), author, None)
        r.logins_by_email[author.email] = author.name
        r.git.update_ref(f"refs/heads/{p.base_ref}", new, base_tip)
        t = now()
        p.merged, p.merged_at, p.merged_by, p.merge_commit_sha = True, t, user, new
        i.state, i.closed_at, i.updated_at = "closed", t, t
        return new

    # -- issues and comments ---------------------------------------------------------------

    @op("GET", "/repos/{owner}/{repo}/issues/{issue_number}")
    def _get_issue(self, req: Req) -> tuple[int, Any]:
        assert req.repo
        return 200, shapes.issue(req.u, req.repo, self._issue(req.repo, req.params["issue_number"]))

    @op("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
    def _list_comments(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        i = self._issue(r, req.params["issue_number"])
        items = [c for c in r.comments.values() if c.issue_number == i.number]
        return 200, [shapes.comment(req.u, r, c, self.app_info) for c in self._page(req, items)]

    @op("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
    def _create_comment(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        i = self._issue(r, req.params["issue_number"])
        cid = self._add_comment(r, i.number, self.bot_login, req.body["body"], via_app=True)
        return 201, shapes.comment(req.u, r, r.comments[cid], self.app_info)

    def _add_comment(self, r: Repo, number: int, user: str, body: str, via_app: bool) -> int:
        _check_body(body, "IssueComment")
        t = now()
        c = Comment(self._id(), number, body, user, t, t, via_app=via_app)
        r.comments[c.id] = c
        r.issues[number].updated_at = t
        return c.id

    def _comment(self, req: Req) -> Comment:
        assert req.repo
        c = req.repo.comments.get(int(req.params["comment_id"]))
        if c is None:
            raise HttpError(404, NOT_FOUND)
        return c

    @op("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
    def _update_comment(self, req: Req) -> tuple[int, Any]:
        c = self._comment(req)
        _check_body(req.body["body"], "IssueComment")
        c.body, c.updated_at = req.body["body"], now()
        assert req.repo
        return 200, shapes.comment(req.u, req.repo, c, self.app_info)

    @op("DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
    def _delete_comment(self, req: Req) -> tuple[int, Any]:
        c = self._comment(req)
        assert req.repo
        del req.repo.comments[c.id]
        return 204, None

    @op("POST", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
    def _add_reaction(self, req: Req) -> tuple[int, Any]:
        c = self._comment(req)
        content = req.body["content"]
        for x in c.reactions:
            if (x.user, x.content) == (self.bot_login, content):
                return 200, shapes.reaction(req.u, x)
        x = Reaction(self._id(), self.bot_login, content, now())
        c.reactions.append(x)
        return 201, shapes.reaction(req.u, x)

    @op("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels")
    def _add_labels(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        i = self._issue(r, req.params["issue_number"])
        raw = req.body["labels"] if isinstance(req.body, dict) else req.body
        for item in raw or []:
            name = item["name"] if isinstance(item, dict) else item
            r.labels.setdefault(name, self._id())
            if name not in i.labels:
                i.labels.append(name)
        return 200, [shapes.label(req.u, r, n, r.labels[n]) for n in i.labels]

    # -- checks and statuses ---------------------------------------------------------------

    def _check_run_json(self, u: Urls, r: Repo, c: CheckRun) -> dict[str, Any]:
        prs = []
        for i in r.issues.values():
            if i.pull and i.state == "open":
                self._refresh(r, i)
                if i.pull.head_sha == c.head_sha:
                    prs.append(shapes.pull_minimal(u, r, i))
        return shapes.check_run(u, r, c, prs)

    def _apply_check(self, c: CheckRun, b: dict[str, Any]) -> None:
        out = b.get("output") or {}
        for key in ("summary", "text"):
            if len(out.get(key) or "") > MAX_CHECK_TEXT:
                raise _unprocessable(
                    f"Invalid request.\n\nOnly {MAX_CHECK_TEXT} characters are allowed; "
                    f"{len(out[key])} were supplied."
                )
        if out:
            c.output = {**c.output, **out}
        for key in ("name", "details_url", "external_id"):
            if key in b:
                setattr(c, key, b[key])
        if "status" in b:
            c.status = b["status"]
        if "started_at" in b:
            c.started_at = _parse_ts(b["started_at"])
        if b.get("conclusion"):
            c.conclusion, c.status = b["conclusion"], "completed"
            c.completed_at = _parse_ts(b["completed_at"]) if b.get("completed_at") else now()
        elif c.status == "completed" and not c.conclusion:
            raise _unprocessable(
                "Invalid request.\n\nconclusion is required when status is completed."
            )

    @op("POST", "/repos/{owner}/{repo}/check-runs")
    def _create_check(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        b = req.body
        if r.git.object_type(b["head_sha"]) != "commit":
            raise _unprocessable(f"No commit found for SHA: {b['head_sha']}")
        c = CheckRun(self._id(), self._suite_id(r, b["head_sha"]), b["head_sha"], b["name"],
                     "queued", None, self.app_info, now(), None)  # fmt: skip
        self._apply_check(c, b)
        r.check_runs[c.id] = c
        return 201, self._check_run_json(req.u, r, c)

    def _suite_id(self, r: Repo, sha: str) -> int:
        return 7_000_000 + int(sha[:6], 16)

    @op("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}")
    def _update_check(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        c = r.check_runs.get(int(req.params["check_run_id"]))
        if c is None:
            raise HttpError(404, NOT_FOUND)
        if c.app["id"] != self.app_id:
            raise HttpError(
                403,
                f"Invalid app_id `{self.app_id}` - check run can only be modified by "
                "the GitHub App that created it.",
            )
        self._apply_check(c, req.body)
        return 200, self._check_run_json(req.u, r, c)

    @op("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs")
    def _list_checks(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        sha = self._resolve(r, req.params["ref"])
        if sha is None:
            raise _unprocessable(f"No commit found for SHA: {req.params['ref']}")
        runs = sorted((c for c in r.check_runs.values() if c.head_sha == sha), key=lambda c: -c.id)
        if req.query.get("filter", "latest") == "latest":
            seen: set[str] = set()
            runs = [c for c in runs if not (c.name in seen or seen.add(c.name))]  # type: ignore[func-returns-value]
        if "check_name" in req.query:
            runs = [c for c in runs if c.name == req.query["check_name"]]
        if "status" in req.query:
            runs = [c for c in runs if c.status == req.query["status"]]
        page = self._page(req, runs)
        return 200, {
            "total_count": len(runs),
            "check_runs": [self._check_run_json(req.u, r, c) for c in page],
        }

    @op("GET", "/repos/{owner}/{repo}/commits/{ref}/status")
    def _combined_status(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        sha = self._resolve(r, req.params["ref"])
        if sha is None:
            raise HttpError(404, f"No commit found for SHA: {req.params['ref']}")
        latest: dict[str, Status] = {}
        for s in sorted((s for s in r.statuses if s.sha == sha), key=lambda s: s.id):
            latest[s.context] = s
        states = {s.state for s in latest.values()}
        state = (
            "failure" if states & {"failure", "error"}
            else "pending" if not states or "pending" in states
            else "success"
        )  # fmt: skip
        api = f"{req.u.api}/repos/{r.full_name}"
        return 200, {
            "state": state,
            "statuses": [shapes.status(req.u, r, s) for s in latest.values()],
            "sha": sha,
            "total_count": len(latest),
            "repository": shapes.repository(req.u, r),
            "commit_url": f"{api}/commits/{sha}",
            "url": f"{api}/commits/{sha}/status",
        }

    # -- deployments -----------------------------------------------------------------------

    @op("POST", "/repos/{owner}/{repo}/deployments")
    def _create_deployment(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        b = req.body
        sha = self._resolve(r, b["ref"])
        if sha is None:
            raise _unprocessable(f"No ref found for: {b['ref']}")
        required = b.get("required_contexts")
        if required is None or required:
            latest: dict[str, str] = {}
            for status in sorted((x for x in r.statuses if x.sha == sha), key=lambda x: x.id):
                latest[status.context] = status.state
            wanted = required if required is not None else list(latest)
            failing = [c for c in wanted if latest.get(c) != "success"]
            if failing:
                raise HttpError(409, f"Conflict: Commit status checks failed for {b['ref']}.")
        environment = b.get("environment", "production")
        payload = b.get("payload", "")
        if isinstance(payload, str) and payload:
            try:
                payload = json.loads(payload)
            except ValueError:
                raise _unprocessable("Invalid request.\n\npayload is not valid JSON.") from None
        d = Deployment(
            self._id(),
            sha,
            b["ref"],
            b.get("task", "deploy"),
            environment,
            payload if payload != "" else {},
            b.get("description", ""),
            self.bot_login,
            now(),
            transient_environment=bool(b.get("transient_environment", False)),
            production_environment=bool(
                b.get("production_environment", environment == "production")
            ),
        )
        self.deployment_requests.append((r.full_name, dict(b)))
        r.deployments[d.id] = d
        return 201, shapes.deployment(req.u, r, d, self.app_info)

    @op("GET", "/repos/{owner}/{repo}/deployments")
    def _list_deployments(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        items = sorted(r.deployments.values(), key=lambda d: -d.id)  # newest first
        for key in ("sha", "ref", "task", "environment"):
            if key in req.query:
                items = [d for d in items if getattr(d, key) == req.query[key]]
        return 200, [shapes.deployment(req.u, r, d, self.app_info) for d in self._page(req, items)]

    def _deployment(self, req: Req) -> Deployment:
        assert req.repo
        d = req.repo.deployments.get(int(req.params["deployment_id"]))
        if d is None:
            raise HttpError(404, NOT_FOUND)
        return d

    @op("POST", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses")
    def _create_deployment_status(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        d = self._deployment(req)
        b = req.body
        description = b.get("description", "")
        if len(description) > 140:
            raise _unprocessable(
                "Validation Failed",
                errors=[{"resource": "DeploymentStatus", "code": "custom", "field": "description",
                         "message": "description is too long (maximum is 140 characters)"}],
            )  # fmt: skip
        log_url = b.get("log_url", b.get("target_url", ""))
        status = DeploymentStatus(
            self._id(),
            b["state"],
            description,
            b.get("environment", d.environment),
            log_url,
            b.get("environment_url", ""),
            self.bot_login,
            now(),
        )
        d.statuses.append(status)
        if status.state == "success" and b.get("auto_inactive", True):
            # GitHub: prior non-transient, non-production deployments of the environment that
            # had a success state get an `inactive` status
            for other in r.deployments.values():
                if (
                    other.id < d.id
                    and other.environment == d.environment
                    and not other.transient_environment
                    and not other.production_environment
                    and other.statuses
                    and other.statuses[-1].state == "success"
                ):
                    other.statuses.append(
                        DeploymentStatus(
                            self._id(),
                            "inactive",
                            "",
                            other.environment,
                            "",
                            "",
                            self.bot_login,
                            now(),
                        )
                    )
        return 201, shapes.deployment_status(req.u, r, d, status, self.app_info)

    @op("GET", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses")
    def _list_deployment_statuses(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        d = self._deployment(req)
        items = sorted(d.statuses, key=lambda s: -s.id)  # newest first
        return 200, [
            shapes.deployment_status(req.u, r, d, s, self.app_info) for s in self._page(req, items)
        ]

    # -- authorisation ---------------------------------------------------------------------

    @op("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission")
    def _permission(self, req: Req) -> tuple[int, Any]:
        r = req.repo
        assert r
        login = req.params["username"]
        role = r.permissions.get(login, "none")
        collaborator = {
            **shapes.user(req.u, login),
            "role_name": role,
            "permissions": {
                "admin": role == "admin",
                "maintain": role in ("admin", "maintain"),
                "push": role in ("admin", "maintain", "write"),
                "triage": role in ("admin", "maintain", "write", "triage"),
                "pull": role != "none",
            },
        }
        return 200, {"permission": PERMISSION_LEVEL[role], "role_name": role, "user": collaborator}

    @op("GET", "/orgs/{org}/teams/{team_slug}/memberships/{username}")
    def _membership(self, req: Req) -> tuple[int, Any]:
        p = req.params
        role = self.teams.get((p["org"].lower(), p["team_slug"].lower()), {}).get(p["username"])
        if role is None:
            raise HttpError(404, NOT_FOUND)
        org_id, team_id = shapes.user_id(p["org"]), shapes.user_id(p["team_slug"])
        url = f"{req.u.api}/organizations/{org_id}/team/{team_id}/memberships/{p['username']}"
        return 200, {"url": url, "role": role, "state": "active"}


op("GET", "/user")(OAuthMixin._get_user)
op("GET", "/user/installations")(OAuthMixin._list_user_installations)
op("GET", "/user/installations/{installation_id}/repositories")(
    OAuthMixin._list_user_installation_repos
)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of `If-None-Match` (a list of tags, or `*`) with etag."""
    wanted = if_none_match.strip()
    if not wanted:
        return False
    if wanted == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in wanted.split(","))


def _without_default_port(url: str) -> str:
    split = urlsplit(url)
    if (split.scheme, split.port) in (("https", 443), ("http", 80)):
        split = split._replace(netloc=split.hostname or "")
    return split.geturl()


def _check_body(body: str | None, resource: str) -> None:
    if body is not None and len(body) > MAX_BODY:
        raise _unprocessable(
            "Validation Failed",
            errors=[{"resource": resource, "code": "custom", "field": "body",
                     "message": f"body is too long (maximum is {MAX_BODY} characters)"}],
        )  # fmt: skip


def _parse_ts(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
