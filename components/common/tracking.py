"""MLflow tracking from inside a step, the way Kubeflow Pipelines' MLflow plugin sets it up.

With the plugin enabled (KEP-12862, `injectUserEnvVars`), the platform creates one
nested MLflow run per task and gives the task's container `MLFLOW_TRACKING_URI`
and `MLFLOW_RUN_ID` (that nested run); after the task its launcher logs the
task's input parameters and scalar output metrics and closes the run. A step
adds what the launcher cannot see: per-epoch / per-round training curves,
derived parameters, baselines, reports and tags. `pipelines.local.tracking`
plays the platform's part for `make run TRACKING=…`.

Rules this module keeps:

- Off unless both variables are set: then nothing is imported (not even
  mlflow) and nothing is contacted; every call is a no-op.
- It logs into the given run and never starts or ends it (the platform owns
  the run's life). The one run it starts is a child of the step's run
  (`child_run`), for work the platform cannot see as tasks: the trials a
  search step trains in-process; it sits inside the platform's tree.
- Tracking never fails or stalls a step: MLflow's own HTTP client is bounded
  (`HTTP_LIMITS`: 10 s against a server that accepts and never answers), and the
  first failure prints one `warning:` line and switches tracking off for the
  rest of the step.
- Metrics are buffered and sent in batches (`log_batch`) at most every
  `FLUSH_EVERY_S` seconds and at the end, so a thousand boosting rounds cost a
  few requests, not a thousand.
"""

import atexit
import os
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any, Callable, Mapping

RUN_ID_VARIABLE = "MLFLOW_RUN_ID"
TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
# MLflow's HTTP settings (mlflow/environment_variables.py, MLflow 3.17), used when the
# operator has not set them: one attempt of at most 10 s. MLflow's defaults (7 retries,
# 120 s per attempt, backoff factor 2) could hold a step for many minutes; and a retry
# after a timeout repeats a request the server may have done already (a second batch
# of the same metrics), so a request is sent once and a failure ends tracking.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT": "30",  # direct uploads to a cloud artifact store
}
FLUSH_EVERY_S = 5.0
MAX_METRICS_PER_BATCH = 1000  # the REST API's limit for one log-batch call
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value


class TaskRun:
    """The step's MLflow run, or (inactive) nothing at all."""

    def __init__(self, run_id: str | None, tracking_uri: str | None) -> None:
        self.run_id, self.tracking_uri = run_id, tracking_uri
        self.active = bool(run_id and tracking_uri)
        self._client = None
        self._pending: list = []  # mlflow.entities.Metric, not yet sent
        self._last_flush = time.monotonic()

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters the launcher cannot know (it logs the step's inputs itself: do not
        repeat an input's name here, a different spelling of its value would clash)."""
        if self.active and params:
            from mlflow.entities import Param

            self._call(lambda client: client.log_batch(
                self.run_id, params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Buffered; sent every FLUSH_EVERY_S seconds, by `flush`, and when the step exits."""
        if not self.active:
            return
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._pending += [Metric(name, float(value), stamp, step) for name, value in metrics.items()]
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        while self.active and self._pending:
            batch, self._pending = self._pending[:MAX_METRICS_PER_BATCH], self._pending[MAX_METRICS_PER_BATCH:]
            self._call(lambda client, batch=batch: client.log_batch(self.run_id, metrics=batch))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Tags (None values left out)."""
        if self.active and tags:
            self._call(lambda client: client.log_batch(self.run_id, tags=_run_tags(tags)))

    def set_name(self, name: str) -> None:
        """Rename the run (a sweep trial by its grid point: the UI's legends read better)."""
        if self.active:
            self._call(lambda client: client.update_run(self.run_id, name=name))

    def tag_parent(self, tags: Mapping[str, Any]) -> None:
        """Tags on the pipeline's run, the parent of this task's run (what deployed, say)."""
        if self.active and tags:
            def tag(client) -> None:
                parent = client.get_run(self.run_id).data.tags.get("mlflow.parentRunId")
                if parent:
                    client.log_batch(parent, tags=_run_tags(tags))

            self._call(tag)

    def child_run(self, name: str) -> "TaskRun":
        """A run nested under this one (in the same experiment), or an inactive one when tracking
        is off or fails; `end` closes it."""
        child = TaskRun(None, self.tracking_uri)

        def create(client) -> None:
            experiment = client.get_run(self.run_id).info.experiment_id
            child.run_id = client.create_run(experiment, run_name=name,
                                             tags={"mlflow.parentRunId": self.run_id}).info.run_id
            child.active, child._client = True, client

        self._call(create)
        return child

    def end(self) -> None:
        """Send what is buffered and mark a `child_run` finished."""
        self.flush()
        self._call(lambda client: client.set_terminated(self.run_id, "FINISHED"))

    def log_artifact(self, path: str | Path, name: str) -> None:
        """One file, stored in the run's artifacts as `name` (a report, say)."""
        if not self.active:
            return
        import shutil
        import tempfile

        def upload(client) -> None:
            with tempfile.TemporaryDirectory() as folder:
                named = Path(folder) / name
                shutil.copyfile(path, named)
                client.log_artifact(self.run_id, str(named))

        self._call(upload)

    def keras_callbacks(self) -> list:
        """[a Keras callback logging every epoch's figures], or [] when tracking is off."""
        if not self.active:
            return []
        import keras

        run = self

        class LogEpochs(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                run.log_metrics(logs or {}, step=epoch + 1)

            def on_train_end(self, logs=None):
                run.flush()

        return [LogEpochs()]

    def lightgbm_callbacks(self) -> list[Callable]:
        """[a LightGBM callback logging every boosting round's validation scores], or []."""
        if not self.active:
            return []

        def log_round(env) -> None:
            self.log_metrics({f"{data}_{metric}": value for data, metric, value, *_ in env.evaluation_result_list},
                             step=env.iteration + 1)

        log_round.order = 30  # after LightGBM's own callbacks (early stopping: 30 too, evaluation log: 10)
        return [log_round]

    def _call(self, action: Callable) -> None:
        if not self.active:
            return
        try:
            action(self._mlflow_client())
        except Exception as error:  # noqa: BLE001 - tracking must never fail a step
            self.active = False
            self._pending = []
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            print(f"warning: MLflow tracking to {self.tracking_uri} failed, this step logs no more there "
                  f"({type(error).__name__}: {first_line[:200]})", file=sys.stderr, flush=True)

    def _mlflow_client(self):
        if self._client is None:
            for name, value in HTTP_LIMITS.items():
                os.environ.setdefault(name, value)
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client


def _run_tags(tags: Mapping[str, Any]) -> list:
    from mlflow.entities import RunTag

    return [RunTag(name, str(value)) for name, value in tags.items() if value is not None]


@cache
def task_run() -> TaskRun:
    """This step's run, from the platform's variables (inactive without them)."""
    run = TaskRun(os.environ.get(RUN_ID_VARIABLE), os.environ.get(TRACKING_URI_VARIABLE))
    if run.active:
        atexit.register(run.flush)  # what is still buffered when the step returns
    return run
