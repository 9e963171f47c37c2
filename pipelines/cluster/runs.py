"""Start a run on the cluster, wait for it and report it."""


import datetime as dt
import json
import os
import time
from pathlib import Path

from components.common.errors import InputError
from components.common.images import VERSION
from pipelines.cluster.connection import Connection, api_call
from pipelines.cluster.packages import convert_parameters
from pipelines.cluster.upload import get_or_create_experiment, upload

WAIT_TIMEOUT_S = 6 * 3600
WAIT_POLL_S = 10
FINAL_RUN_STATES = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}


def submit(conn: Connection, package: Path, params: dict[str, object], wait: bool,
           experiment: str | None = None, timeout_s: int = WAIT_TIMEOUT_S) -> int:
    """Start a run of `package` (uploading it if needed); 0 unless a waited-for run failed."""
    arguments = convert_parameters(package, params)
    version = upload(conn, package)
    experiment_id = get_or_create_experiment(conn, experiment or default_experiment(version.pipeline))
    run_name = f"{version.pipeline} {VERSION} {dt.datetime.now():%Y-%m-%d %H:%M:%S}"
    with api_call(f"starting a run of '{version.pipeline}'"):
        run = conn.client.run_pipeline(
            experiment_id=experiment_id, job_name=run_name, params=arguments,
            pipeline_id=version.pipeline_id, version_id=version.version_id)
    print(f"started run '{run_name}' ({run.run_id}) with "
          f"{json.dumps(arguments, sort_keys=True) if arguments else 'default parameters'}",
          flush=True)
    if not wait:
        return 0
    finished = wait_for_run(conn, run.run_id, timeout_s)
    print(run_report(conn, finished), flush=True)
    return 0 if finished.state == "SUCCEEDED" else 1


def wait_for_run(conn: Connection, run_id: str, timeout_s: float):
    """Poll the run until it ends, printing each change of state."""
    # kfp.Client.wait_for_run_completion does not treat CANCELED as an end.
    deadline, state = time.monotonic() + timeout_s, None
    while True:
        with api_call(f"reading run {run_id}"):
            run = conn.client.get_run(run_id)
        if run.state != state:
            state = run.state
            print(f"run {run_id}: {state}", flush=True)
        if state in FINAL_RUN_STATES:
            return run
        if time.monotonic() >= deadline:
            raise InputError(f"run {run_id} did not finish within {timeout_s:.0f}s; "
                             "it goes on in the cluster")
        time.sleep(WAIT_POLL_S)


def default_experiment(pipeline: str) -> str:
    return os.environ.get("KFP_EXPERIMENT") or pipeline


def run_report(conn: Connection, run) -> str:
    """Final state, each task's state and duration, and where the metrics are."""
    lines = [f"run '{run.display_name}' finished: {run.state}"]
    tasks = (run.run_details.task_details if run.run_details else None) or []
    for task in sorted(tasks, key=lambda t: (t.start_time is None, t.start_time or 0)):
        took = ""
        if task.start_time and task.end_time:
            took = f" {(task.end_time - task.start_time).total_seconds():.0f}s"
        lines.append(f"  {task.display_name:<32} {task.state}{took}")
    if run.error and run.error.message:
        lines.append(f"  error: {run.error.message.splitlines()[0]}")
    # The v2beta1 API returns artifact ids only; metric values live in ML Metadata,
    # which the UI reads, so the run page is where they are shown.
    ui = os.environ.get("KF_PIPELINES_UI_ENDPOINT") or conn.host
    lines.append(f"metrics: {ui}/#/runs/details/{run.run_id} "
                 "(Metrics, confusion matrix and report of the evaluate step)")
    return "\n".join(lines)


