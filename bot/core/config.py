"""Load and validate `.gitops-bot.yaml` into `Config`, with precise line-numbered errors."""

from __future__ import annotations

import difflib
import functools
import json
import posixpath
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any, Literal, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from bot.core.errors import ConfigError, ConfigIssue
from bot.core.fieldpath import parse_field_path
from bot.core.grammar import DEFAULT_VERSION_PATTERN
from bot.core.types import (
    DEFAULT_STORAGE_SCHEMES,
    Approvals,
    Config,
    Environment,
    Model,
    SetRule,
    TrafficRule,
    Trigger,
)

PLACEHOLDERS = ("storage_uri", "version", "model", "registry_name", "run_id")
TRIGGER_EVENTS = ("model_version.created", "model_version_alias.created", "model_version_tag.set")

PathPart = str | int
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --------------------------------------------------------------------------- public API


def schema() -> dict[str, Any]:
    """The published JSON Schema (Draft 2020-12) of `.gitops-bot.yaml`."""
    text = resources.files("bot").joinpath("schema/gitops-bot.schema.json").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def load_config_bytes(raw: bytes, filename: str = ".gitops-bot.yaml") -> Config:
    """`load_config` of a file's bytes: UTF-8 (a BOM is allowed), or a clear error."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [ConfigIssue(filename, line, f"the file is not UTF-8 (byte {exc.start + 1})")]
        ) from None
    return load_config(text, filename)


@functools.lru_cache(maxsize=32)
def load_config(text: str, filename: str = ".gitops-bot.yaml") -> Config:
    """Parse and validate a config file; raise ConfigError listing every issue found.
    Memoised by content: every job of a repository reads the same default-branch file."""
    try:
        problem = screen_yaml(text)
        if problem is not None:
            raise ConfigError([ConfigIssue(filename, problem[0], problem[1])])
        document = _parse_yaml(text)
    except YAMLError as exc:
        raise ConfigError([_yaml_issue(exc, filename)]) from None
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
        # a constructor the screen did not foresee: still an error about the file
        message = f"cannot read the YAML ({type(exc).__name__}: {str(exc)[:200]})"
        raise ConfigError([ConfigIssue(filename, None, message)]) from None
    if document is None:
        raise ConfigError(
            [
                ConfigIssue(
                    filename, 1, "the file is empty; expected a mapping starting with 'version: 1'"
                )
            ]
        )
    data = _plain(document)
    found: list[tuple[int | None, str]] = []
    for error in _validator().iter_errors(data):
        found.extend(_schema_issues(error, document))
    found.extend(_semantic_issues(data, document))
    if found:
        issues, seen = [], set()
        for line, message in sorted(found, key=lambda item: (item[0] or 0, item[1])):
            if (line, message) not in seen:
                seen.add((line, message))
                issues.append(ConfigIssue(filename, line, message))
        raise ConfigError(issues)
    return _build(data)


def find_config_line(text: str, path: Sequence[PathPart]) -> int | None:
    """1-based line of the value at `path` (e.g. ["models", 0, "set", 1]) in a config text."""
    try:
        document = _parse_yaml(text)
    except YAMLError:
        return None
    return _line_of(document, path)


def check_field_path(path: str) -> str | None:
    """Why `path` is not a valid Kustomize field path (`a.b.[key=value].c`), or None."""
    try:
        parse_field_path(path)
    except ValueError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- parsing

MAX_YAML_DEPTH = 32  # the config nests 6 levels at most
MAX_YAML_NODES = 20_000  # after expanding aliases: a real config has a few hundred


def screen_yaml(text: str) -> tuple[int, str] | None:
    """(line, why) when the YAML uses what a config never needs and a hostile file abuses:
    explicit tags (`!!set`, `!!int one`), collections as mapping keys, nesting deeper than
    MAX_YAML_DEPTH, aliases expanding past MAX_YAML_NODES nodes ("billion laughs").
    Reads the event stream only: linear time, no recursion, nothing constructed."""
    stack: list[list[Any]] = []  # per open collection: [is_mapping, items seen, node count]
    sizes: dict[str, int] = {}

    def add(count: int, line: int) -> tuple[int, str] | None:
        if stack:
            stack[-1][1] += 1
            stack[-1][2] += count
            if stack[-1][2] > MAX_YAML_NODES:
                return line, f"aliases expand to more than {MAX_YAML_NODES} nodes"
        return None

    for event in YAML(typ="rt").parse(text):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        kind = type(event).__name__
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and kind in ("ScalarEvent", "SequenceStartEvent",
                                               "MappingStartEvent"):  # fmt: skip
            shown = str(tag).replace("tag:yaml.org,2002:", "!!")
            return line, f"YAML tags ({shown}) are not used in this file"
        if kind in ("SequenceStartEvent", "MappingStartEvent"):
            if stack and stack[-1][0] and stack[-1][1] % 2 == 0:
                return line, "a list or mapping cannot be a mapping key here"
            if len(stack) >= MAX_YAML_DEPTH:
                return line, f"nested more than {MAX_YAML_DEPTH} levels deep"
            stack.append([kind == "MappingStartEvent", 0, 0, event.anchor])
        elif kind in ("SequenceEndEvent", "MappingEndEvent"):
            _mapping, _items, count, anchor = stack.pop()
            if anchor:
                sizes[anchor] = count + 1
            problem = add(count + 1, line)
            if problem:
                return problem
        elif kind == "ScalarEvent":
            if event.anchor:
                sizes[event.anchor] = 1
            problem = add(1, line)
            if problem:
                return problem
        elif kind == "AliasEvent":
            problem = add(sizes.get(event.anchor, 1), line)
            if problem:
                return problem
    return None


def _parse_yaml(text: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml.load(text)


def _yaml_issue(exc: YAMLError, filename: str) -> ConfigIssue:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            mark = exc.context_mark  # e.g. an unclosed quote: point at where it was opened
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        what = exc.problem or exc.context or "syntax error"
        if "'\\t'" in what:
            return ConfigIssue(
                filename, line, "tabs are not allowed in YAML; indent with spaces", column
            )
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        hint = " - check the indentation" if "<block end>" in what else ""
        return ConfigIssue(filename, line, f"invalid YAML: {what}{context}{hint}", column)
    return ConfigIssue(filename, None, f"invalid YAML: {exc}")


def _plain(node: Any) -> Any:
    """ruamel round-trip objects -> plain JSON-like data (keys as strings)."""
    if isinstance(node, Mapping):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(item) for item in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return str(node)  # dates and other YAML types: let the schema reject them as strings


def _line_of(document: Any, path: Sequence[PathPart]) -> int | None:
    """Line of the deepest node along `path` that exists (the key's line for mapping entries)."""
    node = document
    line: int | None = _own_line(node)
    for part in path:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            item_line = _lc_item(node, part)
            line = item_line if item_line is not None else line
            node = node[part]
        elif isinstance(part, str) and isinstance(node, Mapping):
            key = _find_key(node, part)
            if key is None:
                break
            key_line = _lc_key(node, key)
            line = key_line if key_line is not None else line
            node = node[key]
        else:
            break
    return line


def _find_key(node: Mapping[Any, Any], part: str) -> Any:
    if part in node:
        return part
    return next((key for key in node if str(key) == part), None)


def _own_line(node: Any) -> int | None:
    lc = getattr(node, "lc", None)
    return int(lc.line) + 1 if lc is not None and lc.line is not None else 1


def _lc_item(node: Any, index: int) -> int | None:
    try:
        return int(node.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _lc_key(node: Any, key: Any) -> int | None:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


# --------------------------------------------------------------------------- schema errors


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def _render_path(path: Iterable[PathPart]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "an empty value",
}


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    options = list(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    close = close or [option for option in options if word and option.startswith(word)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _schema_issues(error: ValidationError, document: Any) -> list[tuple[int | None, str]]:
    path = list(error.absolute_path)
    where = _render_path(path)
    prefix = f"{where}: " if where else ""
    line = _line_of(document, path)
    kind, value = error.validator, error.instance
    if kind in ("anyOf", "oneOf") and error.context:
        # the alternatives of the value's own shape say what is wrong with it
        relevant = [e for e in error.context if e.validator != "type"]
        if relevant:
            return [issue for e in relevant for issue in _schema_issues(e, document)]
        names = [t for e in error.context for t in _as_list(e.validator_value)]
        expected = " or ".join(dict.fromkeys(_TYPE_NAMES.get(n, n) for n in names))
        return [(line, f"{prefix}expected {expected}, got {_describe(value)}")]
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = list(error.schema.get("properties", {}))
        out = []
        for key in value:
            if key not in allowed:
                out.append(
                    (
                        _line_of(document, [*path, key]),
                        f"{prefix}unknown key {key!r}{_did_you_mean(key, allowed)}; "
                        f"allowed: {', '.join(allowed)}",
                    )
                )
        return out
    if kind == "required" and isinstance(value, dict):
        why = error.schema.get("description", "") if "then" in error.schema_path else ""
        missing = [key for key in error.validator_value if key not in value]
        return [
            (line, f"{prefix}missing required key {key!r}" + (f" ({why})" if why else ""))
            for key in missing
        ]
    if kind == "type":
        wanted = error.validator_value
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        expected = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
        hint = " (write true or false)" if "boolean" in names and isinstance(value, str) else ""
        return [(line, f"{prefix}expected {expected}, got {_describe(value)}{hint}")]
    if kind == "const" and path == ["version"]:
        return [(line, f"version: {_describe(value)} is not supported; the only version is 1")]
    if kind == "enum":
        choices = [str(choice) for choice in error.validator_value]
        guess = _did_you_mean(value, choices) if isinstance(value, str) else ""
        return [(line, f"{prefix}{_describe(value)} is not one of {', '.join(choices)}{guess}")]
    if kind in ("minLength", "minItems"):
        return [(line, f"{prefix}must not be empty")]
    if kind == "minimum":
        return [(line, f"{prefix}{_describe(value)} is less than {error.validator_value}")]
    if kind == "maxLength":
        return [(line, f"{prefix}{_describe(value)} is longer than {error.validator_value}")]
    if kind == "uniqueItems":
        return [(line, f"{prefix}lists the same entry more than once")]
    if kind == "pattern":
        rule = error.schema.get("description", f"must match {error.validator_value}")
        return [(line, f"{prefix}{_describe(value)} is not allowed: {rule}")]
    return [(line, f"{prefix}{error.message}")]


# --------------------------------------------------------------------------- semantic checks


class _Checker:
    def __init__(self, document: Any) -> None:
        self.document = document
        self.found: list[tuple[int | None, str]] = []

    def add(self, path: Sequence[PathPart], message: str) -> None:
        self.found.append((_line_of(self.document, path), f"{_render_path(path)}: {message}"))


def _entries(data: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _str(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    return value if isinstance(value, str) else None


def _absolute_problem(path: str) -> str | None:
    if path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
        return f"{path!r} must be a relative path inside the repository (use '/' separators)"
    return None


def _path_problem(path: str) -> str | None:
    absolute = _absolute_problem(path)
    if absolute:
        return absolute
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        return f"{path!r} leaves the repository"
    return None


def _semantic_issues(data: Any, document: Any) -> list[tuple[int | None, str]]:
    check = _Checker(document)
    environments = _entries(data, "environments")
    models = _entries(data, "models")
    env_names = _check_unique_names(check, "environments", environments)
    model_names = _check_unique_names(check, "models", models)
    env_paths = _check_environments(check, environments, env_names)
    _check_models(check, models, env_paths, env_names)
    _check_triggers(check, _entries(data, "triggers"), env_names, model_names)
    _check_control_characters(check, data)
    return check.found


def _check_control_characters(check: _Checker, data: Any) -> None:
    """No config string needs a control character; JSON Schema patterns ending in `$` let
    a final newline through (Python's `$` matches before it), so say it here."""
    stack: list[tuple[list[PathPart], Any]] = [([], data)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            if _CONTROL.search(node):
                check.add(where, f"{node!r} contains a control character (a newline?)")
        elif isinstance(node, dict):
            stack.extend(([*where, str(k)], v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(([*where, i], v) for i, v in enumerate(node))


def _check_unique_names(
    check: _Checker, section: str, entries: list[tuple[int, dict[str, Any]]]
) -> list[str]:
    first: dict[str, int] = {}
    for i, item in entries:
        name = _str(item, "name")
        if name is None:
            continue
        if name in first:
            check.add(
                [section, i, "name"],
                f"duplicate name {name!r} (already used by {section}[{first[name]}])",
            )
        else:
            first[name] = i
    return list(first)


def _check_environments(
    check: _Checker, environments: list[tuple[int, dict[str, Any]]], names: list[str]
) -> dict[str, str]:
    """Check paths, promote_from and approvals; return {environment name: normalised path}."""
    paths: dict[str, str] = {}
    used: dict[str, str] = {}
    promote_from: dict[str, str] = {}
    for i, env in environments:
        name, path = _str(env, "name"), _str(env, "path")
        if path:
            problem = _path_problem(path)
            if problem:
                check.add(["environments", i, "path"], problem)
            else:
                normal = posixpath.normpath(path)
                if normal in used:
                    check.add(
                        ["environments", i, "path"],
                        f"{path!r} is already the path of environment {used[normal]!r}",
                    )
                if name:
                    used.setdefault(normal, name)
                    paths.setdefault(name, normal)
        source = promote_from_name(env.get("promote_from"))
        if source is not None and name is not None:
            if source == name:
                check.add(["environments", i, "promote_from"], "cannot promote from itself")
            elif source not in names:
                check.add(
                    ["environments", i, "promote_from"],
                    f"unknown environment {source!r}{_did_you_mean(source, names)}; "
                    f"environments: {', '.join(names)}",
                )
            else:
                promote_from.setdefault(name, source)
        if env.get("auto_promote") is True and source is None:
            check.add(
                ["environments", i, "auto_promote"],
                "auto_promote needs promote_from (the environment whose merges it follows)",
            )
        _check_approvals(check, i, env.get("approvals"))
    _check_promotion_cycles(check, environments, promote_from)
    _check_argocd(check, environments)
    return paths


def promote_from_name(value: Any) -> str | None:
    """The upstream environment of `promote_from`: `staging` or `{env: staging, ...}`."""
    if isinstance(value, dict):
        value = value.get("env")
    return value if isinstance(value, str) else None


_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds of a duration such as `30m`, `1h30m` or `2d` (ValueError when malformed)."""
    if not re.fullmatch(r"(?:[0-9]+[smhd])+", text or ""):
        raise ValueError(f"{text!r} is not a duration such as 30m, 1h30m or 2d")
    return float(sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text)))


def _check_argocd(check: _Checker, environments: list[tuple[int, dict[str, Any]]]) -> None:
    """One environment per Argo CD application: a notification must name one environment."""
    first: dict[str, str] = {}
    for i, env in environments:
        argocd = env.get("argocd")
        application = _str(argocd, "application") if isinstance(argocd, dict) else None
        if application is None:
            continue
        name = _str(env, "name") or f"environments[{i}]"
        if application in first:
            check.add(
                ["environments", i, "argocd", "application"],
                f"application {application!r} already syncs environment {first[application]!r}",
            )
        else:
            first[application] = name
    canaries: dict[tuple[str, str], str] = {}
    for i, env in environments:
        flagger = env.get("flagger")
        if not isinstance(flagger, dict):
            continue
        key = (str(flagger.get("namespace")), str(flagger.get("canary")))
        name = _str(env, "name") or f"environments[{i}]"
        if key in canaries:
            check.add(
                ["environments", i, "flagger"],
                f"canary {key[0]}/{key[1]} already rolls out environment {canaries[key]!r}",
            )
        canaries.setdefault(key, name)
    for i, env in environments:
        if env.get("on_canary_failure") == "rollback" and not isinstance(env.get("flagger"), dict):
            check.add(
                ["environments", i, "on_canary_failure"],
                "needs flagger (the canary whose failure triggers the rollback)",
            )
    synced = {_str(env, "name") for _, env in environments if isinstance(env.get("argocd"), dict)}
    for i, env in environments:
        promote_from = env.get("promote_from")
        if not isinstance(promote_from, dict) or "healthy_for" not in promote_from:
            continue
        upstream = promote_from_name(promote_from)
        if upstream is not None and upstream not in synced:
            check.add(
                ["environments", i, "promote_from", "healthy_for"],
                f"needs environment {upstream!r} to name its Argo CD application "
                "(argocd.application): its health comes from Argo CD's notifications",
            )


def _check_approvals(check: _Checker, index: int, approvals: Any) -> None:
    if not isinstance(approvals, dict):
        return
    required, users, teams = (approvals.get(k) for k in ("required", "users", "teams"))
    if not isinstance(required, int) or isinstance(required, bool):
        return
    # only well-formed entries count: the schema reports the others with their line
    users = [u for u in users if isinstance(u, str)] if isinstance(users, list) else []
    teams = teams if isinstance(teams, list) else []
    if users and not teams and required > len(set(users)):
        check.add(
            ["environments", index, "approvals", "required"],
            f"{required} approvals can never be given: only {len(set(users))} user(s) "
            f"may approve ({', '.join(map(str, users))}) and no teams are listed",
        )


def _check_promotion_cycles(
    check: _Checker, environments: list[tuple[int, dict[str, Any]]], promote_from: dict[str, str]
) -> None:
    index = {_str(env, "name"): i for i, env in reversed(environments)}
    reported: set[str] = set()
    for start in promote_from:
        chain = [start]
        while chain[-1] in promote_from and promote_from[chain[-1]] not in chain:
            chain.append(promote_from[chain[-1]])
        if chain[-1] in promote_from and promote_from[chain[-1]] in chain:
            cycle = chain[chain.index(promote_from[chain[-1]]) :]
            if not reported.intersection(cycle):
                reported.update(cycle)
                first = min(cycle, key=lambda n: index.get(n, 0))
                loop = " -> ".join([*cycle, cycle[0]])
                check.add(
                    ["environments", index.get(first, 0), "promote_from"],
                    f"promote_from forms a cycle: {loop}",
                )


def _check_models(
    check: _Checker,
    models: list[tuple[int, dict[str, Any]]],
    env_paths: dict[str, str],
    env_names: list[str],
) -> None:
    for i, model in models:
        rules = model.get("set")
        seen: dict[tuple[str, str], list[tuple[int, frozenset[str]]]] = {}
        for j, rule in enumerate(rules if isinstance(rules, list) else []):
            if not isinstance(rule, dict):
                continue
            where: list[PathPart] = ["models", i, "set", j]
            scope = _rule_scope(check, where, rule, env_paths, env_names)
            file, field = _str(rule, "file"), _str(rule, "field")
            if file:
                _check_file(check, [*where, "file"], file, scope)
            if field:
                _check_field(check, [*where, "field"], field)
            value = _str(rule, "value")
            if value is not None:
                _check_template(check, [*where, "value"], value)
            if file and field:
                key = (posixpath.normpath(file), field)
                names = frozenset(scope)
                for other, other_names in seen.get(key, []):
                    shared = sorted(names & other_names)
                    if shared:
                        check.add(
                            [*where, "field"],
                            f"sets the same field as set[{other}] in environment"
                            f"{'s' if len(shared) > 1 else ''} {', '.join(map(repr, shared))}",
                        )
                        break
                seen.setdefault(key, []).append((j, names))
        pattern = _str(model, "version_pattern")
        if pattern is not None:
            _check_version_pattern(check, ["models", i, "version_pattern"], pattern)
        traffic = model.get("traffic")
        if isinstance(traffic, dict):
            where = ["models", i, "traffic"]
            file = _str(traffic, "file")
            scope = _rule_scope(check, where, traffic, env_paths, env_names)
            if file:
                _check_file(check, [*where, "file"], file, scope)
            for side in ("baseline", "candidate"):
                field = _str(traffic, side)
                if field:
                    _check_field(check, [*where, side], field)
            if traffic.get("baseline") and traffic.get("baseline") == traffic.get("candidate"):
                check.add([*where, "candidate"], "is the same field as baseline")


def _rule_scope(
    check: _Checker,
    where: list[PathPart],
    rule: dict[str, Any],
    env_paths: dict[str, str],
    known: list[str],
) -> dict[str, str]:
    """{name: path} of the environments a rule applies to (all without `environments`);
    unknown names are reported, environments with an invalid path (reported) left out."""
    names = rule.get("environments")
    if not isinstance(names, list):
        return env_paths
    scope: dict[str, str] = {}
    for k, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in env_paths:
            scope[name] = env_paths[name]
        elif name not in known:
            check.add(
                [*where, "environments", k],
                f"unknown environment {name!r}{_did_you_mean(name, known)}; "
                f"environments: {', '.join(known)}",
            )
    return scope


def _check_version_pattern(check: _Checker, where: list[PathPart], pattern: str) -> None:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        check.add(where, f"is not a regular expression: {exc}")
        return
    if compiled.fullmatch(""):
        check.add(where, "matches the empty string")


def _check_file(
    check: _Checker, where: list[PathPart], file: str, env_paths: dict[str, str]
) -> None:
    problem = _absolute_problem(file)
    if problem:
        check.add(where, problem)
        return
    for env, env_path in env_paths.items():
        joined = posixpath.normpath(posixpath.join(env_path, file))
        if joined == ".." or joined.startswith("../"):
            check.add(where, f"{file!r} leaves the repository from environment {env!r}")
            return


def _check_field(check: _Checker, where: list[PathPart], field: str) -> None:
    problem = check_field_path(field)
    if problem:
        check.add(where, problem)


def _check_template(check: _Checker, where: list[PathPart], value: str) -> None:
    allowed = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        check.add(where, f"invalid template {value!r}: {exc} (write '{{{{' for a literal brace)")
        return
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            close = difflib.get_close_matches(name, PLACEHOLDERS, n=1, cutoff=0.6)
            guess = f" (did you mean {{{close[0]}}}?)" if close else ""
            shown = "{" + name + "}"
            check.add(where, f"unknown placeholder {shown}{guess}; allowed: {allowed}")
        elif spec or conversion:
            check.add(where, f"placeholder {{{name}}} takes no format spec or conversion")


def _check_triggers(
    check: _Checker,
    triggers: list[tuple[int, dict[str, Any]]],
    env_names: list[str],
    model_names: list[str],
) -> None:
    for i, trigger in triggers:
        target = _str(trigger, "promote_to")
        if target is not None and target not in env_names:
            check.add(
                ["triggers", i, "promote_to"],
                f"unknown environment {target!r}{_did_you_mean(target, env_names)}; "
                f"environments: {', '.join(env_names)}",
            )
        model = _str(trigger, "model")
        if model is not None and model not in model_names:
            known = ", ".join(model_names) or "(none configured)"
            check.add(
                ["triggers", i, "model"],
                f"unknown model {model!r}{_did_you_mean(model, model_names)}; models: {known}",
            )
        event = _str(trigger, "on")
        if event in TRIGGER_EVENTS:
            for key, needs in (
                ("alias", "model_version_alias.created"),
                ("tag", "model_version_tag.set"),
            ):
                if key in trigger and event != needs:
                    check.add(["triggers", i, key], f"is only used with 'on: {needs}'")


# --------------------------------------------------------------------------- building


def _build(data: dict[str, Any]) -> Config:
    environments = tuple(_build_environment(env) for env in data["environments"])
    models = tuple(_build_model(model) for model in data.get("models", []))
    triggers = tuple(
        Trigger(
            on=t["on"],
            promote_to=t["promote_to"],
            model=t.get("model"),
            alias=t.get("alias"),
            tag=t.get("tag"),
        )
        for t in data.get("triggers", [])
    )
    return Config(
        version=data["version"], environments=environments, models=models, triggers=triggers
    )


def _build_environment(env: dict[str, Any]) -> Environment:
    approvals = env.get("approvals", {})
    promote_from = env.get("promote_from")
    method = cast(Literal["merge", "squash", "rebase"], env.get("merge_method", "squash"))
    return Environment(
        name=env["name"],
        path=posixpath.normpath(env["path"]),
        auto_merge=env.get("auto_merge", False),
        promote_from=promote_from_name(promote_from),
        healthy_for_s=(
            parse_duration(promote_from["healthy_for"])
            if isinstance(promote_from, dict) and "healthy_for" in promote_from
            else 0.0
        ),
        production=env.get("production", False),
        argocd_application=(env.get("argocd") or {}).get("application"),
        argocd_sync=(env.get("argocd") or {}).get("sync", False),
        flagger_canary=(
            (env["flagger"]["namespace"], env["flagger"]["canary"]) if "flagger" in env else None
        ),
        on_canary_failure=cast(Literal["none", "rollback"], env.get("on_canary_failure", "none")),
        auto_promote=env.get("auto_promote", False),
        approvals=Approvals(
            required=approvals.get("required", 0),
            users=tuple(approvals.get("users", ())),
            teams=tuple(approvals.get("teams", ())),
        ),
        merge_method=method,
        required_checks=tuple(env.get("required_checks", ())),
        storage_schemes=tuple(env.get("storage_schemes", DEFAULT_STORAGE_SCHEMES)),
    )


def _build_model(model: dict[str, Any]) -> Model:
    traffic = model.get("traffic")
    return Model(
        name=model["name"],
        registry_name=model["registry_name"],
        set=tuple(
            SetRule(
                file=posixpath.normpath(r["file"]),
                field=r["field"],
                value=r["value"],
                environments=tuple(r.get("environments", ())),
            )
            for r in model["set"]
        ),
        traffic=TrafficRule(
            file=posixpath.normpath(traffic["file"]),
            baseline=traffic["baseline"],
            candidate=traffic["candidate"],
            environments=tuple(traffic.get("environments", ())),
        )
        if traffic
        else None,
        version_pattern=model.get("version_pattern", DEFAULT_VERSION_PATTERN),
    )
