"""Routing and validation of fake GitHub traffic against GitHub's published OpenAPI description."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "api.github.com.trimmed.json"
SPEC_HOST = "https://api.github.com"


@functools.cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())  # type: ignore[no-any-return]


@functools.cache
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(spec())


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # the OpenAPI path, e.g. /repos/{owner}/{repo}/git/ref/{ref}
    regex: re.Pattern[str]
    declared_statuses: frozenset[str]


def _param(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        return spec()["components"]["parameters"][ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]
    return node


def _group(multi: set[str], m: re.Match[str]) -> str:
    return f"(?P<{m[1]}>{'.+' if m[1] in multi else '[^/]+'})"


@functools.cache
def routes() -> list[Route]:
    """Routes built from the spec itself; `x-multi-segment` parameters may contain slashes."""
    out = []
    for pattern, item in spec()["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            params = [_param(p) for p in [*item.get("parameters", []), *op.get("parameters", [])]]
            multi = {
                p["name"] for p in params if p.get("in") == "path" and p.get("x-multi-segment")
            }
            regex = re.sub(r"\\\{(\w+)\\\}", functools.partial(_group, multi), re.escape(pattern))
            out.append(
                Route(method.upper(), pattern, re.compile(f"^{regex}$"), frozenset(op["responses"]))
            )
    # literal segments first, so /issues/comments/{id} wins over /issues/{issue_number}
    out.sort(key=lambda r: (-len(re.sub(r"\{\w+\}", "", r.pattern)), r.pattern))
    return out


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in routes():
        if route.method != method.upper():
            continue
        m = route.regex.match(path)
        if m:
            return route, m.groupdict()
    return None


@dataclass
class _Request:
    """The openapi-core request protocol, with the path pattern already resolved."""

    method: str
    path: str
    path_pattern: str
    query: str
    headers: dict[str, str]
    path_params: dict[str, str]
    body: bytes | None
    host_url: str = SPEC_HOST
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = RequestParameters(
            path=self.path_params,
            query=ImmutableMultiDict(parse_qsl(self.query, keep_blank_values=True)),
            header=Headers(self.headers),
            cookie=ImmutableMultiDict(),
        )

    @property
    def content_type(self) -> str:
        for k, v in self.headers.items():
            if k.lower() == "content-type":
                return v.lower()
        return "application/json"


@dataclass
class _Response:
    status_code: int
    data: bytes
    headers: Headers
    content_type: str


class Validator:
    """Validates one request (and optionally its response) against the trimmed spec."""

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes | None,
        route: Route,
        params: dict[str, str],
    ) -> None:
        self.route = route
        self.request = _Request(
            method=method.lower(),
            path=path,
            path_pattern=route.pattern,
            query=query,
            headers=headers,
            path_params=params,
            body=body or None,
        )

    def request_errors(self) -> list[str]:
        return [_describe(e) for e in openapi().iter_request_errors(self.request)]

    def response_errors(self, status: int, headers: dict[str, str], body: bytes) -> list[str]:
        if str(status) not in self.route.declared_statuses:
            return []
        if self.route.pattern.endswith("/contents/{path}") and body.startswith(b"["):
            # spec quirk: a `type` discriminator on a oneOf whose first branch is an array
            return []
        ctype = headers.get("Content-Type", "application/json").split(";")[0]
        response = _Response(status, body, Headers(headers), ctype)
        return [_describe(e) for e in openapi().iter_response_errors(self.request, response)]


def _describe(exc: BaseException) -> str:
    parts = [_short(f"{type(exc).__name__}: {exc}")]
    cause = exc.__cause__
    while cause is not None:
        for sub in getattr(cause, "schema_errors", ()) or ():
            where = "/".join(str(p) for p in getattr(sub, "absolute_path", []))
            parts.append(_short(f"  - at /{where}: {getattr(sub, 'message', sub)}"))
            for ctx in getattr(sub, "context", None) or []:
                inner = "/".join(str(p) for p in ctx.absolute_path)
                parts.append(_short(f"      - at /{inner}: {ctx.message}"))
        cause = cause.__cause__
    return "\n".join(parts)


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
