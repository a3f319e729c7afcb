"""Files written beside a model in the registry, where streamfn reads them back: JSON documents
(constraints, labels, reference profile, parity report) and the compiled graph."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

LOGGED_MODEL = "models:/m-"


def log_files(client: MlflowClient, target: str, files: dict[str, Any]) -> None:
    """Write each file next to an MLmodel: bytes as they are, anything else as JSON. `target`
    is a logged model's id (m-…) or the artifact URI of a version whose files are a run's."""
    with tempfile.TemporaryDirectory(prefix="streamfn-artifacts-") as directory:
        for file_name, content in files.items():
            path = Path(directory) / file_name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(json.dumps(content, indent=1))
            if target.startswith("m-"):
                client.log_model_artifact(target, str(path))
            else:
                get_artifact_repository(target).log_artifact(str(path))


def log_beside_version(
    client: MlflowClient, name: str, version: str, files: dict[str, Any]
) -> None:
    """Write each file next to a registered version's MLmodel."""
    source = client.get_model_version(name, version).source
    if source.startswith(LOGGED_MODEL):
        target = source.removeprefix("models:/")
    else:
        target = client.get_model_version_download_uri(name, version)
    log_files(client, target, files)
