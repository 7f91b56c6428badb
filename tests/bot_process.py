"""Run `gitops-bot serve` / `gitops-bot worker` as real subprocesses against the fake GitHub
served over HTTP (`FakeGitHub.serve()`), for tests that kill, restart or scale processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from bot_harness import GITHUB_SECRET, MLFLOW_SECRET

GITOPS_BOT = str(Path(sys.executable).with_name("gitops-bot"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_env(
    fake: Any, api_url: str, database_url: str, repos: tuple[str, ...], **extra: str
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "GITHUB_APP_ID": str(fake.app_id),
        "GITHUB_PRIVATE_KEY": fake.private_key_pem,
        "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "GITHUB_APP_SLUG": fake.app_slug,
        "GITHUB_API_URL": api_url,
        "MLFLOW_WEBHOOK_SECRET": MLFLOW_SECRET,
        "MLFLOW_TARGET_REPOS": ",".join(repos),
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


class BotProcess:
    """One `gitops-bot` subprocess with its log captured to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @classmethod
    def serve(cls, env: dict[str, str], log_path: Path, *, workers: bool = True) -> BotProcess:
        port = free_port()
        # each process its own metrics listener, never the shared default port
        env = {"METRICS_LISTEN": f"127.0.0.1:{free_port()}", **env}
        args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
        if not workers:
            args.append("--no-workers")
        process = cls(args, env, log_path)
        process.port = port
        return process

    @classmethod
    def worker(cls, env: dict[str, str], log_path: Path) -> BotProcess:
        return cls(["worker"], env, log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """/metrics on the process's loopback metrics listener (METRICS_LISTEN)."""
        return f"http://{self.env['METRICS_LISTEN']}/metrics"

    def start(self, timeout: float = 30.0) -> BotProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([GITOPS_BOT, *self.args], env=self.env, stdout=log, stderr=log)
        if self.port is not None:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"gitops-bot exited early:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"gitops-bot not ready after {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease release — the crash case."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


OPERATOR = "octo-operator"
SESSION_SECRET = "session-secret-for-serve-tests-0123456789"


def enable_signin(
    bot: BotProcess, fake: Any, repos: tuple[str, ...], login: str = OPERATOR
) -> None:
    """Before `bot.start()`: sign-in through the fake GitHub's OAuth client, `login` signed
    in to GitHub in the "browser" and able to read `repos`."""
    assert bot.proc is None, "enable sign-in before starting the process"
    bot.env.update(
        GITHUB_CLIENT_ID=fake.client_id,
        GITHUB_CLIENT_SECRET=fake.client_secret,
        SESSION_SECRET=SESSION_SECRET,
        PUBLIC_URL=bot.url,
    )
    fake.register_callback(f"{bot.url}/oauth/callback")
    fake.sign_in_web(login)
    for repo in repos:
        fake.set_permission(repo, login, "read")


def signed_in(bot: BotProcess) -> requests.Session:
    """A requests session that went through "Sign in with GitHub" on the running bot."""
    session = requests.Session()
    landed = session.get(f"{bot.url}/login", timeout=30)
    assert landed.status_code == 200 and landed.url == f"{bot.url}/", (landed.url, landed.text)
    return session


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy and return its value (TimeoutError otherwise)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met")
