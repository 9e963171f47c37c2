"""Run a registered pipeline on this machine through kfp.local, and summarize it.

Each run gets `runs/<pipeline>/<timestamp>/` in the checkout: `artifacts/`
(kfp's pipeline root: every task's outputs), `run.log` (everything the steps
printed, tracebacks included), `summary.txt` (the summary, every parameter,
every metric, the reports' paths), `reports/<task>-<output>.html` (each HTML
artifact, openable in a browser) and `index.html` linking all of them. The
workspace volume is emulated by a folder that kfp deletes when the run ends.
The model store defaults to `model_store/`.

Every task runs through the runner's own task handler (pipelines.local.attach), which
starts its step and tells the output and the tracking of its start and end. The terminal
shows the steps' own lines, each task's in one block (pipelines.local.output, which times
the tasks; what is read of kfp.local's lines is in pipelines.local.kfp_output); kfp's JSON
echo, a failed step's traceback and the artifacts' full metadata stay in run.log (`--verbose`
shows everything). Ctrl-C or SIGTERM stops the steps (pipelines.local.interrupts) and still
writes the summary and index.html (pipelines.local.report), marked INTERRUPTED.
"""

import contextlib
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from components.common import images
from components.common.storage import retry_budget_s
from pipelines import parameters, registry
from pipelines.local import containers as container_runner
from pipelines.local import interrupts, mlflow_server
from pipelines.local import tracking as local_tracking
from pipelines.local.attach import Attachment, Launch, attached, launch_subprocess
from pipelines.local.containers import ContainerSettings
from pipelines.local.kfp_output import LOCAL_RUNNER_WARNINGS
from pipelines.local.output import RunOutput, TaskRun
from pipelines.local.report import LocalRunResult, link_reports, run_record, summary, write_index
from pipelines.local.swaps import environment


def default_run_dir(pipeline: str) -> Path:
    return Path("runs") / pipeline / datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def _read_task_outputs(pipeline_root: Path, tasks: dict[str, TaskRun]) -> None:
    """Fill each task's return value, artifact metadata and metrics from its executor_output.json."""
    by_folder = {task.output_dir: task for task in tasks.values() if task.output_dir is not None}
    for output_file in pipeline_root.glob("*/**/executor_output.json"):
        task = by_folder.get(output_file.parent) or tasks.get(output_file.parent.name)
        if task is None:
            continue
        written = json.loads(output_file.read_text())
        values = written.get("parameterValues", {})
        task.output = values.get("Output")
        # executor_output.json does not name artifact types: take every number
        # in the output artifacts' metadata (a Metrics artifact holds only numbers).
        for name, artifact_list in written.get("artifacts", {}).items():
            for artifact in artifact_list.get("artifacts", []):
                metadata = artifact.get("metadata", {})
                task.artifacts[name] = metadata
                task.metrics.update({k: v for k, v in metadata.items()
                                     if isinstance(v, (int, float)) and not isinstance(v, bool)})


def run_local(pipeline_name: str, params: dict[str, Any], run_dir: Path | None = None,
              verbose: bool = False, containers: ContainerSettings | None = None,
              tracking: str | None = None) -> LocalRunResult:
    """Run the pipeline through kfp.local: each step in a subprocess of this
    environment, or, with `containers`, each step in a container of its image
    (pipelines/local/containers.py); with `tracking` (default: $TRACKING) into
    MLflow as the platform's plugin would (pipelines.local.tracking).

    Ctrl-C or SIGTERM stops the steps, removes what the interrupted ones half-wrote,
    and still writes the summary and index.html, marked INTERRUPTED.
    """
    from kfp import local

    entry = registry.get(pipeline_name)
    pipeline_func = entry.make_pipeline(gpu=False)
    declared = parameters.declared_by(pipeline_func)
    params = parameters.resolve(pipeline_name, declared, params)
    retry_budget_s()  # the steps read FETCH_RETRY_BUDGET_S: a bad value fails now, not in a step
    tracking = tracking if tracking is not None else os.environ.get(local_tracking.TRACKING_VARIABLE)
    store = mlflow_server.parse_store(tracking) if tracking else None
    if store and store.backend:
        mlflow_server.server_command()  # not installed: refused now
    if "model_base_path" in declared and "model_base_path" not in params:
        params["model_base_path"] = str(Path("model_store").resolve())
    effective = {**{name: spec.get("defaultValue") for name, spec in declared.items()}, **params}

    if containers is not None:
        containers = container_runner.for_run(containers, params)  # checked, with the run's mounts
        container_runner.check_image(images.cpu_image())
    run_dir = (run_dir or default_run_dir(pipeline_name)).resolve()
    workspace = run_dir / "workspace"
    workspace.mkdir(parents=True)
    pipeline_root = run_dir / "artifacts"
    pipeline_root.mkdir()
    with _step_runner(containers, run_dir, workspace, [pipeline_root, workspace]) as (runner, launch):
        local.init(runner=runner, pipeline_root=str(pipeline_root), workspace_root=str(workspace),
                   raise_on_error=False)
        with local_tracking.tracked_run(store, pipeline_name, effective, run_dir) as tracked:
            call = _run_pipeline(pipeline_func, params, run_dir, verbose, tracked, runner, launch)
    capture, signals = call.output, call.signals
    tasks = capture.tasks
    _read_task_outputs(pipeline_root, tasks)
    error = None
    if signals.received:
        error = _clean_up_interrupted(call.cut_short, run_dir, params.get("model_base_path"))
    elif failed := [t.name for t in tasks.values() if t.status == "FAILURE"]:
        error = f"step '{failed[-1]}' failed: {capture.last_error() or 'see ' + str(run_dir / 'run.log')}"
    result = LocalRunResult(pipeline_name, run_dir, effective, tasks, error, call.seconds,
                            reports=link_reports(pipeline_root, run_dir / "reports"),
                            tracked_to=tracked.describe() if tracked else None,
                            interrupted=signals.received.name if signals.received else None,
                            exit_code=signals.exit_code if signals.received else 1 if error else 0)
    text = summary(result, entry)
    (run_dir / "summary.txt").write_text(text + "\n" + run_record(result) + "\n", encoding="utf-8")
    write_index(result, text)
    return result


def _step_runner(containers: ContainerSettings | None, run_dir: Path, workspace: Path,
                 folders: list[Path]) -> contextlib.AbstractContextManager:
    """kfp's runner and how the task handler starts each step: a subprocess each, or a container
    each (its containers recorded in the run folder; the model store among the folders of the
    nonroot mode)."""
    from kfp import local

    if containers is None:
        return contextlib.nullcontext((local.SubprocessRunner(use_venv=False), launch_subprocess))
    containers.record = run_dir / container_runner.RECORD_FILE
    return container_runner.container_steps(containers, workspace, [*folders, *containers.mounts])


@dataclass
class _PipelineCall:
    output: RunOutput
    signals: interrupts.SignalState
    cut_short: list[TaskRun]  # the tasks running when a signal came
    seconds: float  # the whole run's wall time


def _run_pipeline(pipeline_func, params: dict[str, Any], run_dir: Path, verbose: bool,
                  tracked: "local_tracking.LocalTracking | None", runner: Any, launch: Launch) -> _PipelineCall:
    """Call the pipeline under kfp.local, every task through the run's task handler
    (pipelines.local.attach: `launch` starts the steps, the output and the tracking hear of each
    task), with its output captured into run.log and the terminal; a signal stops the steps
    (pipelines.local.interrupts, and the step containers), starts no other, and ends the call.
    When tracked, the MLflow parent run is closed while the steps' output is still captured."""
    started = time.monotonic()
    # Steps inherit the environment: fewer of TensorFlow's C++ log lines.
    quiet_tensorflow = environment({"TF_CPP_MIN_LOG_LEVEL": "2"})
    cut_short: list[TaskRun] = []
    with open(run_dir / "run.log", "w", encoding="utf-8") as log_file, quiet_tensorflow, \
            warnings.catch_warnings():
        # Cluster-only settings are ignored by design in a local run.
        for message in LOCAL_RUNNER_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        capture = RunOutput(sys.stdout, log_file, verbose, run_dir / "artifacts")

        def stop_steps() -> None:
            capture.silenced = True
            cut_short.extend(capture.running())
            container_runner.stop_running_containers()
            interrupts.stop_children(wait=False)

        with interrupts.signals_as_keyboard_interrupt(on_first=stop_steps) as signals, \
                attached(runner, Attachment(launch, [capture, *([tracked] if tracked else [])], signals.event)), \
                contextlib.redirect_stdout(capture):
            try:
                pipeline_func(**params)
            except KeyboardInterrupt:  # raised by the handler, after stop_steps
                interrupts.stop_children()
            if tracked:
                tracked.finish(not signals.received
                               and all(task.status != "FAILURE" for task in capture.tasks.values()))
        capture.flush()
    return _PipelineCall(capture, signals, cut_short, time.monotonic() - started)


def _clean_up_interrupted(cut_short: list[TaskRun], run_dir: Path, model_base_path: str | None) -> str:
    """Remove what the interrupted steps half-wrote; the run's error line, naming them."""
    from components.store.folder import remove_abandoned_incoming

    for task in cut_short:
        task.status, task.seconds = "STOPPED", time.monotonic() - task.started
        if task.output_dir is not None:
            shutil.rmtree(task.output_dir, ignore_errors=True)
    shutil.rmtree(run_dir / "workspace", ignore_errors=True)  # the emulated volume kfp removes at a run's end
    for partial in run_dir.rglob("*.partial"):  # storage.atomic_path's temporaries
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
    if model_base_path and not str(model_base_path).startswith("gs://") and Path(model_base_path).is_dir():
        for model_dir in Path(model_base_path).iterdir():
            if model_dir.is_dir():
                remove_abandoned_incoming(model_dir)
    names = ", ".join(f"'{task.name}'" for task in cut_short)
    return (f"step{'s' if len(cut_short) > 1 else ''} {names} stopped" if cut_short else
            "stopped between steps")
