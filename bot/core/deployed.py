"""Read back what an environment deploys: the model version and URI in its overlay files."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from bot.core.errors import EditError
from bot.core.overlays import read_field, safe_repo_path
from bot.core.types import Environment, Model, Snapshot


@dataclass(frozen=True)
class Deployed:
    environment: str
    model: str
    version: str | None  # None when no rule carries {version} or the value does not match
    storage_uri: str | None
    values: tuple[tuple[str, str, str | None], ...]  # (file, field, current value)


def _template_regex(template: str, capture: str) -> re.Pattern[str]:
    """`v{version}` -> ^v(?P<version>.+)$ ; other placeholders match anything."""
    pattern = ""
    for literal, name, _, _ in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if name is None:
            continue
        pattern += f"(?P<{capture}>.+)" if name == capture and capture not in pattern else ".*"
    return re.compile(f"^{pattern}$", re.DOTALL)


def extract_placeholder(template: str, value: str, placeholder: str) -> str | None:
    """The value `placeholder` had when `template` produced `value`, if it did."""
    if "{" + placeholder + "}" not in template:
        return None
    match = _template_regex(template, placeholder).match(value)
    return match.group(placeholder) if match else None


def read_deployed(snapshot: Snapshot, model: Model, environment: Environment) -> Deployed:
    """What `environment` deploys of `model`, from the `set` rules read backwards."""
    values: list[tuple[str, str, str | None]] = []
    version = storage_uri = None
    for rule in model.set:
        try:
            path = safe_repo_path(environment.path, rule.file)
            content = snapshot.get(path)
            current = read_field(path, content, rule.field) if content is not None else None
        except EditError:
            current = None
        values.append((rule.file, rule.field, current))
        if current is None:
            continue
        version = version or extract_placeholder(rule.value, current, "version")
        storage_uri = storage_uri or extract_placeholder(rule.value, current, "storage_uri")
    return Deployed(environment.name, model.name, version, storage_uri, tuple(values))
