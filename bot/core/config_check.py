"""Check a valid config against the repository it governs: overlays and fields must exist."""

from __future__ import annotations

from bot.core.errors import EditError
from bot.core.overlays import read_field, safe_repo_path
from bot.core.types import Config, Snapshot

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def check_repository(config: Config, snapshot: Snapshot) -> list[str]:
    """Problems that only show against the files: missing overlays, files or fields."""
    problems: list[str] = []
    for env in config.environments:
        if not any(f"{env.path}/{name}" in snapshot for name in KUSTOMIZATION_NAMES):
            problems.append(f"environment '{env.name}': no kustomization.yaml in {env.path}/")
            continue
        for model in config.models:
            targets = [(rule.file, rule.field) for rule in model.set]
            if model.traffic is not None:
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
                        problems.append(f"{where}: {path} has no value at {field}")
                except EditError as exc:
                    problems.append(f"{where}: {exc}")
    return problems
