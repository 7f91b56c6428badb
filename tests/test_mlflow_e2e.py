"""A real MLflow server drives a running bot to staging and production PRs: through its signed
webhooks, and through the periodic reconcile when the webhooks are lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from bot_harness import MLFLOW_SECRET
from bot_process import GITOPS_BOT, BotProcess, bot_env, enable_signin, free_port, signed_in
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


DEPLOY_DOC = ROOT / "docs" / "deploy.md"
EXAMPLE = ROOT / "examples" / "fraud-detection"
BUCKET = "acme-ml-models"
ARTIFACTS_DESTINATION = f"s3://{BUCKET}/mlartifacts"
# moto's S3 accepts any credentials; MLflow's server and our driver sign with these
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def documented_server_command() -> str:
    """The `mlflow server` block of docs/deploy.md §4.1, run word for word by the tests."""
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    section = text[text.index("### 4.1") : text.index("### 4.2")]
    blocks = [b.split("\n", 1)[1] for b in section.split("```sh")[1:]]
    [block] = [b[: b.index("```")] for b in blocks if "mlflow server" in b]
    return block


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited early:\n{_tail(log_path)}", pytrace=False)
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not healthy:\n{_tail(log_path)}", pytrace=False)
        time.sleep(0.2)


@contextmanager
def s3_server(workdir: Path) -> Iterator[str]:
    """A local S3 (moto_server) on loopback, with the artifact bucket; yields its URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "s3-server.log"
    port = free_port()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(MLFLOW_VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            env=_base_env(), stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, f"{url}/moto-api/", log_path, "moto_server")
        yield url
    finally:
        _stop_group(proc)


@contextmanager
def mlflow_server(workdir: Path, s3_url: str) -> Iterator[str]:
    """`mlflow server` started with docs/deploy.md's own command (SQLite store, artifacts
    served through the server into the local S3); yields its URL, kills its process group."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "mlflow-server.log"
    port = free_port()
    env = _base_env(
        PATH=f"{MLFLOW_VENV / 'bin'}:{os.environ.get('PATH', '')}",
        FERNET_KEY=FERNET_KEY,
        BACKEND_STORE_URI=f"sqlite:///{workdir / 'mlflow.db'}",
        ARTIFACTS_DESTINATION=ARTIFACTS_DESTINATION,
        HOST="127.0.0.1",
        PORT=str(port),
        ALLOWED_HOSTS=f"127.0.0.1:{port},localhost:{port}",
        WORKERS="1",  # one process, one webhook cache
        MLFLOW_S3_ENDPOINT_URL=s3_url,
        # the GenAI job runner forks a handful of huey consumers; webhooks do not need it
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        **S3_CREDENTIALS,
    )
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            ["sh", "-ec", documented_server_command()],
            env=env, cwd=workdir, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, f"{url}/health", log_path, "mlflow server")
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


def drive(
    tracking_uri: str, workdir: Path, command: str, s3_url: str = "", **args: Any
) -> dict[str, Any]:
    """Run one tests/mlflow_driver.py command with MLflow's own client; its JSON result."""
    done = subprocess.run(
        [str(MLFLOW_PYTHON), str(DRIVER), command, json.dumps(args)],
        env=_base_env(
            MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_S3_ENDPOINT_URL=s3_url, **S3_CREDENTIALS
        ),
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
    text = requests.get(bot.metrics_url, timeout=5).text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gitops_bot_jobs_total"
        and sample.labels == {"kind": "reconcile", "outcome": "done"}
    )


def _refusals_counted(bot: BotProcess, kind: str) -> int:
    """gitops_bot_promotion_refusals_total for one kind, from the bot's metrics listener."""
    text = requests.get(bot.metrics_url, timeout=5).text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gitops_bot_promotion_refusals_total" and sample.labels == {"kind": kind}
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
    s3_url: str

    def drive(self, command: str, **args: Any) -> dict[str, Any]:
        return drive(self.tracking_uri, self.work, command, self.s3_url, **args)

    def stored(self, uri: str) -> list[str]:
        """Object keys under an `s3://` location of the artifact bucket."""
        assert uri.startswith(f"s3://{BUCKET}/"), uri
        prefix = uri[len(f"s3://{BUCKET}/") :]
        return list(self.drive("list-objects", bucket=BUCKET, prefix=prefix)["keys"])


def servable(download_uri: str) -> str:
    """Where a version's `mlflow-artifacts:` download URI really is: the bot's mapping."""
    assert download_uri.startswith("mlflow-artifacts:"), download_uri
    return f"{ARTIFACTS_DESTINATION}/{download_uri.split(':', 1)[1].lstrip('/')}"


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
    with s3_server(work) as s3_url:
        drive("", work, "create-bucket", s3_url, bucket=BUCKET)
        with mlflow_server(work, s3_url) as tracking_uri:
            yield Mlflow(tracking_uri, work, started, s3_url)


@contextmanager
def serving_bot(
    fake: Any, repo: str, tmp_path: Path, mlflow: Mlflow, *, start: bool = True, **extra: str
) -> Iterator[tuple[BotProcess, list[Path]]]:
    """`gitops-bot serve` against the fake GitHub over HTTP (started unless `start` is
    False: then the test starts it); yields it and the logs to show."""
    env = bot_env(
        fake,
        fake.serve(),
        f"sqlite:///{tmp_path / 'bot.db'}",
        (repo,),
        MLFLOW_TRACKING_URI=mlflow.tracking_uri,
        **{"MLFLOW_ARTIFACTS_DESTINATION": ARTIFACTS_DESTINATION, **extra},
    )
    bot_log = tmp_path / "serve.log"
    bot = BotProcess.serve(env, bot_log)
    enable_signin(bot, fake, (repo,))  # the operator page's refusals: signed in
    if start:
        bot.start()
    try:
        yield bot, [bot_log, mlflow.work / "mlflow-server.log"]
    finally:
        bot.stop()
    assert "Traceback" not in bot.log(), bot.log()


WEBHOOK_EVENTS = ["model_version.created", "model_version_alias.created"]


def create_webhook(mlflow: Mlflow, url: str) -> None:
    """The webhook of docs/deploy.md §4.2; before any version: the server caches the list."""
    mlflow.drive(
        "create-webhook", name="gitops-bot", url=url, events=WEBHOOK_EVENTS, secret=MLFLOW_SECRET
    )


def mlflow_check(mlflow: Mlflow, url: str) -> subprocess.CompletedProcess[str]:
    """`gitops-bot mlflow check` as an operator runs it, triggers from the example repo."""
    return subprocess.run(
        [GITOPS_BOT, "mlflow", "check", "--url", url, "--repo", str(EXAMPLE)],
        env=_base_env(MLFLOW_TRACKING_URI=mlflow.tracking_uri),
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


def staging_deploys(fake: Any, repo: str) -> tuple[str, str]:
    """(image tag, storage URI) of the candidate on the default branch's staging overlay."""
    tag = fake.file_at(repo, "main", "k8s/overlays/staging/kustomization.yaml").decode()
    uri = fake.file_at(repo, "main", "k8s/overlays/staging/model-config.yaml").decode()
    return (
        tag.split("newTag:")[1].split()[0],
        uri.split("fraud-v2-storage-uri:")[1].split()[0].strip("'\""),
    )


def operator_refusals(bot: BotProcess) -> list[dict[str, Any]]:
    status = signed_in(bot).get(f"{bot.url}/api/status", timeout=10).json()
    return [r for repo in status["repositories"] for r in repo.get("refusals", [])]


@pytest.mark.slow
def test_real_mlflow_webhooks_promote_to_staging_then_production_with_a_servable_location(
    fake_github, gitops_repo, tmp_path, mlflow
):
    with serving_bot(fake_github, gitops_repo, tmp_path, mlflow) as (bot, logs):
        create_webhook(mlflow, f"{bot.url}/webhooks/mlflow")
        # the operator's check from the bot's side (docs/deploy.md §4.2), then a wrong URL
        check = mlflow_check(mlflow, f"{bot.url}/webhooks/mlflow")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "test delivery accepted by the bot (HTTP 202)" in check.stdout
        wrong = mlflow_check(mlflow, f"{bot.url}/webhooks/typo")
        assert wrong.returncode == 1 and "no webhook points at" in wrong.stdout, wrong.stdout
        # the example's staging runs v6: versions 1-5 arrive stale, 7 is the new one
        versions = mlflow.drive("register-versions", name=REGISTRY_NAME, until=7)["versions"]
        v7 = versions[-1]
        assert v7["version"] == "7"
        # MLflow 3 registers logged models by reference: the case the bot has to resolve
        assert v7["source"].startswith("models:/m-"), v7
        location = servable(v7["download_uri"])
        assert mlflow.stored(location), "MLflow stored the model in S3"

        staging = wait_for(
            "the staging PR to auto-merge",
            lambda: _pr_on(
                fake_github, gitops_repo, "gitops-bot/staging/fraud-v2-candidate-7", merged=True
            ),
            logs,
        )
        assert staging["title"] == f"Promote {REGISTRY_NAME} v7 to staging"
        assert location in staging["body"]
        # MLflow's delivery carries `run_id: null` for a logged model; the bot asks MLflow
        assert v7["run_id"] in staging["body"]
        staged = fake_github.file_at(
            gitops_repo, staging["head"]["sha"], "k8s/overlays/staging/model-config.yaml"
        ).decode()
        assert f'fraud-v2-storage-uri: "{location}"' in staged
        assert "models:/" not in staged and "mlflow-artifacts:" not in staged
        wait_for(
            "staging to end on v7 whatever order v1-v7 arrived in",
            lambda: staging_deploys(fake_github, gitops_repo) == ("v7", location),
            logs,
        )
        stale = wait_for(
            "the stale versions on the operator page",
            lambda: [r for r in operator_refusals(bot) if r["kind"] == "stale_version"],
            logs,
        )
        assert {r["version"] for r in stale} <= {"1", "2", "3", "4", "5", "6"}

        assert mlflow.drive("set-alias", name=REGISTRY_NAME, alias="champion", version="7") == {
            "version": "7"
        }
        production = wait_for(
            "the production PR",
            lambda: _pr_on(fake_github, gitops_repo, "gitops-bot/production/fraud-v2-candidate-7"),
            logs,
        )
        head = production["head"]["sha"]
        assert production["title"] == f"Promote {REGISTRY_NAME} v7 to production"
        assert location in production["body"] and v7["run_id"] in production["body"]
        prod_config = fake_github.file_at(
            gitops_repo, head, "k8s/overlays/production/model-config.yaml"
        ).decode()
        assert f"fraud-v2-storage-uri: '{location}'" in prod_config  # quoting kept
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


class ReorderingProxy:
    """Loopback HTTP proxy in front of the bot that holds MLflow's delivery of one version
    until the delivery of another has gone through: out-of-order arrival, made certain."""

    def __init__(self, target: str, hold: str, until: str) -> None:
        self.target, self.hold, self.until = target, hold, until
        self.passed = threading.Event()
        self.order: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                version = str(json.loads(body).get("data", {}).get("version", ""))
                if version == proxy.hold:
                    proxy.passed.wait(TIMEOUT)
                headers = {k: v for k, v in self.headers.items() if k.lower().startswith("x-")}
                headers["Content-Type"] = "application/json"
                answer = requests.post(proxy.target, data=body, headers=headers, timeout=30)
                proxy.order.append(version)
                if version == proxy.until:
                    proxy.passed.set()
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/mlflow"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ReorderingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.passed.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_two_versions_delivered_out_of_order_end_with_the_newer_one_deployed(
    fake_github, gitops_repo, tmp_path, mlflow
):
    with (
        serving_bot(fake_github, gitops_repo, tmp_path, mlflow) as (bot, logs),
        ReorderingProxy(f"{bot.url}/webhooks/mlflow", hold="7", until="8") as proxy,
    ):
        create_webhook(mlflow, proxy.url)
        versions = mlflow.drive("register-versions", name=REGISTRY_NAME, until=8)["versions"]
        v8 = versions[-1]
        wait_for("v7's delivery after v8's", lambda: "7" in proxy.order, logs)
        assert proxy.order.index("8") < proxy.order.index("7"), proxy.order
        location = servable(v8["download_uri"])
        wait_for(
            "staging to deploy v8",
            lambda: staging_deploys(fake_github, gitops_repo) == ("v8", location),
            logs,
        )
        refusal = wait_for(
            "v7 recorded as stale on the operator page",
            lambda: [r for r in operator_refusals(bot) if r["version"] == "7"],
            logs,
        )[0]
        assert refusal["kind"] == "stale_version" and refusal["environment"] == "staging"
        assert "v7 is older than v8" in refusal["reason"], refusal
        time.sleep(1.0)  # nothing still in flight may take staging back
        assert staging_deploys(fake_github, gitops_repo) == ("v8", location)
        merged = [p["head"]["ref"] for p in fake_github.prs(gitops_repo) if p["merged"]]
        assert "gitops-bot/staging/fraud-v2-candidate-7" not in merged


@pytest.mark.slow
def test_a_version_registered_while_the_bot_is_down_is_promoted_once_it_is_back(
    fake_github, gitops_repo, tmp_path, mlflow
):
    with serving_bot(
        fake_github, gitops_repo, tmp_path, mlflow, start=False, RECONCILE_INTERVAL_SECONDS="2"
    ) as (bot, logs):
        create_webhook(mlflow, f"{bot.url}/webhooks/mlflow")  # nothing listens there yet
        v7 = mlflow.drive("register-versions", name=REGISTRY_NAME, until=7)["versions"][-1]
        time.sleep(8)  # MLflow retries for about 7 s, then gives the deliveries up
        bot.start()
        staging = wait_for(
            "reconcile to promote v7 to staging",
            lambda: _pr_on(
                fake_github, gitops_repo, "gitops-bot/staging/fraud-v2-candidate-7", merged=True
            ),
            logs,
        )
        assert "reconcile" in staging["body"].lower()
        location = servable(v7["download_uri"])
        assert staging_deploys(fake_github, gitops_repo) == ("v7", location)
        # once: more rounds find staging on v7 and open nothing
        rounds = _reconcile_rounds(bot)
        wait_for("two more reconcile rounds", lambda: _reconcile_rounds(bot) >= rounds + 2, logs)
        staging_prs = [p for p in fake_github.prs(gitops_repo) if "/staging/" in p["head"]["ref"]]
        assert [p["number"] for p in staging_prs] == [staging["number"]]


@pytest.mark.slow
def test_an_mlflow_artifacts_location_is_refused_with_its_reason(
    fake_github, gitops_repo, tmp_path, mlflow
):
    # the operator did not tell the bot where the server's artifacts live
    with serving_bot(
        fake_github, gitops_repo, tmp_path, mlflow, MLFLOW_ARTIFACTS_DESTINATION=""
    ) as (bot, logs):
        create_webhook(mlflow, f"{bot.url}/webhooks/mlflow")
        v7 = mlflow.drive("register-versions", name=REGISTRY_NAME, until=7)["versions"][-1]
        refusal = wait_for(
            "v7 refused on the operator page",
            lambda: [r for r in operator_refusals(bot) if r["version"] == "7"],
            logs,
        )[0]
        assert refusal["kind"] == "unservable_location", refusal
        assert v7["download_uri"] in refusal["reason"]
        assert "`mlflow-artifacts:` location" in refusal["reason"]
        assert "staging cannot serve (storage_schemes: s3://)" in refusal["reason"]
        # v6 (what staging runs, at another location) is refused the same way: one count each
        unservable = [r for r in operator_refusals(bot) if r["kind"] == "unservable_location"]
        assert {r["version"] for r in unservable} <= {"6", "7"}
        assert _refusals_counted(bot, "unservable_location") == len(unservable)
        assert [p for p in fake_github.prs(gitops_repo) if "-7" in p["head"]["ref"]] == []
        assert staging_deploys(fake_github, gitops_repo)[0] == "v6"


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
        resolved = servable(v6["download_uri"])
        assert mlflow.stored(resolved)
        assert v5["download_uri"] != v6["download_uri"]

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
        assert servable(v5["download_uri"]) not in production["body"]
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
