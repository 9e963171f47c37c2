"""Run a registered pipeline on this machine through kfp.local, and summarize it.

Each run gets `runs/<pipeline>/<timestamp>/` in the checkout: `artifacts/`
(kfp's pipeline root: every task's outputs), `run.log` (everything the steps
printed, tracebacks included), `summary.txt` (the summary, every parameter,
every metric, the reports' paths), `reports/<task>-<output>.html` (each HTML
artifact, openable in a browser) and `index.html` linking all of them. The
workspace volume is emulated by a folder that kfp deletes when the run ends.
The model store defaults to `model_store/`.

The terminal shows the steps' own lines, each task's in one block
(pipelines.local.output reads them, and times the tasks); kfp's JSON echo, a failed
step's traceback and the artifacts' full metadata stay in run.log (`--verbose`
shows everything). Ctrl-C or SIGTERM stops the steps (pipelines.local.interrupts) and
still writes the summary and index.html, marked INTERRUPTED.
"""

import contextlib
import html
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

from components.common import images
from components.common.readable import readable, readable_output
from components.common.storage import atomic_path, retry_budget_s
from pipelines import parameters, registry
from pipelines.local import containers as container_runner
from pipelines.local import interrupts
from pipelines.local import tracking as local_tracking
from pipelines.local.containers import ContainerSettings
from pipelines.local.output import RunOutput, TaskRun, settle_unlogged
from pipelines.spec import PipelineSpec

# kfp warns about settings a cluster honours (retry, resources, caching, GPUs) on every run.
LOCAL_RUNNER_WARNINGS = (r".*no effect in the current local runner", r".*is not used by the current local runner",
                         r"You may be attemping to run a task")


@dataclass
class LocalRunResult:
    pipeline: str
    run_dir: Path
    params: dict[str, Any]
    tasks: dict[str, TaskRun]
    error: str | None = None
    seconds: float = 0.0
    reports: list[Path] = field(default_factory=list)  # runs/<pipeline>/<ts>/reports/*.html
    tracked_to: str | None = None  # where MLflow has the run (TRACKING), for the summary
    interrupted: str | None = None  # the signal that stopped the run (SIGINT, SIGTERM), if one did
    exit_code: int = 0  # for the command line: 0, 1 (a step failed), 130/143 (interrupted)

    @property
    def succeeded(self) -> bool:
        return self.error is None

    @property
    def state(self) -> str:
        return "INTERRUPTED" if self.interrupted else "SUCCEEDED" if self.succeeded else "FAILED"

    def deployed_to(self) -> str | None:
        deploy = self.tasks.get("deploy-model")
        return deploy.output if deploy and deploy.status == "SUCCESS" else None


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
    store = local_tracking.parse_store(tracking) if tracking else None
    if store and store.backend:
        local_tracking.server_command()  # not installed: refused now
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
    with _step_runner(containers, run_dir, [pipeline_root, workspace]) as runner:
        local.init(runner=runner, pipeline_root=str(pipeline_root), workspace_root=str(workspace),
                   raise_on_error=False)
        with local_tracking.tracked_run(store, pipeline_name, effective, run_dir) as tracked:
            call = _run_pipeline(pipeline_func, params, run_dir, verbose, tracked)
    capture, signals = call.output, call.signals
    tasks = capture.tasks
    _read_task_outputs(pipeline_root, tasks)
    settle_unlogged(tasks)
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


def _step_runner(containers: ContainerSettings | None, run_dir: Path,
                 folders: list[Path]) -> contextlib.AbstractContextManager:
    """kfp's runner for the steps: a subprocess each, or a container each (its containers
    recorded in the run folder; the model store among the folders of the nonroot mode)."""
    from kfp import local

    if containers is None:
        return contextlib.nullcontext(local.SubprocessRunner(use_venv=False))
    containers.record = run_dir / container_runner.RECORD_FILE
    return container_runner.container_steps(containers, [*folders, *containers.mounts])


@dataclass
class _PipelineCall:
    output: RunOutput
    signals: interrupts.SignalState
    cut_short: list[TaskRun]  # the tasks running when a signal came
    seconds: float  # the whole run's wall time


def _run_pipeline(pipeline_func, params: dict[str, Any], run_dir: Path, verbose: bool,
                  tracked: "local_tracking.LocalTracking | None") -> _PipelineCall:
    """Call the pipeline under kfp.local with its output captured into run.log and the terminal;
    a signal stops the steps (pipelines.local.interrupts, and the step containers) and ends the call.
    When tracked, the MLflow parent run is closed while the steps' output is still captured."""
    started = time.monotonic()
    # Steps inherit the environment: fewer of TensorFlow's C++ log lines.
    quiet_tensorflow = mock.patch.dict(os.environ, {"TF_CPP_MIN_LOG_LEVEL": "2"})
    cut_short: list[TaskRun] = []
    with open(run_dir / "run.log", "w", encoding="utf-8") as log_file, quiet_tensorflow, \
            warnings.catch_warnings():
        # Cluster-only settings are ignored by design in a local run.
        for message in LOCAL_RUNNER_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        capture = RunOutput(sys.stdout, log_file, verbose)

        def stop_steps() -> None:
            capture.silenced = True
            cut_short.extend(capture.running())
            container_runner.stop_running_containers()
            interrupts.stop_children(wait=False)

        with interrupts.signals_as_keyboard_interrupt(on_first=stop_steps) as signals, \
                interrupts.refuse_new_steps(signals.event), contextlib.redirect_stdout(capture):
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


def link_reports(pipeline_root: Path, reports_dir: Path) -> list[Path]:
    """Every HTML artifact under `reports_dir` as `<task>-<output>.html`, so a browser opens it.

    kfp names an artifact's file after the output alone; the link (a hard link,
    or a copy where links are not possible) adds the extension without a second write
    by the step.
    """
    reports = []
    for path in sorted(pipeline_root.glob("*/*/*")):
        if not path.is_file() or path.name == "executor_output.json":
            continue
        with open(path, "rb") as file:
            if not file.read(64).lstrip().lower().startswith((b"<!doctype html", b"<html")):
                continue
        reports_dir.mkdir(exist_ok=True)
        target = reports_dir / f"{path.parent.name}-{path.name}.html"
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        reports.append(target)
    return reports


def run_record(result: LocalRunResult) -> str:
    """The rest of summary.txt: every parameter, every metric, the reports."""
    lines = ["", "parameters:"]
    lines += [f"  {name} = {_parameter(value)}" for name, value in sorted(result.params.items())]
    metrics = [(task, name, value) for task in result.tasks.values() for name, value in task.metrics.items()]
    if metrics:
        lines += ["", "metrics:"] + [f"  {task.name}.{name} = {readable(value, name)}"
                                     for task, name, value in metrics]
    lines += ["", "reports:"] + [f"  {path}" for path in result.reports] + [f"  {result.run_dir / 'index.html'}"]
    return "\n".join(lines)


def _parameter(value: Any) -> str:
    """A parameter as it would be typed: 20, not 20.0 (KFP passes whole floats as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


INDEX_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.state { padding: .1rem .6rem; border-radius: .3rem; color: white; font-size: 1rem; vertical-align: middle; }
.SUCCEEDED { background: #2e7d32; } .FAILED { background: #c62828; } .INTERRUPTED { background: #ef6c00; }
pre { background: #f6f8fa; padding: 1rem; border-radius: .4rem; overflow-x: auto; font-size: 13px; }
table { border-collapse: collapse; } td, th { padding: .25rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
a { color: #1565c0; }
"""


def write_index(result: LocalRunResult, summary_text: str) -> None:
    """runs/<pipeline>/<ts>/index.html: the summary, links to every report, the gate's verdict,
    the log and files, and every metric."""
    def link(path: Path, text: str | None = None) -> str:
        relative = path.relative_to(result.run_dir).as_posix()
        return f"<a href='{html.escape(relative)}'>{html.escape(text or relative)}</a>"

    items = [f"<li>{link(path)}</li>" for path in result.reports]
    if (verdict := _verdict_file(result)) is not None:
        items.append(f"<li>{link(verdict, 'gate verdict')} ({link(verdict)})</li>")
    items += [f"<li>{link(result.run_dir / name)}</li>" for name in ("summary.txt", "run.log")]
    rows = [f"<tr><td>{html.escape(task.name)}</td><td>{html.escape(name)}</td>"
            f"<td class='number'>{html.escape(readable(value, name))}</td></tr>"
            for task in result.tasks.values() for name, value in task.metrics.items()]
    params = [f"<tr><td>{html.escape(name)}</td><td>{html.escape(_parameter(value))}</td></tr>"
              for name, value in sorted(result.params.items())]
    title = html.escape(result.pipeline)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title} run: {result.state}</title>"
            f"<style>{INDEX_STYLE}</style></head><body>"
            f"<h1>{title} <span class='state {result.state}'>{result.state}</span></h1>"
            f"<p>{html.escape(result.run_dir.name)}, {result.seconds:.1f}s</p>"
            f"<h2>Reports and logs</h2><ul>{''.join(items)}</ul>"
            f"<h2>Summary</h2><pre>{html.escape(summary_text)}</pre>"
            f"<h2>Metrics</h2><table><tr><th>step</th><th>metric</th><th>value</th></tr>"
            f"{''.join(rows)}</table><h2>Parameters</h2><table>{''.join(params)}</table>"
            f"<p>Every task's outputs: {link(result.run_dir / 'artifacts')}</p></body></html>\n")
    with atomic_path(result.run_dir / "index.html") as tmp:
        tmp.write_text(page, encoding="utf-8")


def _verdict_file(result: LocalRunResult) -> Path | None:
    """The gate step's verdict artifact (a Markdown file), when the step wrote it."""
    gate = result.tasks.get(GATE_TASK)
    if gate is None or gate.status != "SUCCESS":
        return None
    folders = [gate.output_dir] if gate.output_dir else list(result.run_dir.glob(f"artifacts/*/{GATE_TASK}"))
    return next((folder / "verdict" for folder in folders if (folder / "verdict").is_file()), None)


GATE_TASK = "gate-model"


def _gate_verdict(result: LocalRunResult) -> dict | None:
    """The gate step's verdict (its artifact's metadata), as the step wrote it."""
    gate = result.tasks.get(GATE_TASK)
    return gate.artifacts.get("verdict") if gate else None


def summary(result: LocalRunResult, entry: PipelineSpec, with_error: bool = True) -> str:
    """What ran, the scores beside the baseline, and the gate's verdict as the gate step
    wrote it: every comparison and the reason (the summary decides nothing itself).
    `with_error=False` leaves out the error line (the terminal prints it last, alone)."""
    lines = [f"pipeline {result.pipeline}: {result.state} in {result.seconds:.1f}s"]
    lines += [f"  {t.name:<28} {t.status:<8} {t.seconds:6.1f}s" + (
        f"  {readable_output(t.output)}" if isinstance(t.output, (int, float)) else "") for t in result.tasks.values()]
    evaluation = result.tasks.get(entry.gate_task)
    if evaluation and evaluation.status == "SUCCESS" and evaluation.output is not None:
        baseline = evaluation.metrics.get(entry.baseline_metric)
        lines.append(f"{entry.gate_metric}: {evaluation.output:.4f}" + (
            f"   naive baseline ({entry.baseline_metric}): {baseline:.4f}" if baseline is not None else ""))
    verdict = _gate_verdict(result)
    if verdict:
        lines += [f"gate: {comparison}" for comparison in verdict.get("comparisons", [])]
        lines.append(f"gate: {verdict.get('reason', '')}")
        deployed = result.deployed_to()
        if deployed:
            from components.store.folder import read_labels

            labels = read_labels(Path(deployed).parent)
            shown = f" (labels: {labels.describe(router=False)})" if labels else ""  # the local server's routing
            lines.append(f"model deployed to {deployed}{shown}")
        elif verdict.get("decision") != "deploy":
            lines.append("nothing deployed")
    if result.error and with_error:
        lines.append(f"{'interrupted' if result.interrupted else 'error'}: {result.error}")
    lines += [f"report: {path}" for path in result.reports]
    lines.append(f"artifacts and log: {result.run_dir} (open index.html)")
    if result.tracked_to:
        lines.append(f"MLflow: {result.tracked_to}")
    return "\n".join(lines)
