"""Exceptions the core raises; each carries a message fit to show a user."""

from __future__ import annotations

from dataclasses import dataclass


class BotError(Exception):
    """Base for errors whose message is safe and useful to show to a user."""


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None  # 1-based, None when not attributable
    message: str
    column: int | None = None  # 1-based, where the YAML parser knows it

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where += f":{self.column}"
        return f"{where}: {self.message}"


class ConfigError(BotError):
    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class EditError(BotError):
    """An overlay edit could not be applied (missing file/key, ambiguous selector...)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class PlanError(BotError):
    """A promotion request cannot be planned (unknown model/environment, bad traffic...)."""


class TransientError(BotError):
    """A temporary failure (5xx, rate limit, race): the job runs again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)
