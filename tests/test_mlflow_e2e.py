"""A real MLflow server drives a running bot to staging and production PRs: through its signed
webhooks, and through the periodic reconcile when the webhooks are lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from bot_harness import MLFLOW_SECRET
from bot_process import BotProcess, bot_env, free_port
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
MLFLOW_VENV = ROOT / ".venv-mlflow"
MLFLOW_PYTHON = MLFLOW_VENV / "bin" / "python"
DRIVER = Path(__file__).with_name("mlflow_driver.py")
# A fixed Fernet key, so every server process decrypts the stored webhook secret the same way.
FERNET_KEY = "34qrI7GJQYIbTB_mjUDxGINB8T-3EAAKc15Oeb_SYiw="
REGISTRY_NAME = "fraud-detector"
TIMEOUT = 120.0  # MLflow delivers from a background thread pool; bounded, not tight


def _base_env(**extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    env.update(extra)
    return env


def _tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def mlflow_server(workdir: Path) -> Iterator[str]:
    """`mlflow server` on loopback with a SQLite store; yields its URL, kills its process group."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "mlflow-server.log"
    port = free_port()
    env = _base_env(
        MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https",
        MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true",
        MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY=FERNET_KEY,
        # the GenAI job runner forks a handful of huey consumers; webhooks do not need it
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    args = [
        str(MLFLOW_VENV / "bin" / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root",
        str(workdir / "artifacts"),
        "--no-serve-artifacts",  # clients write to the artifact root: real storage paths
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",  # one process, one webhook cache
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args, env=env, cwd=workdir, stdout=log, stderr=log, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited early:\n{_tail(log_path)}", pytrace=False)
            try:
                if requests.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy:\n{_tail(log_path)}", pytrace=False)
            time.sleep(0.2)
        yield url
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group (uvicorn runs as a child), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            os.killpg(proc.pid, signal.SIGKILL)  # stray children of the group
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def drive(tracking_uri: str, workdir: Path, command: str, **args: Any) -> dict[str, Any]:
    """Run one tests/mlflow_driver.py command with MLflow's own client; its JSON result."""
    done = subprocess.run(
        [str(MLFLOW_PYTHON), str(DRIVER), command, json.dumps(args)],
        env=_base_env(MLFLOW_TRACKING_URI=tracking_uri),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"driver {command} failed:\n{done.stdout}\n{done.stderr}"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    result: dict[str, Any] = json.loads(lines[-1])  # MLflow prints run links before it
    return result


def wait_for(what: str, predicate: Callable[[], Any], logs: list[Path]) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    tails = "\n\n".join(f"--- {p.name}\n{_tail(p)}" for p in logs)
    pytest.fail(f"timed out after {TIMEOUT:.0f}s waiting for {what}\n{tails}", pytrace=False)


def _reconcile_rounds(bot: BotProcess) -> int:
    """Reconcile jobs the bot's worker finished, from its own /metrics."""
    text = requests.get(f"{bot.url}/metrics", timeout=5).text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gitops_bot_jobs_total"
        and sample.labels == {"kind": "reconcile", "outcome": "done"}
    )


def _pr_on(fake: Any, repo: str, branch: str, *, merged: bool | None = None) -> Any:
    for pr in fake.prs(repo):
        if pr["head"]["ref"] == branch and (merged is None or pr["merged"] is merged):
            return pr
    return None


@dataclass(frozen=True)
class Mlflow:
    tracking_uri: str
    work: Path
    started: float  # monotonic time the server was asked to start: the test's runtime origin

    def drive(self, command: str, **args: Any) -> dict[str, Any]:
        return drive(self.tracking_uri, self.work, command, **args)


@pytest.fixture
def mlflow(tmp_path: Path) -> Iterator[Mlflow]:
    """A real `mlflow server` from .venv-mlflow (a missing install fails, it never skips)."""
    if not MLFLOW_PYTHON.exists():
        pytest.fail(
            f"{MLFLOW_VENV} is missing: run scripts/setup-mlflow to install the pinned MLflow",
            pytrace=False,
        )
    started = time.monotonic()
    work = tmp_path / "mlflow"
    with mlflow_server(work) as tracking_uri:
        yield Mlflow(tracking_uri, work, started)


@contextmanager
def serving_bot(
    fake: Any, repo: str, tmp_path: Path, mlflow: Mlflow, **extra: str
) -> Iterator[tuple[BotProcess, list[Path]]]:
    """`gitops-bot serve` against the fake GitHub over HTTP; yields it and the logs to show."""
    env = bot_env(
        fake,
        fake.serve(),
        f"sqlite:///{tmp_path / 'bot.db'}",
        (repo,),
        MLFLOW_TRACKING_URI=mlflow.tracking_uri,
        **extra,
    )
    bot_log = tmp_path / "serve.log"
    bot = BotProcess.serve(env, bot_log).start()
    try:
        yield bot, [bot_log, mlflow.work / "mlflow-server.log"]
    finally:
        bot.stop()
    assert "Traceback" not in bot.log(), bot.log()


@pytest.mark.slow
def test_real_mlflow_webhooks_promote_to_staging_then_production_with_the_resolved_storage_uri(
    fake_github, gitops_repo, tmp_path, mlflow
):
    with serving_bot(fake_github, gitops_repo, tmp_path, mlflow) as (bot, logs):
        # the webhook must exist before the first event: the server caches the list per event
        mlflow.drive(
            "create-webhook",
            name="gitops-bot",
            url=f"{bot.url}/webhooks/mlflow",
            events=["model_version.created", "model_version_alias.created"],
            secret=MLFLOW_SECRET,
        )
        registered = mlflow.drive("register-version", name=REGISTRY_NAME)
        version = registered["version"]
        # MLflow 3 registers logged models by reference: the case the bot has to resolve
        assert registered["source"].startswith("models:/m-"), registered
        resolved = mlflow.drive("download-uri", name=REGISTRY_NAME, version=version)["uri"]
        assert resolved.startswith(str(mlflow.work / "artifacts")), resolved

        staging = wait_for(
            "the staging PR to auto-merge",
            lambda: _pr_on(
                fake_github,
                gitops_repo,
                f"gitops-bot/staging/fraud-v2-candidate-{version}",
                merged=True,
            ),
            logs,
        )
        assert staging["title"] == f"Promote {REGISTRY_NAME} v{version} to staging"
        assert resolved in staging["body"]
        # MLflow's delivery carries `run_id: null` for a logged model; the bot asks MLflow
        assert registered["run_id"] in staging["body"]
        staged = fake_github.file_at(
            gitops_repo, staging["head"]["sha"], "k8s/overlays/staging/model-config.yaml"
        ).decode()
        assert f'fraud-v2-storage-uri: "{resolved}"' in staged
        assert "models:/" not in staged

        assert mlflow.drive(
            "set-alias",
            name=REGISTRY_NAME,
            alias="champion",
            version=version,
        ) == {"version": version}
        production = wait_for(
            "the production PR",
            lambda: _pr_on(
                fake_github, gitops_repo, f"gitops-bot/production/fraud-v2-candidate-{version}"
            ),
            logs,
        )
        head = production["head"]["sha"]
        assert production["title"] == f"Promote {REGISTRY_NAME} v{version} to production"
        assert resolved in production["body"]
        assert registered["run_id"] in production["body"]
        prod_config = fake_github.file_at(
            gitops_repo, head, "k8s/overlays/production/model-config.yaml"
        ).decode()
        assert f"fraud-v2-storage-uri: '{resolved}'" in prod_config  # quoting kept
        assert "models:/" not in prod_config
        gate = wait_for(
            "the approval check on the production PR",
            lambda: {c["name"]: c for c in fake_github.check_runs(gitops_repo, head)}.get(
                "gitops-bot/approval"
            ),
            logs,
        )
        assert gate["status"] != "completed" and gate["conclusion"] is None, gate
        assert fake_github.pr(gitops_repo, production["number"])["merged"] is False
    print(f"real MLflow end-to-end: {time.monotonic() - mlflow.started:.1f}s")


@pytest.mark.slow
def test_reconcile_opens_the_production_pr_for_a_champion_alias_whose_webhooks_were_lost(
    fake_github, gitops_repo, tmp_path, mlflow
):
    interval = 2
    with serving_bot(
        fake_github, gitops_repo, tmp_path, mlflow, RECONCILE_INTERVAL_SECONDS=str(interval)
    ) as (bot, logs):
        # no webhook is created: every registry event below is lost on the way to the bot
        registered = mlflow.drive("register-versions", name=REGISTRY_NAME, until=6)["versions"]
        assert [v["version"] for v in registered] == ["1", "2", "3", "4", "5", "6"]
        # staging deploys v6 in the example repo, so v6 satisfies production's promote_from
        v6, v5 = registered[5], registered[4]
        assert v6["source"].startswith("models:/m-"), v6
        resolved = v6["download_uri"]
        assert resolved.startswith(str(mlflow.work / "artifacts")), resolved
        assert v5["download_uri"] != resolved

        rounds = _reconcile_rounds(bot)
        wait_for("a reconcile round", lambda: _reconcile_rounds(bot) > rounds, logs)
        assert fake_github.prs(gitops_repo) == []  # no alias yet: nothing to heal

        assert mlflow.drive("set-alias", name=REGISTRY_NAME, alias="champion", version="6") == {
            "version": "6"
        }
        branch = "gitops-bot/production/fraud-v2-candidate-6"
        production = wait_for(
            "reconcile to open the production PR",
            lambda: _pr_on(fake_github, gitops_repo, branch),
            logs,
        )
        head = production["head"]["sha"]
        assert production["title"] == f"Promote {REGISTRY_NAME} v6 to production"
        assert resolved in production["body"]
        assert v5["download_uri"] not in production["body"]
        assert v6["run_id"] in production["body"]
        assert "reconcile" in production["body"].lower()
        prod_config = fake_github.file_at(
            gitops_repo, head, "k8s/overlays/production/model-config.yaml"
        ).decode()
        assert f"fraud-v2-storage-uri: '{resolved}'" in prod_config
        assert "models:/" not in prod_config
        gate = wait_for(
            "the approval check on the production PR",
            lambda: {c["name"]: c for c in fake_github.check_runs(gitops_repo, head)}.get(
                "gitops-bot/approval"
            ),
            logs,
        )
        assert gate["status"] != "completed" and gate["conclusion"] is None, gate

        # idempotent: more rounds see the same alias and change nothing
        rounds, calls = _reconcile_rounds(bot), len(fake_github.calls)
        wait_for("three more reconcile rounds", lambda: _reconcile_rounds(bot) >= rounds + 3, logs)
        writes = [(c.method, c.path) for c in fake_github.calls[calls:] if c.method != "GET"]
        assert writes == []  # each round re-plans the same PR and finds GitHub already there
        prs = fake_github.prs(gitops_repo)
        assert [(p["number"], p["head"]["ref"], p["state"]) for p in prs] == [
            (production["number"], branch, "open")
        ]
        assert prs[0]["head"]["sha"] == head  # no new commit pushed
        gate = {c["name"]: c for c in fake_github.check_runs(gitops_repo, head)}[
            "gitops-bot/approval"
        ]
        assert gate["status"] != "completed" and gate["conclusion"] is None, gate
    print(f"real MLflow reconcile end-to-end: {time.monotonic() - mlflow.started:.1f}s")
