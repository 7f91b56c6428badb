"""The bot's web app with its durable queue swapped for one that keeps nothing (diagnosis).

    gunicorn 'bench.bot_without_queue:create_wsgi_app()'   # from the repo root

`bench/intake.py --diagnose` runs it as a third side: the bot's intake minus the durable
write. Its ratio to the floor is what the bot's own code costs; the rest of the gap between
the floor and the bot is the transaction that makes a 202 mean "stored". Never deploy it:
it answers 202 for deliveries it does not keep.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from bot.gateways.queue import NewJob, check_new_job, serialise_payload
from bot.settings import load_settings
from bot.web.app import create_app


class DiscardingQueue:
    """Does what `enqueue` does before the database (checks, serialises), then forgets."""

    def enqueue(self, job: NewJob) -> bool:
        check_new_job(job)
        serialise_payload(job.payload)
        return True

    def ping(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"the discarding queue has no {name}: intake only")


def create_wsgi_app() -> Flask:
    return create_app(load_settings(), DiscardingQueue())  # type: ignore[arg-type]
