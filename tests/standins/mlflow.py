"""MLflow's server for the tracking tests, and reading tracked runs back through MLflow's own client.

A SQLite store is read by the full mlflow in .venv-mlflow (the project's environment has only
mlflow-skinny, which has no SQL store), in a subprocess that prints every run as JSON. Artifacts
are served by a server only (`mlflow-artifacts:/…`): the tests look for them in the store's folder.
"""

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from conftest import free_port

from pipelines.local.mlflow_server import (
    SERVER_ENVIRONMENT,
    Store,
    server_arguments,
    server_command,
    stop_server,
    wait_until_healthy,
)

DUMP = """
import json, sys
from mlflow.tracking import MlflowClient
client = MlflowClient(sys.argv[1])
runs = []
for experiment in client.search_experiments():
    for run in client.search_runs([experiment.experiment_id]):
        runs.append({
            "id": run.info.run_id, "name": run.info.run_name, "status": run.info.status,
            "experiment": experiment.name, "params": run.data.params, "tags": run.data.tags,
            "metrics": run.data.metrics,
            "histories": {name: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, name)]
                          for name in run.data.metrics},
            "artifact_uri": run.info.artifact_uri,
        })
print(json.dumps(runs))
"""


def read_runs(tracking_uri: str) -> list[dict]:
    """Every run in every experiment of `tracking_uri` (a server or a sqlite:/// store)."""
    python = server_command()[0].rsplit("/", 1)[0] + "/python"
    done = subprocess.run([python, "-c", DUMP, tracking_uri], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def mlflow_server(folder: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`mlflow server` on a loopback port with a SQLite store in `folder`, started as a run starts its
    own: (its URI, its process)."""
    folder.mkdir(parents=True, exist_ok=True)
    store = Store(str(folder), f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts")
    port = free_port()
    with open(folder / "server.log", "w", encoding="utf-8") as log:
        server = subprocess.Popen([*server_command(), *server_arguments(store, port)], stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, **SERVER_ENVIRONMENT})
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_until_healthy(uri, server, folder / "server.log")
        yield uri, server
    finally:
        stop_server(server)
