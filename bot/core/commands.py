"""Parse ChatOps commands from comment text into commands, replies, or nothing."""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass
from typing import Literal

COMMANDS = ("promote", "rollback", "diff", "merge", "help")
USAGE = {
    "promote": (
        "/promote <model> <version|@alias> to <env> [--traffic B/C] [--dry-run]"
        " [--allow-downgrade]\n"
        "/promote <env> [--traffic B/C] [--dry-run]   (on a merged promotion PR)"
    ),
    "rollback": "/rollback <env> [to <version>]",
    "diff": "/diff",
    "merge": "/merge",
    "help": "/help",
}
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# ASCII only: Python's \d and \w also match other scripts' digits and letters
_COMMAND_LINE = re.compile(r"^ {0,3}/([A-Za-z][A-Za-z0-9_-]*)(.*)$")
_VERSION = re.compile(r"^(?:v?([0-9]{1,64})|@([A-Za-z0-9][A-Za-z0-9_.-]{0,63}))\Z")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")


@dataclass(frozen=True)
class Promote:
    environment: str
    model: str | None = None  # None: "same change as this merged promotion PR"
    version: str | None = None
    alias: str | None = None
    traffic: tuple[int, int] | None = None
    dry_run: bool = False
    line: str = ""
    allow_downgrade: bool = False  # an older version than the environment runs, on purpose


@dataclass(frozen=True)
class Rollback:
    environment: str
    version: str | None = None
    line: str = ""


@dataclass(frozen=True)
class Diff:
    line: str = "/diff"


@dataclass(frozen=True)
class Merge:
    line: str = "/merge"


@dataclass(frozen=True)
class Help:
    line: str = "/help"


@dataclass(frozen=True)
class Reply:
    """A command we recognised but cannot run as written: tell the user why and how."""

    kind: Literal["usage", "did_you_mean"]
    message: str
    line: str
    command: str  # the command the usage text is for


Command = Promote | Rollback | Diff | Merge | Help
Outcome = Command | Reply


def command_lines(body: str) -> list[str]:
    """Lines that may hold commands: outside code fences, quotes and HTML comments."""
    text = re.sub(r"<!--.*?(?:-->|\Z)", "", body.replace("\r\n", "\n"), flags=re.DOTALL)
    lines: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        if match:
            fence = match.group(1)
            continue
        if line.lstrip().startswith(">") or line.startswith(("    ", "\t")):
            continue  # quoted text or an indented code block
        lines.append(line)
    return lines


def parse_comment(body: str) -> list[Outcome]:
    """Every command in the comment, in order; unrelated `/words` are ignored."""
    outcomes: list[Outcome] = []
    for line in command_lines(body):
        match = _COMMAND_LINE.match(line)
        if not match:
            continue
        outcome = parse_command(match.group(1), match.group(2), line.strip())
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _usage(command: str, problem: str, line: str) -> Reply:
    return Reply("usage", problem, line, command)


def parse_command(name: str, rest: str, line: str) -> Outcome | None:
    word = name.lower()
    if word not in COMMANDS:
        close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
        if not close:
            return None  # a path or an unrelated slash-word, not meant for us
        return Reply("did_you_mean", f"Unknown command `/{name}`.", line, close[0])
    try:
        args = shlex.split(rest)
    except ValueError as exc:
        return _usage(word, f"Cannot read the arguments: {exc}.", line)
    if word == "promote":
        return _parse_promote(args, line)
    if word == "rollback":
        return _parse_rollback(args, line)
    if args:
        return _usage(word, f"`/{word}` takes no arguments, got `{' '.join(args)}`.", line)
    simple: dict[str, Command] = {"diff": Diff(line), "merge": Merge(line), "help": Help(line)}
    return simple[word]


def parse_traffic(value: str) -> tuple[int, int]:
    """`90/10` -> (90, 10): two integers summing to 100 (raises ValueError with the reason)."""
    parts = value.split("/")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
        raise ValueError(
            f"`--traffic` takes BASELINE/CANDIDATE integers such as 90/10, got `{value}`"
        )
    baseline, candidate = int(parts[0]), int(parts[1])
    if baseline + candidate != 100:
        raise ValueError(
            f"traffic weights must sum to 100, got {baseline}+{candidate}={baseline + candidate}"
        )
    return baseline, candidate


def _parse_promote(args: list[str], line: str) -> Outcome:
    traffic: tuple[int, int] | None = None
    dry_run = allow_downgrade = False
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--dry-run":
            dry_run = True
        elif arg == "--allow-downgrade":
            allow_downgrade = True
        elif arg == "--traffic" or arg.startswith("--traffic="):
            value = arg.partition("=")[2] if "=" in arg else None
            if value is None:
                index += 1
                if index >= len(args):
                    return _usage("promote", "`--traffic` needs a value such as 90/10.", line)
                value = args[index]
            try:
                traffic = parse_traffic(value)
            except ValueError as exc:
                return _usage("promote", f"Invalid traffic split: {exc}.", line)
        elif arg.startswith("--"):
            options = ["--traffic", "--dry-run", "--allow-downgrade"]
            close = difflib.get_close_matches(arg, options, n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            return _usage("promote", f"Unknown option `{arg}`.{hint}", line)
        else:
            positional.append(arg)
        index += 1
    if len(positional) == 1:
        env = positional[0]
        if not _NAME.match(env):
            return _usage("promote", f"`{env}` is not an environment name.", line)
        return Promote(
            environment=env,
            traffic=traffic,
            dry_run=dry_run,
            line=line,
            allow_downgrade=allow_downgrade,
        )
    if len(positional) == 4 and positional[2].lower() == "to":
        model, version, _, env = positional
        parsed = _VERSION.match(version)
        if not parsed:
            return _usage(
                "promote",
                f"`{version}` is not a version (a number like 8) or an alias (@champion).",
                line,
            )
        if not _NAME.match(model) or not _NAME.match(env):
            return _usage(
                "promote",
                "Model and environment names may use letters, digits, `.`, `_`, `-`.",
                line,
            )
        return Promote(
            environment=env,
            model=model,
            version=parsed.group(1),
            alias=parsed.group(2),
            traffic=traffic,
            dry_run=dry_run,
            line=line,
            allow_downgrade=allow_downgrade,
        )
    return _usage(
        "promote", "Expected `/promote <model> <version> to <env>` or `/promote <env>`.", line
    )


def _parse_rollback(args: list[str], line: str) -> Outcome:
    if args and not _NAME.match(args[0]):
        return _usage("rollback", f"`{args[0][:40]}` is not an environment name.", line)
    if len(args) == 1:
        return Rollback(environment=args[0], line=line)
    if len(args) == 3 and args[1].lower() == "to":
        parsed = _VERSION.match(args[2])
        if parsed and parsed.group(1):
            return Rollback(environment=args[0], version=parsed.group(1), line=line)
        return _usage("rollback", f"`{args[2]}` is not a version number.", line)
    return _usage("rollback", "Expected `/rollback <env>` or `/rollback <env> to <version>`.", line)
