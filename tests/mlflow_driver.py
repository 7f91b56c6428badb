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


def _register_one(name: str) -> dict[str, Any]:
    """Log a tiny sklearn model in a run (an MLflow 3 logged model) and register a version."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

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


def _prepare(args: dict[str, Any]) -> MlflowClient:
    import mlflow

    client = MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{args['name']}'"):
        client.create_registered_model(args["name"])
    mlflow.set_experiment(args.get("experiment", "fraud-detection"))
    return client


def register_version(args: dict[str, Any]) -> dict[str, Any]:
    """One new version of a logged model (see `_register_one`)."""
    _prepare(args)
    return _register_one(args["name"])


def register_versions(args: dict[str, Any]) -> dict[str, Any]:
    """Register versions, each of its own logged model, until version `until` exists, with
    their download URIs; one process for all (importing MLflow alone takes seconds)."""
    client = _prepare(args)
    name, until = args["name"], int(args["until"])
    versions: list[dict[str, Any]] = []
    while True:
        latest = max(
            (int(v.version) for v in client.search_model_versions(f"name = '{name}'")), default=0
        )
        if latest >= until:
            return {"versions": versions}
        registered = _register_one(name)
        # what MLflow's get-download-uri answers: the version's real storage location
        registered["download_uri"] = client.get_model_version_download_uri(
            name, registered["version"]
        )
        versions.append(registered)


def download_uri(args: dict[str, Any]) -> dict[str, Any]:
    uri = MlflowClient().get_model_version_download_uri(args["name"], str(args["version"]))
    return {"uri": uri}


def set_alias(args: dict[str, Any]) -> dict[str, Any]:
    client = MlflowClient()
    client.set_registered_model_alias(args["name"], args["alias"], str(args["version"]))
    version = client.get_model_version_by_alias(args["name"], args["alias"])
    return {"version": version.version}


def _s3() -> Any:
    import os

    import boto3

    return boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])


def create_bucket(args: dict[str, Any]) -> dict[str, Any]:
    _s3().create_bucket(Bucket=args["bucket"])
    return {"bucket": args["bucket"]}


def list_objects(args: dict[str, Any]) -> dict[str, Any]:
    """Keys under `prefix` in `bucket` (where MLflow stored a model's files)."""
    found = _s3().list_objects_v2(Bucket=args["bucket"], Prefix=args["prefix"])
    return {"keys": [item["Key"] for item in found.get("Contents", [])]}


COMMANDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "create-bucket": create_bucket,
    "list-objects": list_objects,
    "create-webhook": create_webhook,
    "register-version": register_version,
    "register-versions": register_versions,
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
