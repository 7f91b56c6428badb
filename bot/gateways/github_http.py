"""HTTP plumbing for the GitHub gateway: request counting, error mapping, bounded retries."""

from __future__ import annotations

import functools
import re
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from github.GithubException import GithubException
from github.Requester import (
    HTTPRequestsConnectionClass,
    HTTPSRequestsConnectionClass,
    Requester,
    RequestsResponse,
)

from bot.core.errors import BotError, TransientError
from bot.core.github_port import GitHubError
from bot.gateways.github_etags import ConditionalGets
from bot.gateways.rate_budget import InstallationBudget

T = TypeVar("T")

MAX_RETRY_AFTER = (
    60.0  # seconds we are willing to sleep inside one job; longer waits go to the queue
)


# --------------------------------------------------------------------------- counting

# The operations of notes/GITHUB_CONTRACT.md; a concrete path is counted under its template.
_TEMPLATES = [
    "/repos/{owner}/{repo}/installation",
    "/app/installations/{installation_id}/access_tokens",
    "/repos/{owner}/{repo}",
    "/repos/{owner}/{repo}/git/ref/{ref*}",
    "/repos/{owner}/{repo}/git/refs/{ref*}",
    "/repos/{owner}/{repo}/git/refs",
    "/repos/{owner}/{repo}/tarball/{ref*}",
    "/repos/{owner}/{repo}/contents/{path*}",
    "/repos/{owner}/{repo}/git/trees",
    "/repos/{owner}/{repo}/git/commits",
    "/repos/{owner}/{repo}/git/commits/{commit_sha}",
    "/repos/{owner}/{repo}/commits",
    "/repos/{owner}/{repo}/pulls",
    "/repos/{owner}/{repo}/pulls/{pull_number}",
    "/repos/{owner}/{repo}/pulls/{pull_number}/files",
    "/repos/{owner}/{repo}/compare/{basehead}",
    "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
    "/repos/{owner}/{repo}/pulls/{pull_number}/merge",
    "/repos/{owner}/{repo}/issues/{issue_number}",
    "/repos/{owner}/{repo}/issues/{issue_number}/comments",
    "/repos/{owner}/{repo}/issues/comments/{comment_id}",
    "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
    "/repos/{owner}/{repo}/issues/{issue_number}/labels",
    "/repos/{owner}/{repo}/check-runs",
    "/repos/{owner}/{repo}/check-runs/{check_run_id}",
    "/repos/{owner}/{repo}/commits/{ref}/check-runs",
    "/repos/{owner}/{repo}/commits/{ref}/status",
    "/repos/{owner}/{repo}/collaborators/{username}/permission",
    "/orgs/{org}/teams/{team_slug}/memberships/{username}",
]


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z_]+\*?\})", template)
    out = []
    for part in parts:
        if part.startswith("{"):
            out.append(".+" if part.endswith("*}") else "[^/]+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


# Fixed-segment templates first so "/issues/comments/1" never matches "/issues/{issue_number}".
_MATCHERS = sorted(
    ((_compile(t), t.replace("*}", "}")) for t in _TEMPLATES),
    key=lambda mt: (mt[1].count("{"), -len(mt[1])),
)
_REPO_BY_ID = re.compile(r"^/repositories/\d+")  # pagination links use repository ids


def path_template(path: str) -> str:
    """`/repos/o/r/pulls/7` -> `/repos/{owner}/{repo}/pulls/{pull_number}` (unknown: as is)."""
    path = _REPO_BY_ID.sub("/repos/{owner}/{repo}", path.split("?", 1)[0])
    if path.startswith("/repos/{owner}/{repo}"):
        path = "/repos/o/r" + path[len("/repos/{owner}/{repo}") :]
    for pattern, template in _MATCHERS:
        if pattern.fullmatch(path):
            return template
    return path


class CallCounter:
    """Counts every HTTP request by "METHOD /path-template" (plus "total") and the rate limit."""

    def __init__(self, api_prefix: str) -> None:
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()  # "200", "304" (conditional GETs), "error", ...
        self.rate_limit_remaining: int | None = None
        self._prefix = api_prefix.rstrip("/")  # "/api/v3" on GitHub Enterprise, "" on github.com
        self._lock = threading.Lock()
        # called with (operation label, HTTP status or "error") for every request: metrics
        self.listener: Callable[[str, str], None] | None = None
        # the installation's rate budget (`rate_budget.attach` sets it): checked before each
        # request, fed by each response's rate-limit headers
        self.budget: InstallationBudget | None = None

    def record(
        self, method: str, path: str, headers: Mapping[str, Any] | None, status: str = "error"
    ) -> None:
        if self._prefix and path.startswith(self._prefix + "/"):
            path = path[len(self._prefix) :]
        self.record_label(f"{method.upper()} {path_template(path)}", headers, status)

    def record_label(
        self, label: str, headers: Mapping[str, Any] | None, status: str = "error"
    ) -> None:
        remaining = None
        if headers:
            lowered = {str(k).lower(): v for k, v in headers.items()}
            raw = lowered.get("x-ratelimit-remaining")
            if raw is not None:
                try:
                    remaining = int(float(raw))
                except ValueError:
                    remaining = None
        with self._lock:
            self.calls[label] += 1
            self.calls["total"] += 1
            self.statuses[status] += 1
            if remaining is not None:
                self.rate_limit_remaining = remaining
        if self.budget is not None:
            self.budget.observe(headers, status)
        if self.listener is not None:
            self.listener(label, status)

    def writes(self) -> int:
        return sum(n for k, n in self.calls.items() if k != "total" and not k.startswith("GET "))


class _CountingConnection:
    """Sends like PyGithub's connection classes, counting each request; the URL is canonical
    (no explicit default port), which is what `responses` and proxies expect to see.

    With `_conditional`, a GET whose earlier 200 carried a validator asks again with it; a
    304 is counted as what it is (free of rate budget) and handed on as that 200."""

    protocol: str
    host: str
    port: int
    verb: str
    url: str
    input: Any
    headers: dict[str, str]
    timeout: Any
    verify: Any
    session: requests.Session
    _counter: CallCounter
    _conditional: ConditionalGets | None

    def getresponse(self) -> RequestsResponse:
        default_port = 443 if self.protocol == "https" else 80
        netloc = self.host if self.port == default_port else f"{self.host}:{self.port}"
        url = f"{self.protocol}://{netloc}{self.url}"
        send = getattr(self.session, self.verb.lower())
        headers = self.headers
        conditional = self._conditional
        key = conditional.key(self.verb, url, headers) if conditional is not None else None
        sent = conditional.lookup(key) if conditional is not None and key is not None else None
        if sent is not None:
            headers = {**headers, **sent.validators()}  # PyGithub's own dict stays as it was
        if self._counter.budget is not None:
            self._counter.budget.before_request()  # held back: raises RateBudgetExceeded
        try:
            response = send(
                url,
                headers=headers,
                data=self.input,
                timeout=self.timeout,
                verify=self.verify,
                allow_redirects=False,
            )
        except Exception:
            self._counter.record(self.verb, self.url, None)
            raise
        self._counter.record(self.verb, self.url, response.headers, str(response.status_code))
        if conditional is not None and key is not None:
            response = conditional.answer(key, sent, response)
        return RequestsResponse(response)


class _CountingHTTPS(_CountingConnection, HTTPSRequestsConnectionClass):
    def __init__(
        self,
        *args: Any,
        counter: CallCounter,
        conditional: ConditionalGets | None = None,
        **kwargs: Any,
    ) -> None:
        HTTPSRequestsConnectionClass.__init__(self, *args, **kwargs)
        self._counter = counter
        self._conditional = conditional


class _CountingHTTP(_CountingConnection, HTTPRequestsConnectionClass):
    def __init__(
        self,
        *args: Any,
        counter: CallCounter,
        conditional: ConditionalGets | None = None,
        **kwargs: Any,
    ) -> None:
        HTTPRequestsConnectionClass.__init__(self, *args, **kwargs)
        self._counter = counter
        self._conditional = conditional


def instrument(
    requester: Requester,
    counter: CallCounter,
    timeout: float,
    conditional: ConditionalGets | None = None,
) -> None:
    """Make this one Requester count its requests (no global state is touched), and with
    `conditional` revalidate its GETs (github_etags.py).

    PyGithub 2.10 picks its connection classes from per-instance attributes, so setting them
    on the instance affects only this requester and the connections it creates later.
    """
    names = (
        "_Requester__connectionClass",
        "_Requester__httpsConnectionClass",
        "_Requester__httpConnectionClass",
    )
    if not all(hasattr(requester, n) for n in names):  # pragma: no cover - guarded by the pin
        raise RuntimeError("unsupported PyGithub version: cannot count GitHub requests")
    https = functools.partial(
        _CountingHTTPS, counter=counter, timeout=timeout, conditional=conditional
    )
    http = functools.partial(
        _CountingHTTP, counter=counter, timeout=timeout, conditional=conditional
    )
    setattr(requester, names[1], https)
    setattr(requester, names[2], http)
    setattr(requester, names[0], https if requester.scheme == "https" else http)


def counting_session(counter: CallCounter, label: str) -> requests.Session:
    """A requests session (for archive downloads) whose every response is counted under label."""
    session = requests.Session()

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        counter.record_label(label, response.headers, str(response.status_code))

    session.hooks["response"].append(hook)
    return session


# --------------------------------------------------------------------------- errors


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            return str(value)
    return None


def _message(data: Any, fallback: str) -> str:
    """GitHub's message plus the details of validation errors (e.g. "Reference already exists")."""
    if not isinstance(data, dict):
        return fallback
    message = str(data.get("message") or fallback)
    details = []
    for err in data.get("errors") or ():
        if isinstance(err, dict):
            detail = err.get("message") or err.get("code")
            if detail and detail != "custom":
                details.append(str(detail))
        elif isinstance(err, str):
            details.append(err)
    return f"{message}: {'; '.join(details)}" if details else message


def error_message(exc: GithubException) -> str:
    return _message(exc.data, exc.message or f"HTTP {exc.status}")


# 501 Not Implemented (e.g. an endpoint a GitHub Enterprise version lacks) and 505 do not
# heal by waiting: fail with the reason instead of retrying for minutes
PERMANENT_5XX = frozenset({501, 505})


def classify(exc: BaseException, what: str, now: Callable[[], float] = time.time) -> BotError:
    """Map a PyGithub/requests failure to TransientError (retry later) or GitHubError."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        headers: Mapping[str, Any] = exc.response.headers
        try:
            data: Any = exc.response.json()
        except ValueError:
            data = None
        message = _message(data, exc.response.reason or f"HTTP {status}")
    elif isinstance(exc, GithubException):
        status, headers, message = exc.status, exc.headers or {}, error_message(exc)
    elif isinstance(exc, requests.RequestException):
        # str(exc) may contain a signed archive URL: name the failure class only.
        return TransientError(f"GitHub unreachable during {what} ({type(exc).__name__})")
    else:  # pragma: no cover - callers only pass the types above
        return GitHubError(0, f"{what}: {type(exc).__name__}")

    retry_after: float | None = None
    raw_retry_after = _header(headers, "retry-after")
    if raw_retry_after is not None:
        try:
            retry_after = max(0.0, float(raw_retry_after))
        except ValueError:
            retry_after = None
    if status >= 500 and status not in PERMANENT_5XX:
        return TransientError(f"GitHub {status} during {what}: {message}", retry_after)
    if status in (403, 429):
        lowered = message.lower()
        if _header(headers, "x-ratelimit-remaining") == "0" and retry_after is None:
            reset = _header(headers, "x-ratelimit-reset")
            wait = max(1.0, float(reset) - now()) if reset and reset.isdigit() else 60.0
            return TransientError(f"GitHub rate limit exhausted during {what}", wait)
        if retry_after is not None or "secondary rate limit" in lowered or status == 429:
            if retry_after is None and "secondary rate limit" in lowered:
                retry_after = 60.0  # GitHub: "wait at least one minute" when no Retry-After
            return TransientError(f"GitHub secondary rate limit during {what}", retry_after)
        if Requester.isRateLimitError(lowered):
            return TransientError(f"GitHub rate limit during {what}", 60.0)
    return GitHubError(status, message)


def call_with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    max_retries: int,
    sleep: Callable[[float], None],
    backoff: float = 1.0,
    max_sleep: float = MAX_RETRY_AFTER,
    on_unauthorized: Callable[[], None] | None = None,
) -> T:
    """Run fn (an idempotent operation); retry transient failures a bounded number of times.

    A first 401 calls on_unauthorized (drop the cached token) and retries at once.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except (GithubException, requests.RequestException) as exc:
            if isinstance(exc, GithubException) and exc.status == 401 and on_unauthorized:
                on_unauthorized()
                on_unauthorized = None
                continue
            error = classify(exc, what)
            cause: BaseException | None = exc if isinstance(exc, GithubException) else None
        if not isinstance(error, TransientError) or attempt >= max_retries:
            raise error from cause
        delay = error.retry_after
        if delay is None:
            delay = min(max_sleep, backoff * 2**attempt)
        if delay > max_sleep:
            raise error from cause  # the job queue waits that long, not this worker
        attempt += 1
        sleep(delay)


def quote(segment: str) -> str:
    """Quote one URL path segment (owner, repo, user, slug)."""
    return urllib.parse.quote(segment, safe="")
