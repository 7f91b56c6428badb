"""A webhook's JSON body taken at intake: msgspec's C decoder, which checks the nesting as
it parses, on the common path; the standard library's verdict on whatever it refuses.

The result and every refusal are the same as `json.loads` followed by `json_problem`
(a property test holds the two side by side); only the cost differs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

MAX_JSON_DEPTH = 64  # real webhook payloads nest fewer than 10 levels

NOT_JSON = "request body is not valid JSON (the webhook content type must be application/json)"
NOT_AN_OBJECT = "request body must be a JSON object"
TOO_DEEP = f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
UNSTORABLE = "JSON strings may not hold NUL characters or unpaired surrogates"


class JsonRefused(ValueError):
    """A body refused, with the message its sender gets."""


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL; lone surrogates from \uXXXX escapes


def json_problem(value: object, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why a parsed JSON document cannot be taken (None: it can): nested deeper than
    `limit` containers, or a string holding NUL or half a surrogate pair, which no
    database stores (PostgreSQL's JSONB refuses \u0000; UTF-8 has no lone surrogates).
    Iterative: no recursion to blow."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _UNSTORABLE.search(node):
                return UNSTORABLE
            continue
        if isinstance(node, dict):
            children: list[object] = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return f"JSON nested more than {limit} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


# A string parsed from UTF-8 JSON can hold NUL or a lone surrogate only through a `\\u0000`
# or `\\uD800`-`\\uDFFF` escape (the UTF-8 bytes of a surrogate, 0xED 0xA0-0xBF, are
# refused by msgspec, so the standard library judges those). A match may be harmless (an
# escaped backslash before "u0000", a surrogate pair): then the full scan decides.
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _may_spell_unstorable(body: bytes) -> bool:
    """Whether a string msgspec parsed from `body` could hold NUL or half a surrogate pair
    (single-byte searches first: they cost next to nothing)."""
    return b"\\" in body and b"\\u" in body and _UNSTORABLE_ESCAPE.search(body) is not None


SHALLOW_DEPTH = 10  # GitHub's webhook examples nest at most 7 containers deep


def _shallow_decoder(levels: int) -> msgspec.json.Decoder[dict[str, Any]]:
    """A decoder of JSON objects nested at most `levels` containers deep: msgspec checks the
    depth while it parses, in C. (Each level names the next twice, so building the type
    costs 2^levels: fine for 10, not for `MAX_JSON_DEPTH`.)"""
    value: Any = str | int | float | bool | None
    for _ in range(levels - 1):
        value = dict[str, value] | list[value] | str | int | float | bool | None
    return msgspec.json.Decoder(dict[str, value])


_decode_shallow = _shallow_decoder(SHALLOW_DEPTH).decode


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The JSON object in `body`, or JsonRefused saying why not."""
    try:
        payload = _decode_shallow(body)
    except (msgspec.MsgspecError, RecursionError):
        # not a shallow object, or msgspec refuses what `json` takes (NaN, 1e400, integers
        # past 64 bits, lone surrogates, UTF-16): the standard library decides, as it always has
        return _stdlib_json_object(body)
    if _may_spell_unstorable(body) and (problem := json_problem(payload)) is not None:
        raise JsonRefused(problem)
    return payload


def _stdlib_json_object(body: bytes) -> dict[str, Any]:
    payload = _stdlib_decode(body)
    if not isinstance(payload, dict):
        raise JsonRefused(NOT_AN_OBJECT)
    problem = json_problem(payload)
    if problem is not None:
        raise JsonRefused(problem)
    return payload


def _stdlib_decode(body: bytes) -> object:
    try:
        return json.loads(body)
    except RecursionError:
        raise JsonRefused(TOO_DEEP) from None
    except (UnicodeDecodeError, ValueError):
        raise JsonRefused(NOT_JSON) from None
