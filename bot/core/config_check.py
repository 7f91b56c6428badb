"""Check a valid config against the repository it governs: overlays and fields must exist."""

from __future__ import annotations

from bot.core.errors import EditError
from bot.core.overlays import apply_edits, read_field, safe_repo_path
from bot.core.types import Config, Snapshot

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def check_repository(config: Config, snapshot: Snapshot) -> list[str]:
    """Problems that only show against the files: missing overlays or files, and fields that
    neither exist nor can be created (a missing final key or list entry is created)."""
    problems: list[str] = []
    for env in config.environments:
        if not any(f"{env.path}/{name}" in snapshot for name in KUSTOMIZATION_NAMES):
            problems.append(f"environment '{env.name}': no kustomization.yaml in {env.path}/")
            continue
        for model in config.models:
            targets = [(rule.file, rule.field) for rule in model.set if rule.applies_to(env.name)]
            if model.traffic is not None and model.traffic.applies_to(env.name):
                targets += [
                    (model.traffic.file, model.traffic.baseline),
                    (model.traffic.file, model.traffic.candidate),
                ]
            for file, field in targets:
                where = f"environment '{env.name}', model '{model.name}'"
                try:
                    path = safe_repo_path(env.path, file)
                except EditError as exc:
                    problems.append(f"{where}: {exc}")
                    continue
                content = snapshot.get(path)
                if content is None:
                    problems.append(f"{where}: {path} does not exist")
                    continue
                try:
                    if read_field(path, content, field) is None:
                        apply_edits(path, content, [(field, "x")])  # created on first promotion?
                except EditError as exc:
                    problems.append(f"{where}: {exc}")
    return problems
