"""Parse Kustomize field paths (the `replacements` fieldPaths syntax) into segments.

Syntax (a superset of what Kustomize's ``SmarterPathSplitter`` + kyaml ``PathGetter`` accept):

- ``a.b.c`` -- segments separated by dots. Each plain segment is a mapping key.
- ``a\\.b`` -- a backslash before a dot escapes it: the key is ``a.b`` (as in Kustomize).
- ``[a.b/c]`` -- a bracketed segment without ``=`` is a mapping key taken literally, dots
  included (Kustomize: ``metadata.annotations.[config.kubernetes.io/local-config]``). Kustomize
  only unwraps such brackets when they contain a dot; here ``[abc]`` is also the key ``abc``.
- ``[name=value]`` -- selects the one list item that is a mapping whose key ``name`` has the
  scalar value ``value`` (``images.[name=fraud-detector].newTag``). The value may contain dots
  and ``=`` (only the first ``=`` splits): ``[name=com.foo.app]``.
- ``[=value]`` -- selects the one list item that is the scalar ``value`` (Kustomize's
  primitive-list selector, e.g. ``args.[=--verbose]``); editing it replaces the whole item.
- ``0``, ``12`` -- a segment made of ASCII digits indexes a list (``containers.0.image``),
  as in kyaml. Applied to a mapping it is looked up as the key ``"0"``.
- Extension for ``configMapGenerator``/``secretGenerator`` literals: a key segment applied to a
  list of ``KEY=value`` strings addresses the *value part* of the entry whose ``KEY`` matches:
  ``configMapGenerator.[name=cfg].literals.MODEL_URI`` (use ``[A.B]`` for a key with dots).
  Kustomize itself cannot address inside a literal, so a key segment on a list means nothing
  there; this keeps the spelling of a mapping path for what is, in effect, a mapping.

Not supported (they cannot address exactly one scalar): ``*`` wildcards and ``-`` (append).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """A mapping key (or, on a list of ``KEY=value`` strings, a literal's key)."""

    name: str

    def __str__(self) -> str:
        if self.name.isdigit() or ("." in self.name and "=" not in self.name):
            return f"[{self.name}]"
        return self.name.replace(".", "\\.")


@dataclass(frozen=True)
class Index:
    """A list position written as digits; ``text`` keeps the spelling for mapping lookup."""

    position: int
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Match:
    """``[key=value]``: the list item whose ``key`` equals ``value``; ``key`` "" for scalars."""

    key: str
    value: str

    def __str__(self) -> str:
        return f"[{self.key}={self.value}]"


Segment = Key | Index | Match
MAX_FIELD_PATH_CHARS = 1000  # real paths are tens of characters
MAX_SEGMENTS = 64


def parse_field_path(path: str) -> tuple[Segment, ...]:
    """Split a Kustomize field path into segments; raise ValueError saying what is wrong."""
    if not path:
        raise ValueError("field path is empty")
    if len(path) > MAX_FIELD_PATH_CHARS:
        raise ValueError(
            f"field path is {len(path)} characters long; at most {MAX_FIELD_PATH_CHARS}"
        )
    if path != path.strip():
        raise ValueError(f"field path {path!r} has leading or trailing whitespace")
    if any(ch in path for ch in "\n\r\t"):
        raise ValueError(f"field path {path!r} contains a control character")
    segments: list[Segment] = []
    i = 0
    n = len(path)
    while True:
        where = f"at character {i + 1} of {path!r}"
        if i >= n or path[i] == ".":
            raise ValueError(f"empty segment {where} (two dots, or a leading/trailing dot)")
        if path[i] == "[":
            close = _closing_bracket(path, i)
            if close < 0:
                if "]" in path[i:]:
                    raise ValueError(
                        f"selector starting {where} must end with ']' followed by '.' or the "
                        "end of the path"
                    )
                raise ValueError(f"unclosed '[' {where}")
            segments.append(_bracketed(path[i + 1 : close], path, i))
            i = close + 1
        else:
            buf: list[str] = []
            while i < n and path[i] != ".":
                if path[i] == "\\" and i + 1 < n and path[i + 1] == ".":
                    buf.append(".")
                    i += 2
                    continue
                if path[i] in "[]":
                    raise ValueError(
                        f"unexpected {path[i]!r} at character {i + 1} of {path!r}: a selector "
                        "must be a whole segment, e.g. images.[name=app].newTag"
                    )
                buf.append(path[i])
                i += 1
            segments.append(_plain("".join(buf), path))
        if i >= n:
            break
        if path[i] != ".":
            raise ValueError(
                f"expected '.' after ']' at character {i + 1} of {path!r}, found {path[i]!r}"
            )
        i += 1
    if len(segments) > MAX_SEGMENTS:
        raise ValueError(f"field path has {len(segments)} segments; at most {MAX_SEGMENTS}")
    return tuple(segments)


def format_field_path(segments: tuple[Segment, ...] | list[Segment]) -> str:
    """Render segments back to a field path (used in error messages)."""
    return ".".join(str(s) for s in segments)


def _closing_bracket(path: str, start: int) -> int:
    # Like Kustomize, a bracket closes at a ']' that ends the segment (followed by '.' or end),
    # so values may themselves contain ']' or '.'.
    j = path.find("]", start + 1)
    while j >= 0:
        if j + 1 == len(path) or path[j + 1] == ".":
            return j
        j = path.find("]", j + 1)
    return -1


def _bracketed(inner: str, path: str, at: int) -> Segment:
    if "=" not in inner:
        if not inner:
            raise ValueError(f"empty brackets '[]' at character {at + 1} of {path!r}")
        return Key(inner)
    key, value = inner.split("=", 1)
    if key != key.strip() or value != value.strip():
        raise ValueError(
            f"selector [{inner}] at character {at + 1} of {path!r} has spaces around the key "
            "or value; write it as [key=value]"
        )
    return Match(key, value)


def _plain(text: str, path: str) -> Segment:
    if text == "*":
        raise ValueError(
            f"wildcard '*' in {path!r} is not supported: an edit must address exactly one value"
        )
    if text == "-":
        raise ValueError(f"'-' (append) in {path!r} is not supported: address an existing item")
    if text.isascii() and text.isdigit():
        return Index(int(text), text)
    if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
        raise ValueError(f"negative list index {text} in {path!r} is not supported")
    return Key(text)
