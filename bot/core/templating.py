"""Jinja2 environment over `templates/` plus filters that make untrusted text safe in markdown."""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import jinja2

# The repo's top-level `templates/` directory (we run from an editable install / checkout).
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

_BACKTICK_RUN = re.compile(r"`+")
# Characters with a meaning anywhere in GitHub-flavoured markdown inline text (`|`: tables,
# `:`: autolinks and emoji, `@`: mentions); and what is special only at the start of a line.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()|~:@])")
_MD_LINE_START = re.compile(r"^([-+#=!]|\d+(?=[.)]))")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(text: object) -> str:
    """Text with normalised line endings and no control characters GitHub may choke on."""
    s = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("\ufffd", s)


def clip(text: object, limit: int = 200) -> str:
    """`text` shortened to at most `limit` characters, marking the cut with an ellipsis."""
    s = str(text)
    if len(s) <= limit:
        return s
    return s[: max(limit - 1, 0)] + "…"


def html_escape(text: object) -> str:
    """Escape for an HTML context (e.g. inside `<summary>`), on one line."""
    s = _clean(text).replace("\n", " ")
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _escape_line_start(m: re.Match[str]) -> str:
    token = m.group(0)
    return token + "\\" if token[0].isdigit() else "\\" + token  # "1\." / "\-"


def md_escape(text: object) -> str:
    """Escape for inline markdown text: no formatting, links, mentions, HTML or new lines."""
    s = _clean(text).replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return _MD_LINE_START.sub(_escape_line_start, s)


def code_span(text: object, table: bool = False) -> str:
    """An inline code span that no backtick in `text` can close early.

    In a table cell (`table=True`) a `|` would end the cell even inside a code span, so
    it is escaped; GitHub renders `\\|` inside a code span in a table as a plain `|`.
    """
    s = _clean(text).replace("\n", " ")
    if not s:
        return "` `"
    longest = max((len(m) for m in _BACKTICK_RUN.findall(s)), default=0)
    ticks = "`" * (longest + 1)
    if s[0] in "` " or s[-1] in "` ":
        s = f" {s} "
    if table:
        s = s.replace("|", "\\|")
    return f"{ticks}{s}{ticks}"


def fenced(text: object, lang: str = "") -> str:
    """A fenced code block longer than any backtick run in `text`, so it cannot be closed."""
    s = _clean(text)
    if s and not s.endswith("\n"):
        s += "\n"
    longest = max((len(m) for m in _BACKTICK_RUN.findall(s)), default=0)
    ticks = "`" * max(3, longest + 1)
    info = re.sub(r"[^A-Za-z0-9_+-]", "", lang)
    return f"{ticks}{info}\n{s}{ticks}"


def number(value: int) -> str:
    """An integer with thousands separators."""
    return f"{value:,}"


def templates_dir() -> Path:
    """The checkout's `templates/`, or the copy a wheel installs under `<prefix>/share`."""
    if TEMPLATES_DIR.is_dir():
        return TEMPLATES_DIR
    return Path(sys.prefix) / "share" / "gitops-bot" / "templates"


@functools.cache
def environment() -> jinja2.Environment:
    """The shared Jinja2 environment (created on first use, never at import time)."""
    directory = templates_dir()
    if not directory.is_dir():
        raise RuntimeError(f"gitops-bot templates directory not found: {directory}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # markdown, not HTML: untrusted text goes through the filters below
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["md"] = md_escape
    env.filters["code"] = code_span
    env.filters["fence"] = fenced
    env.filters["html"] = html_escape
    env.filters["clip"] = clip
    env.filters["number"] = number
    return env


def render_template(name: str, **context: object) -> str:
    """Render the template `name` (e.g. "pr_body.md.j2") with `context`."""
    return environment().get_template(name).render(**context)
