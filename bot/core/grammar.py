"""What registry names, versions, aliases and sources may look like. Generic shapes are
checked at intake (a 400 for the sender); a model's own `version_pattern` in the job."""

from __future__ import annotations

import re

MAX_VERSION_CHARS = 64
# Any version a model's pattern could accept: ASCII, no spaces or shell/markup characters.
_INTAKE_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}")
# MLflow's own versions: 1, 2, 3 ... (no sign, no leading zero, bounded)
DEFAULT_VERSION_PATTERN = r"[1-9][0-9]{0,9}"
ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Locations never written, shown or followed, whatever an environment's storage_schemes say
FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "vbscript", "file"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def intake_version_problem(version: str) -> str | None:
    """Why `version` cannot be any model's version (None when it may be)."""
    if _INTAKE_VERSION.fullmatch(version):
        return None
    shown = version if len(version) <= 40 else version[:40] + "…"
    return (
        f"{shown!r} is not a version: ASCII letters, digits and . _ + - "
        f"(starting with a letter or digit), at most {MAX_VERSION_CHARS} characters"
    )


def alias_problem(alias: str) -> str | None:
    if ALIAS.fullmatch(alias):
        return None
    return f"{alias[:40]!r} is not an alias: ASCII letters, digits, . _ -, at most 64"


def version_problem(version: str, pattern: str) -> str | None:
    """Why `version` does not fit a model's `version_pattern` (None when it does)."""
    if intake_version_problem(version) is None and re.fullmatch(pattern, version):
        return None
    shown = version if len(version) <= 40 else version[:40] + "…"
    return f"{shown!r} does not match the model's version_pattern `{pattern}`"


def source_problem(uri: str) -> str | None:
    """A registry source the bot never uses: control characters, script or local schemes."""
    if _CONTROL.search(uri):
        return "the source location contains control characters"
    scheme = uri.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri) else ""
    if scheme in FORBIDDEN_SCHEMES and not re.match(r"^[A-Za-z]:[\\/]", uri):
        return f"`{scheme}:` locations are never used"
    return None
