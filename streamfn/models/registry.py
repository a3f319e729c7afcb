"""The MLflow Model Registry as streamfn reads it: which version an alias points to, and what
that version takes and gives (its schema).

Two transports answer the same questions. `RestRegistry` asks an MLflow server over HTTP with
httpx, so the ingest function (a small zip, no mlflow package) can read the registry, and every
call fails within seconds when the server is down. `ClientRegistry` uses mlflow's own client, for
the stores without a server (`sqlite:///…`, a folder). `open_registry` picks one by the URI.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from streamfn.models import schemas, trust
from streamfn.models.schemas import ModelSchema

TIMEOUT_S = 4.0
# What a registry answers when the alias (or the whole model) does not exist: a SQLite store
# raises INVALID_PARAMETER_VALUE for a missing alias, a server relays it; anything else is an
# outage, never "absent".
ABSENT_CODES = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"})


class RegistryError(RuntimeError):
    """The registry could not answer (unreachable, or an error that is not "absent")."""


class NotRegisteredError(RegistryError):
    """The registered model does not exist or has no version."""


@dataclass(frozen=True)
class Resolved:
    """The version to serve for a registered model, and whether its alias chose it."""

    name: str
    version: str
    alias: str
    via_alias: bool  # False: the alias is absent and this is the latest version


class Registry(ABC):
    """What streamfn asks of a model registry, whatever the transport."""

    uri: str

    @abstractmethod
    def alias_target(self, name: str, alias: str) -> str | None:
        """The version `alias` points to, None when the alias (or the model) is absent."""

    @abstractmethod
    def versions(self, name: str) -> list[str]:
        """Every version number of a registered model ([] when it is not registered)."""

    @abstractmethod
    def file(self, name: str, version: str, path: str) -> bytes | None:
        """One file of a version's artifacts (None when the version has no such file)."""

    def json_file(self, name: str, version: str, path: str) -> Any:
        """One JSON artifact of a version, None when absent; RegistryError when not JSON."""
        raw = self.file(name, version, path)
        if raw is None:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise RegistryError(f"{name} v{version}: {path} is not JSON: {error}") from None

    def schema(
        self, model: str, name: str, version: str, flavours: frozenset[str] | None = None
    ) -> ModelSchema:
        """What a version takes and gives; SchemaError when it cannot be served (with
        `flavours`, MODEL_FLAVORS: also when its flavour is not among them)."""
        mlmodel = self.file(name, version, schemas.MLMODEL_FILE)
        if mlmodel is None:
            raise schemas.SchemaError(f"{name} v{version} has no MLmodel file")
        if flavours is not None:
            trust.check(mlmodel.decode(), flavours, f"{name} v{version}")
        return schemas.build(
            model, name, version, mlmodel.decode(),
            self.json_file(name, version, schemas.CONSTRAINTS_FILE),
            self.json_file(name, version, schemas.LABELS_FILE),
        )  # fmt: skip

    def alias_version(self, name: str, alias: str) -> Resolved:
        """The alias's version, else the latest version; NotRegisteredError when there is none."""
        version = self.alias_target(name, alias)
        if version is not None:
            return Resolved(name, version, alias, via_alias=True)
        numbers = [int(v) for v in self.versions(name)]
        if not numbers:
            raise NotRegisteredError(f"{name} has no version in {self.uri}: run `streamfn train`")
        return Resolved(name, str(max(numbers)), alias, via_alias=False)


class RestRegistry(Registry):
    """An MLflow tracking server's REST API, through httpx."""

    def __init__(self, uri: str, timeout_s: float = TIMEOUT_S) -> None:
        self.uri = uri.rstrip("/")
        self.http = httpx.Client(base_url=f"{self.uri}/api/2.0/mlflow", timeout=timeout_s)
        self.files = httpx.Client(base_url=self.uri, timeout=timeout_s)

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """The JSON answer, None for "absent", RegistryError for anything else."""
        try:
            answer = self.http.get(path, params=params)
        except httpx.HTTPError as error:
            raise RegistryError(f"MLflow at {self.uri} is unreachable: {error}") from error
        if answer.status_code == 200:
            return answer.json()
        try:
            code = answer.json().get("error_code")
        except ValueError:
            code = None
        if code in ABSENT_CODES:
            return None
        raise RegistryError(f"MLflow at {self.uri} answered {answer.status_code} to {path}")

    def alias_target(self, name: str, alias: str) -> str | None:
        found = self._get("/registered-models/alias", {"name": name, "alias": alias})
        return None if found is None else str(found["model_version"]["version"])

    def versions(self, name: str) -> list[str]:
        found = self._get("/model-versions/search", {"filter": f"name = '{name}'"})
        return [str(v["version"]) for v in (found or {}).get("model_versions", [])]

    def file(self, name: str, version: str, path: str) -> bytes | None:
        # The server reads the file from wherever the version's artifacts are kept.
        params = {"name": name, "version": version, "path": path}
        try:
            answer = self.files.get("/model-versions/get-artifact", params=params)
        except httpx.HTTPError as error:
            raise RegistryError(f"MLflow at {self.uri} is unreachable: {error}") from error
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise RegistryError(f"MLflow at {self.uri} answered {answer.status_code} for {path}")
        return answer.content


class ClientRegistry(Registry):
    """mlflow's own client, for stores without a server (SQLite, a folder)."""

    def __init__(self, uri: str) -> None:
        from mlflow import MlflowClient

        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def alias_target(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as error:
            if error.error_code in ABSENT_CODES:
                return None
            raise RegistryError(f"registry {self.uri}: {error}") from error

    def versions(self, name: str) -> list[str]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name = '{name}'")
        except MlflowException as error:
            raise RegistryError(f"registry {self.uri}: {error}") from error
        return [str(v.version) for v in found]

    def file(self, name: str, version: str, path: str) -> bytes | None:
        import tempfile

        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            source = self.client.get_model_version_download_uri(name, version)
        except MlflowException as error:
            raise RegistryError(f"registry {self.uri}: {error}") from error
        with tempfile.TemporaryDirectory(prefix="streamfn-registry-") as directory:
            try:
                local = mlflow.artifacts.download_artifacts(
                    f"{source.rstrip('/')}/{path}", dst_path=directory, tracking_uri=self.uri
                )
            except (MlflowException, OSError):
                return None  # a store without the file: an absent artifact
            with open(local, "rb") as found:
                return found.read()


def open_registry(uri: str) -> Registry:
    """REST for an http(s) tracking server, mlflow's client for any other store."""
    if uri.startswith(("http://", "https://")):
        return RestRegistry(uri)
    return ClientRegistry(uri)
