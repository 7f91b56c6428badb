"""Match model-registry events against the `triggers` of .gitops-bot.yaml."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.types import Config, Model, Trigger


@dataclass(frozen=True)
class RegistryEvent:
    """A registry event reduced to what triggers look at."""

    kind: str  # model_version.created | model_version_alias.created | model_version_tag.set
    registry_name: str
    version: str
    alias: str = ""
    tag_key: str = ""
    tag_value: str = ""


@dataclass(frozen=True)
class TriggerMatch:
    trigger: Trigger
    model: Model


def _tag_matches(expected: str, key: str, value: str) -> bool:
    want_key, sep, want_value = expected.partition("=")
    return key == want_key and (not sep or value == want_value)


def match_triggers(config: Config, event: RegistryEvent) -> list[TriggerMatch]:
    """Every (trigger, model) pair this event fires, in config order, without duplicates."""
    matches: list[TriggerMatch] = []
    seen: set[tuple[str, str]] = set()
    for trigger in config.triggers:
        if trigger.on != event.kind:
            continue
        if trigger.alias is not None and trigger.alias != event.alias:
            continue
        if trigger.tag is not None and not _tag_matches(
            trigger.tag, event.tag_key, event.tag_value
        ):
            continue
        for model in config.models:
            if model.registry_name != event.registry_name:
                continue
            if trigger.model is not None and trigger.model != model.name:
                continue
            key = (model.name, trigger.promote_to)
            if key not in seen:
                seen.add(key)
                matches.append(TriggerMatch(trigger, model))
    return matches
