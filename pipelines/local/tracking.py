"""MLflow tracking of a local run (`make run TRACKING=<uri>`): the platform's part, played on this machine.

On a cluster, Kubeflow Pipelines' MLflow plugin (KEP-12862) creates one parent
MLflow run per pipeline run, one nested run per task (a loop gets a run, and
each iteration a run inside it), starts every task's container with
`MLFLOW_TRACKING_URI` and `MLFLOW_RUN_ID` (the task's nested run), and after the
task logs its input parameters and scalar output metrics and closes its run.
`LocalTracking` does the same around kfp.local's tasks, in a subprocess or a container, so the
steps (`components.common.tracking`) see exactly what they see on a cluster.

How it hooks in: it is one of the hooks of the local runner's task handler
(pipelines.local.attach): `started` creates the task's nested run and returns
the two variables, which the handler gives to the task's process alone (tasks
of a loop run at the same time, so they could not go through this process's
own environment); `ended` closes it.

TRACKING is a server, a SQLite store or a folder; for the last two the run starts
MLflow's server on the store for its duration (pipelines.local.mlflow_server).

A tracking server that fails costs one warning line; the run goes on untracked.
"""

import json
import os
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

from components.common.errors import InputError
from components.common.tracking import HTTP_LIMITS, RUN_ID_VARIABLE, TRACKING_URI_VARIABLE
from pipelines.local.attach import Exited, TaskCall
from pipelines.local.mlflow_server import Store, parse_store, server_arguments, server_command, serving
from pipelines.local.swaps import environment

TRACKING_VARIABLE = "TRACKING"  # what `make run TRACKING=…` sets
PARENT_TAG = "mlflow.parentRunId"
# This process's MLflow client while a run is tracked: one attempt per request as in the steps, with
# a longer bound (it creates the runs: a retry after a timeout could create one twice), and no
# "View run at" lines.
RUNNER_HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "30", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


class LocalTracking:
    """One pipeline run's MLflow runs: parent, loops, tasks (thread-safe: loop iterations run at once)."""

    def __init__(self, store: Store, tracking_uri: str, pipeline: str, params: dict[str, Any],
                 run_dir: Path, step_environment: dict[str, str]) -> None:
        from mlflow.tracking import MlflowClient

        self.store, self.tracking_uri = store, tracking_uri
        self.pipeline, self.params, self.run_dir = pipeline, params, run_dir
        self.client = MlflowClient(tracking_uri)
        self.active = True
        self.parent_id: str | None = None
        self.loop_runs: dict[str, str] = {}
        self.task_runs: dict[int, str] = {}  # per thread (each task runs in its own): its task's run
        self.experiment_id: str | None = None
        self.lock = threading.Lock()
        # The steps' own bounds (the user's settings win), not this process's RUNNER_HTTP_SETTINGS.
        self.step_environment = step_environment

    def describe(self) -> str:
        """Where the runs went, for the run's summary."""
        if self.parent_id is None:
            return f"nothing recorded in {self.store.describe()}"
        if self.store.backend is None:
            return f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.parent_id}"
        return (f"run {self.parent_id} in experiment '{self.pipeline}' of {self.store.describe()}; "
                f"browse: make tracking-ui TRACKING={self.store.uri}")

    def started(self, call: TaskCall) -> dict[str, str]:
        """The task handler's hook: the task's nested run, and the variables that put the step in it
        (none once tracking has failed)."""
        run_id = self.start_task(call)
        if run_id is None:
            return {}
        with self.lock:
            self.task_runs[threading.get_ident()] = run_id
        return {**self.step_environment, TRACKING_URI_VARIABLE: self.tracking_uri, RUN_ID_VARIABLE: run_id}

    def ended(self, call: TaskCall, exited: Exited) -> None:
        """The task handler's hook: the task's run closed as the platform's launcher closes it."""
        with self.lock:
            run_id = self.task_runs.pop(threading.get_ident(), None)
        if run_id is not None:
            self.end_task(run_id, call, exited.succeeded)

    def start_task(self, call: TaskCall) -> str | None:
        """The task's nested run (under its loop's run, for a loop iteration); None when tracking stopped."""
        with self.lock:
            parent = self._call(lambda: self._parent(call.job))
            if call.loop is not None and parent:
                parent = self._call(lambda: self._loop_run(call.loop, parent))
            if not parent:
                return None
            name = call.task if call.iteration is None else f"{call.task}-iteration-{call.iteration}"
            tags = {PARENT_TAG: parent, "kfp.task_name": call.task}
            if call.iteration is not None:
                tags["kfp.iteration"] = str(call.iteration)
            return self._call(lambda: self.client.create_run(self.experiment_id, run_name=name,
                                                             tags=tags).info.run_id)

    def end_task(self, run_id: str, call: TaskCall, succeeded: bool) -> None:
        """What the platform's launcher does after a task: its inputs as parameters, the numbers of
        its Metrics outputs (those the step did not log itself), then the run's end."""
        def close() -> None:
            from mlflow.entities import Metric, Param

            logged = self.client.get_run(run_id).data
            params = [Param(name, _param_value(value)) for name, value in call.inputs.items()
                      if name not in logged.params]
            stamp = int(time.time() * 1000)
            metrics = [Metric(name, value, stamp, 0) for name, value in self._output_metrics(call).items()
                       if name not in logged.metrics]
            for start in range(0, max(len(params), len(metrics)), 100):
                self.client.log_batch(run_id, metrics=metrics[start:start + 100], params=params[start:start + 100])
            self.client.set_terminated(run_id, "FINISHED" if succeeded else "FAILED")

        with self.lock:
            self._call(close)

    def finish(self, succeeded: bool) -> None:
        """End the loop runs and the parent run (the platform's API server does this at the run's end)."""
        with self.lock:
            for run_id in [*self.loop_runs.values(), *([self.parent_id] if self.parent_id else [])]:
                self._call(lambda run_id=run_id: self.client.set_terminated(
                    run_id, "FINISHED" if succeeded else "FAILED"))

    def _parent(self, job: str) -> str:
        if self.parent_id is None:
            from mlflow.entities import Param

            experiment = self.client.get_experiment_by_name(self.pipeline)
            # A "model training" experiment: MLflow 3's UI opens others on its GenAI pages.
            self.experiment_id = (experiment.experiment_id if experiment else self.client.create_experiment(
                self.pipeline, tags={"mlflow.experimentKind": "custom_model_development"}))
            run = self.client.create_run(self.experiment_id, run_name=job, tags={
                "kfp.pipeline": self.pipeline, "kfp.run_dir": str(self.run_dir)})
            self.client.log_batch(run.info.run_id, params=[Param(name, _param_value(value))
                                                           for name, value in sorted(self.params.items())])
            self.parent_id = run.info.run_id
        return self.parent_id

    def _loop_run(self, loop: str, parent: str) -> str:
        if loop not in self.loop_runs:
            self.loop_runs[loop] = self.client.create_run(self.experiment_id, run_name=loop,
                                                          tags={PARENT_TAG: parent}).info.run_id
        return self.loop_runs[loop]

    def _output_metrics(self, call: TaskCall) -> dict[str, float]:
        """The numbers in the task's Metrics outputs, as it wrote them (none when it failed)."""
        output = self.run_dir / "artifacts" / call.output_file
        if not output.is_file():
            return {}
        numbers = {}
        for name, listed in json.loads(output.read_text()).get("artifacts", {}).items():
            if name in call.metrics_outputs:
                for artifact in listed.get("artifacts", []):
                    numbers.update({k: float(v) for k, v in artifact.get("metadata", {}).items()
                                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return numbers

    def _call(self, action):
        """`action()`, or None once tracking has failed (one warning line, then nothing more is tried)."""
        if not self.active:
            return None
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - tracking must never fail the run
            self.active = False
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            print(f"warning: MLflow tracking to {self.tracking_uri} failed, the run goes on untracked "
                  f"({type(error).__name__}: {first_line[:200]})", flush=True)
            return None


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@contextmanager
def tracked_run(store: Store | None, pipeline: str, params: dict[str, Any],
                run_dir: Path) -> Iterator[LocalTracking | None]:
    """The run's LocalTracking (None without a store, or when its server would not start: one
    warning), its server up while open; the run hooks it to its task handler."""
    with ExitStack() as stack:
        tracking = None
        if store is not None:
            try:
                step_environment = {name: os.environ.get(name, value) for name, value in HTTP_LIMITS.items()}
                stack.enter_context(environment(RUNNER_HTTP_SETTINGS))
                uri = stack.enter_context(serving(store, run_dir / "mlflow-server.log"))
                tracking = LocalTracking(store, uri, pipeline, params, run_dir, step_environment)
            except Exception as error:  # noqa: BLE001 - tracking must never fail the run
                print(f"warning: no MLflow tracking for this run: {error}", flush=True)
                tracking = None
        yield tracking


def ui_main(argv: list[str]) -> int:
    """`make tracking-ui TRACKING=…`: MLflow's UI on a local store (folder or sqlite:///), in the foreground."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipelines.local.tracking",
                                     description=ui_main.__doc__)
    parser.add_argument("tracking", help="the TRACKING the runs went to: a folder or sqlite:///…")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    try:
        store = parse_store(args.tracking)
        if store.backend is None:
            raise InputError(f"TRACKING {args.tracking} is a server already: open it in a browser")
        command = [*server_command(), *server_arguments(store, args.port)]
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"MLflow UI on http://127.0.0.1:{args.port} for {store.describe()} (Ctrl-C stops it)", flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(ui_main(sys.argv[1:]))
