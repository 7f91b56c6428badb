"""Drive a real MLflow server through its own client; run with `.venv-mlflow/bin/python`.

    python tests/mlflow_driver.py <command> '<json args>'   ->   one JSON object on stdout

The tracking URI comes from MLFLOW_TRACKING_URI. This file is not collected by pytest and must
not import anything from the bot (it runs in MLflow's virtualenv, not the bot's).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from mlflow import MlflowClient


def create_webhook(args: dict[str, Any]) -> dict[str, Any]:
    hook = MlflowClient().create_webhook(
        name=args["name"], url=args["url"], events=args["events"], secret=args["secret"]
    )
    return {"id": hook.webhook_id, "events": [str(e) for e in hook.events]}


def register_version(args: dict[str, Any]) -> dict[str, Any]:
    """Log a tiny sklearn model in a run (an MLflow 3 logged model) and register a version."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    name = args["name"]
    client = MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    mlflow.set_experiment(args.get("experiment", "fraud-detection"))
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    with mlflow.start_run() as run:
        # explicit requirements: skips MLflow's slow requirement inference subprocess
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    # what `log_model(..., registered_model_name=...)` does: source is `models:/m-<id>`
    version = mlflow.register_model(info.model_uri, name)
    return {
        "version": version.version,
        "source": version.source,
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
    }


def download_uri(args: dict[str, Any]) -> dict[str, Any]:
    uri = MlflowClient().get_model_version_download_uri(args["name"], str(args["version"]))
    return {"uri": uri}


def set_alias(args: dict[str, Any]) -> dict[str, Any]:
    client = MlflowClient()
    client.set_registered_model_alias(args["name"], args["alias"], str(args["version"]))
    version = client.get_model_version_by_alias(args["name"], args["alias"])
    return {"version": version.version}


COMMANDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "create-webhook": create_webhook,
    "register-version": register_version,
    "download-uri": download_uri,
    "set-alias": set_alias,
}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in COMMANDS:
        print(f"usage: {argv[0]} {{{','.join(COMMANDS)}}} '<json args>'", file=sys.stderr)
        return 2
    result = COMMANDS[argv[1]](json.loads(argv[2]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
