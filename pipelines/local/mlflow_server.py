"""MLflow's tracking server for a local run, and where TRACKING says the runs go (pipelines.local.tracking).

TRACKING may be:
- `http://…` / `https://…`: a running tracking server, used as it is;
- `sqlite:///path/mlflow.db`: that store, artifacts in `mlartifacts/` beside it;
- a folder: a SQLite store `mlflow.db` in it, artifacts in its `artifacts/`
  (MLflow 3.17 refuses its plain-file store unless told otherwise: it is in
  maintenance mode).
For the last two the run starts MLflow's server on the store (loopback, a free
port) for its duration, and the steps talk HTTP to it as they would on a
cluster. MLflow's server is not a dependency of the project (it pins an older
pyarrow): `make setup` installs it into its own environment, `.venv-mlflow`.
"""

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from components.common.errors import InputError

SERVER_VARIABLE = "MLFLOW_SERVER"  # the `mlflow` command to start servers with (default: MLFLOW_VENV's)
MLFLOW_VENV = Path(__file__).resolve().parents[2] / ".venv-mlflow"  # in the checkout, beside .venv
SERVER_START_TIMEOUT_S = 180.0
# MLflow 3.17's server also starts its job execution (a runner and Huey consumers for its GenAI
# evaluation and trace jobs: eight more Python processes, about 20 s of CPU before the first
# request); a run's tracking uses none of it.
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclass(frozen=True)
class Store:
    """Where runs go: a server's URI, or a backend store and artifact folder to serve."""

    uri: str  # as the user wrote it
    backend: str | None = None  # sqlite:///… to start a server on; None: `uri` is a server
    artifacts: Path | None = None

    def describe(self) -> str:
        return f"{self.backend} (artifacts: {self.artifacts})" if self.backend else self.uri


def parse_store(uri: str) -> Store:
    """TRACKING's value as a Store; InputError naming it when it is none of the three kinds."""
    if uri.startswith(("http://", "https://")):
        return Store(uri)
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
        if database.is_dir():
            raise InputError(f"TRACKING {uri}: {database} is a folder, not a SQLite file")
        return Store(uri, f"sqlite:///{database}", database.parent / "mlartifacts")
    if "://" in uri.removeprefix("file://"):
        raise InputError(f"TRACKING {uri}: give a folder, sqlite:///path/mlflow.db or an http(s):// server")
    folder = Path(uri.removeprefix("file://")).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"TRACKING {uri}: {folder} is a file, not a folder")
    return Store(uri, f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts")


def server_command() -> list[str]:
    """The `mlflow` command: $MLFLOW_SERVER, else .venv-mlflow's, else one on PATH."""
    command = os.environ.get(SERVER_VARIABLE) or str(MLFLOW_VENV / "bin" / "mlflow")
    if not Path(command).is_file():
        command = shutil.which("mlflow") or ""
    if not command:
        raise InputError(f"MLflow's server is not installed: `make setup` puts it into {MLFLOW_VENV} "
                         f"(or set {SERVER_VARIABLE} to an `mlflow` command)")
    return [command]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_arguments(store: Store, port: int) -> list[str]:
    return ["server", "--backend-store-uri", store.backend, "--artifacts-destination", str(store.artifacts),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


@contextmanager
def serving(store: Store, log_path: Path) -> Iterator[str]:
    """The store's tracking URI: `store.uri` for a server, else a server started on it (stopped after)."""
    if store.backend is None:
        yield store.uri
        return
    store.artifacts.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    with open(log_path, "w", encoding="utf-8") as log:
        server = subprocess.Popen([*server_command(), *server_arguments(store, port)], stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, **SERVER_ENVIRONMENT})
    try:
        wait_until_healthy(uri, server, log_path)
        yield uri
    finally:
        stop_server(server)


def wait_until_healthy(uri: str, server: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise InputError(f"MLflow's server for TRACKING exited with code {server.returncode}: see {log_path}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                healthy = answer.status == 200
        except OSError:
            healthy = False
        if healthy:
            # The first API call loads the store (seconds): made here, not by a run's first request.
            with urllib.request.urlopen(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=120):
                return
        time.sleep(0.5)
    stop_server(server)
    raise InputError(f"MLflow's server did not answer within {SERVER_START_TIMEOUT_S:.0f}s: see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM the server's process group (its workers too), SIGKILL after 10 s."""
    import signal

    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
