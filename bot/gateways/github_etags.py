"""Conditional GETs for the GitHub gateway: remembered validators and bodies, served on a 304.

GitHub answers a GET carrying `If-None-Match` (the `ETag` of an earlier answer) with
`304 Not Modified` and no body when the resource is unchanged, and such an answer does not
count against the rate limit. The bot polls (reconcile re-reads the same refs, PRs, checks
and reviews every round), so most of those reads can be 304s: `ConditionalGets` sends the
validator of the remembered 200 and hands PyGithub that 200 again when GitHub says 304.

Always asking GitHub (never "fresh for max-age") keeps the semantics of every read: the
answer is GitHub's own, only its body is not sent twice. Entries are keyed by scope (one
installation: never shared across installations), full URL with its query, `Accept` and
API version; GitHub checks the credentials of a conditional request before it compares
validators, so a token that lost access gets its 403/404 (and the entry is dropped).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

Key = tuple[str, str, str, str]  # (scope, absolute URL with query, Accept, API version)

# a request that carries one of these already is the caller's own conditional request
_CONDITIONAL = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "range")
# a 304 refreshes the stored headers (date, validators) but not these
_BODY_HEADERS = frozenset(
    {"content-length", "content-type", "content-encoding", "transfer-encoding"}
)
# about the exchange, not the resource: an answer carries the 304's own, never stale ones
_EXCHANGE_HEADERS = ("x-ratelimit-", "x-github-request-id")
_ENTRY_OVERHEAD = 256  # bytes: the key, the entry and the dict slots around the payload
# RFC 9110 8.8.2.2: a Last-Modified at least this long before the response's Date is strong
_STRONG_LAST_MODIFIED_S = 60.0


@dataclass(frozen=True)
class Remembered:
    """One 200 answer worth revalidating: its validator, headers and body."""

    etag: str | None
    last_modified: str | None
    headers: dict[str, str]
    body: bytes
    encoding: str | None
    size: int

    def validators(self) -> dict[str, str]:
        """The request headers that ask GitHub whether this answer still stands."""
        if self.etag is not None:
            return {"If-None-Match": self.etag}
        assert self.last_modified is not None
        return {"If-Modified-Since": self.last_modified}

    def as_answer(self, not_modified: requests.Response) -> requests.Response:
        """The 200 that the 304 stands for: this body, headers refreshed by the 304's."""
        response = requests.Response()
        response.status_code = 200
        response.reason = "OK"
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(self.headers)
        for name, value in not_modified.headers.items():
            if name.lower() not in _BODY_HEADERS:
                headers[name] = value
        response.headers = headers
        response._content = self.body
        response.encoding = self.encoding
        response.url = not_modified.url
        response.request = not_modified.request
        response.elapsed = not_modified.elapsed
        return response


def _strong_last_modified(headers: Mapping[str, str]) -> str | None:
    """Last-Modified, when a second's resolution cannot hide a later change (RFC 9110)."""
    raw, date = headers.get("Last-Modified"), headers.get("Date")
    if not raw or not date:
        return None
    try:
        modified, sent = parsedate_to_datetime(raw), parsedate_to_datetime(date)
        gap = (sent - modified).total_seconds()
    except (TypeError, ValueError):
        return None
    return raw if gap >= _STRONG_LAST_MODIFIED_S else None


def remember(response: requests.Response) -> Remembered | None:
    """What to keep of a GET's answer: a 200 with a validator that may be stored."""
    if response.status_code != 200:
        return None
    headers = response.headers
    if "no-store" in headers.get("Cache-Control", "").lower():
        return None
    etag = headers.get("ETag") or None
    last_modified = None if etag else _strong_last_modified(headers)
    if etag is None and last_modified is None:
        return None
    body = response.content
    kept = {
        str(k): str(v)
        for k, v in headers.items()
        if not str(k).lower().startswith(_EXCHANGE_HEADERS)
    }
    size = len(body) + sum(len(k) + len(v) for k, v in kept.items()) + _ENTRY_OVERHEAD
    return Remembered(etag, last_modified, kept, body, response.encoding, size)


class ConditionalCache:
    """Remembered answers, least recently used dropped first past `max_bytes` (thread-safe)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._entries: OrderedDict[Key, Remembered] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: Key) -> Remembered | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Key, entry: Remembered) -> None:
        with self._lock:
            self._drop(key)
            if entry.size > self.max_bytes:
                return  # larger than the whole budget: never kept
            self._entries[key] = entry
            self._bytes += entry.size
            while self._bytes > self.max_bytes:
                _, oldest = self._entries.popitem(last=False)
                self._bytes -= oldest.size

    def forget(self, key: Key) -> None:
        with self._lock:
            self._drop(key)

    def forget_scope(self, scope: str) -> None:
        """Drop every answer kept for one scope (e.g. an installation that changed)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == scope]:
                self._drop(key)

    def _drop(self, key: Key) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size


class ConditionalGets:
    """One requester's view of the cache: every key it makes carries its scope."""

    def __init__(self, cache: ConditionalCache, scope: str) -> None:
        self.cache = cache
        self.scope = scope

    def key(self, verb: str, url: str, headers: Mapping[str, Any]) -> Key | None:
        """The cache key of a request, or None when it must go out as it is."""
        if verb.upper() != "GET" or not self.cache.enabled:
            return None
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        if any(name in lowered for name in _CONDITIONAL):
            return None
        return (
            self.scope,
            url,
            lowered.get("accept", ""),
            lowered.get("x-github-api-version", ""),
        )

    def lookup(self, key: Key) -> Remembered | None:
        return self.cache.get(key)

    def answer(
        self, key: Key, sent: Remembered | None, response: requests.Response
    ) -> requests.Response:
        """The response to hand on: a 304 to what was sent becomes its 200; a cacheable 200
        is remembered; anything else drops what was kept under the key."""
        if response.status_code == 304 and sent is not None:
            self.cache.put(key, sent)  # still current: most recently used
            return sent.as_answer(response)
        entry = remember(response)
        if entry is None:
            self.cache.forget(key)
        else:
            self.cache.put(key, entry)
        return response
