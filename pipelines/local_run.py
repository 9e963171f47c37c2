"""Run a registered pipeline on this machine through kfp.local, and summarize it.

Each run gets `runs/<pipeline>/<timestamp>/` in the checkout: `artifacts/`
(kfp's pipeline root: every task's outputs), `run.log` (everything the steps
printed, tracebacks included), `summary.txt` (the summary, every parameter,
every metric, the reports' paths), `reports/<task>-<output>.html` (each HTML
artifact, openable in a browser) and `index.html` linking all of them. The
workspace volume is emulated by a folder that kfp deletes when the run ends.
The model store defaults to `model_store/`.

The terminal shows the steps' own lines; kfp's JSON echo, a failed step's
traceback and the artifacts' full metadata stay in run.log (`--verbose` shows
everything).

kfp.local reports task starts and ends only as log lines, so per-step times
are read from those lines as they are printed.
"""

import ast
import contextlib
import html
import io
import json
import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

from components import images
from components.errors import PipelineError
from components.storage import atomic_path, retry_budget_s
from pipelines import container_runner, local_tracking, parameters, registry
from pipelines.container_runner import ContainerSettings

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_START = re.compile(r"Executing task '([^']+)'")
TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")
# Kept in run.log only: kfp's executor echoing its whole input/output JSON, and
# TensorFlow's C++ start-up lines (absl format: I0000 00:00:...), which ignore
# TF_CPP_MIN_LOG_LEVEL before absl's logging is initialised.
TERMINAL_NOISE = re.compile(r'^\s{4}(?:\s*["{}\[\]]|\[KFP Executor|\s*$|[IWE]\d{4} |WARNING: All log)')
TRACEBACK_START = re.compile(r"^\s{4}Traceback \(most recent call last\):")
# A traceback ends at its exception line (`    pkg.SomeError: message`, at the step's indentation);
# chained ones are joined by one of these lines.
TRACEBACK_END = re.compile(r"^\s{4}[\w.]+(?:Error|Exception|Exit|Interrupt)\b")
TRACEBACK_CHAIN = re.compile(r"^\s{4}(?:The above exception was|During handling of the above exception)")
OUTPUTS_START = re.compile(r"Task '[^']+' outputs:")
# An output artifact in kfp's outputs dump: `    name: Type( name='name',`.
OUTPUT_ARTIFACT = re.compile(r"^\s{4}(\w+): (\w+)\( name=")
OUTPUT_METADATA = re.compile(r"^\s+metadata=(\{.*\}) \)$")
# Messages of this project's own errors are written for the user: shown without the class name.
PROJECT_ERRORS = {PipelineError.__name__} | {kind.__name__ for kind in PipelineError.__subclasses__()}
# kfp warns about settings a cluster honours (retry, resources, caching, GPUs) on every run.
LOCAL_RUNNER_WARNINGS = (r".*no effect in the current local runner", r".*is not used by the current local runner",
                         r"You may be attemping to run a task")


@dataclass
class TaskRun:
    name: str
    status: str = "RUNNING"
    seconds: float = 0.0
    output: Any = None  # the step's single return value, if any
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, dict] = field(default_factory=dict)  # output artifact name -> its metadata


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

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def deployed_to(self) -> str | None:
        deploy = self.tasks.get("deploy-model")
        return deploy.output if deploy and deploy.status == "SUCCESS" else None


class _LogCapture(io.TextIOBase):
    """Stand-in for sys.stdout: timestamps task starts/ends, keeps the whole log,
    and shows the user the steps' own lines without kfp's JSON echo."""

    def __init__(self, terminal, log_file, verbose: bool):
        self.terminal, self.log_file, self.verbose = terminal, log_file, verbose
        self.tasks: dict[str, TaskRun] = {}
        self.started: dict[str, float] = {}
        self.lines: list[str] = []
        self.pending = ""
        self.in_traceback = False  # a failed step's traceback: run.log only
        self.in_outputs = False  # kfp's dump of a task's outputs: one short line per output
        self.seconds = 0.0  # the whole run's wall time

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._line(line)
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()
        self.log_file.flush()

    def _line(self, line: str) -> None:
        plain = ANSI.sub("", line)
        self.log_file.write(plain + "\n")
        self.lines.append(plain)
        if match := TASK_START.search(plain):
            self.started[match[1]] = time.monotonic()
            self.tasks[match[1]] = TaskRun(match[1])
        elif match := TASK_END.search(plain):
            task = self.tasks.setdefault(match[1], TaskRun(match[1]))
            task.status = match[2]
            task.seconds = time.monotonic() - self.started.get(match[1], time.monotonic())
        shown = line if self.verbose else self._for_terminal(line, plain)
        if shown is not None:
            self.terminal.write(shown + "\n")

    def _for_terminal(self, line: str, plain: str) -> str | None:
        """What the terminal shows of a log line (None: nothing; run.log keeps it all)."""
        if TASK_START.search(plain) or TASK_END.search(plain) or not plain.startswith("    "):
            self.in_traceback = False
            self.in_outputs = bool(OUTPUTS_START.search(plain))
            return line
        if TRACEBACK_START.match(plain):
            self.in_traceback = True
        elif self.in_traceback and TRACEBACK_END.match(plain):
            self.in_traceback = False  # the exception line itself: the summary's error line says it
            return None
        if self.in_traceback or TERMINAL_NOISE.match(plain) or TRACEBACK_CHAIN.match(plain):
            return None
        if self.in_outputs:
            return trimmed_output(plain)
        return line

    def last_error(self) -> str | None:
        for line in reversed(self.lines):
            if match := ERROR_LINE.match(line):
                return match[2] if match[1] in PROJECT_ERRORS else f"{match[1]}: {match[2]}"
        return None


def trimmed_output(plain: str) -> str | None:
    """One short line per output in kfp's outputs dump: `name: Type` plus its numbers, if any."""
    if match := OUTPUT_ARTIFACT.match(plain):
        return f"    {match[1]}: {match[2]}"
    if match := OUTPUT_METADATA.match(plain):
        try:
            metadata = ast.literal_eval(match[1])
        except (ValueError, SyntaxError):
            return None
        numbers = {k: v for k, v in metadata.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers and len(numbers) == len(metadata):  # a Metrics artifact: its scores, rounded
            return "      " + "  ".join(f"{k} {v:.4g}" for k, v in numbers.items())
        return None
    if plain.startswith("     "):  # the rest of an artifact's dump (uri, metadata continued)
        return None
    return plain if len(plain) <= 120 else plain[:117] + "..."


def default_run_dir(pipeline: str) -> Path:
    return Path("runs") / pipeline / datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def _read_task_outputs(pipeline_root: Path, tasks: dict[str, TaskRun]) -> None:
    """Fill each task's return value, artifact metadata and metrics from its executor_output.json."""
    for output_file in pipeline_root.glob("*/*/executor_output.json"):
        task = tasks.get(output_file.parent.name)
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
                task.metrics.update({k: v for k, v in metadata.items() if isinstance(v, (int, float))})


def run_local(pipeline_name: str, params: dict[str, Any], run_dir: Path | None = None,
              verbose: bool = False, containers: ContainerSettings | None = None,
              tracking: str | None = None) -> LocalRunResult:
    """Run the pipeline through kfp.local: each step in a subprocess of this
    environment, or, with `containers`, each step in a container of its image
    (pipelines/container_runner.py); with `tracking` (default: $TRACKING) into
    MLflow as the platform's plugin would (pipelines.local_tracking)."""
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
        containers.check()
        container_runner.check_image(images.cpu_image())
    run_dir = (run_dir or default_run_dir(pipeline_name)).resolve()
    workspace = run_dir / "workspace"
    workspace.mkdir(parents=True)
    pipeline_root = run_dir / "artifacts"
    pipeline_root.mkdir()
    with _step_runner(containers, run_dir, [pipeline_root, workspace], params) as runner:
        local.init(runner=runner, pipeline_root=str(pipeline_root), workspace_root=str(workspace),
                   raise_on_error=False)
        with local_tracking.tracked_run(store, pipeline_name, effective, run_dir) as tracked:
            capture = _run_pipeline(pipeline_func, params, run_dir, verbose, tracked)
    tasks = capture.tasks
    _read_task_outputs(pipeline_root, tasks)
    failed = [t.name for t in tasks.values() if t.status == "FAILURE"]
    error = None
    if failed:
        error = f"step '{failed[-1]}' failed: {capture.last_error() or 'see ' + str(run_dir / 'run.log')}"
    result = LocalRunResult(pipeline_name, run_dir, effective, tasks, error, capture.seconds,
                            reports=link_reports(pipeline_root, run_dir / "reports"),
                            tracked_to=tracked.describe() if tracked else None)
    text = summary(result, entry)
    (run_dir / "summary.txt").write_text(text + "\n" + run_record(result) + "\n", encoding="utf-8")
    write_index(result, text)
    return result


def _step_runner(containers: ContainerSettings | None, run_dir: Path, folders: list[Path],
                 params: dict[str, Any]) -> contextlib.AbstractContextManager:
    """kfp's runner for the steps: a subprocess each, or a container each (with the
    local model store and local data sources mounted, and its containers recorded
    in the run folder)."""
    from kfp import local

    model_base_path = params.get("model_base_path")
    if containers is None:
        return contextlib.nullcontext(local.SubprocessRunner(use_venv=False))
    if model_base_path and "://" not in model_base_path:
        store = Path(model_base_path)
        store.mkdir(parents=True, exist_ok=True)
        containers.mounts.append(store)
        folders = [*folders, store]
    containers.read_only_mounts = container_runner.local_sources(params)
    containers.record = run_dir / container_runner.RECORD_FILE
    return container_runner.container_steps(containers, folders)


def _run_pipeline(pipeline_func, params: dict[str, Any], run_dir: Path, verbose: bool,
                  tracked: "local_tracking.LocalTracking | None") -> "_LogCapture":
    """Call the pipeline under kfp.local with its output captured into run.log and the terminal
    (and the MLflow parent run closed, when tracked, while the steps' output is still captured)."""
    started = time.monotonic()
    # Steps inherit the environment: fewer of TensorFlow's C++ log lines.
    quiet_tensorflow = mock.patch.dict(os.environ, {"TF_CPP_MIN_LOG_LEVEL": "2"})
    with open(run_dir / "run.log", "w", encoding="utf-8") as log_file, quiet_tensorflow, \
            warnings.catch_warnings():
        # Cluster-only settings are ignored by design in a local run.
        for message in LOCAL_RUNNER_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        capture = _LogCapture(sys.stdout, log_file, verbose)
        with contextlib.redirect_stdout(capture):
            pipeline_func(**params)
            if tracked:
                tracked.finish(all(task.status != "FAILURE" for task in capture.tasks.values()))
        capture.flush()
    capture.seconds = time.monotonic() - started
    return capture


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
    lines += [f"  {name} = {value!r}" for name, value in sorted(result.params.items())]
    metrics = [(task, name, value) for task in result.tasks.values() for name, value in task.metrics.items()]
    if metrics:
        lines += ["", "metrics:"] + [f"  {task.name}.{name} = {value:.6g}" for task, name, value in metrics]
    lines += ["", "reports:"] + [f"  {path}" for path in result.reports] + [f"  {result.run_dir / 'index.html'}"]
    return "\n".join(lines)


def write_index(result: LocalRunResult, summary_text: str) -> None:
    """runs/<pipeline>/<ts>/index.html: the summary, links to every report, log and file, and every metric."""
    def link(path: Path, text: str | None = None) -> str:
        relative = path.relative_to(result.run_dir).as_posix()
        return f"<a href='{html.escape(relative)}'>{html.escape(text or relative)}</a>"

    items = [f"<li>{link(path)}</li>" for path in result.reports]
    items += [f"<li>{link(result.run_dir / name)}</li>" for name in ("summary.txt", "run.log")]
    rows = [f"<tr><td>{html.escape(task.name)}</td><td>{html.escape(name)}</td><td>{value:.6g}</td></tr>"
            for task in result.tasks.values() for name, value in task.metrics.items()]
    params = [f"<tr><td>{html.escape(name)}</td><td>{html.escape(repr(value))}</td></tr>"
              for name, value in sorted(result.params.items())]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(result.pipeline)} run"
            f"</title></head><body><h1>{html.escape(result.pipeline)}: "
            f"{'succeeded' if result.succeeded else 'failed'}</h1><pre>{html.escape(summary_text)}</pre>"
            f"<h2>Reports and logs</h2><ul>{''.join(items)}</ul>"
            f"<h2>Metrics</h2><table border='1'><tr><th>step</th><th>metric</th><th>value</th></tr>"
            f"{''.join(rows)}</table><h2>Parameters</h2><table border='1'>{''.join(params)}</table>"
            f"<p>Every task's outputs: {link(result.run_dir / 'artifacts')}</p></body></html>\n")
    with atomic_path(result.run_dir / "index.html") as tmp:
        tmp.write_text(page, encoding="utf-8")


GATE_TASK = "gate-model"


def _gate_verdict(result: LocalRunResult) -> dict | None:
    """The gate step's verdict (its artifact's metadata), as the step wrote it."""
    gate = result.tasks.get(GATE_TASK)
    return gate.artifacts.get("verdict") if gate else None


def summary(result: LocalRunResult, entry: registry.PipelineEntry, with_error: bool = True) -> str:
    """What ran, the scores beside the baseline, and the gate's verdict as the gate step
    wrote it: every comparison and the reason (the summary decides nothing itself).
    `with_error=False` leaves out the error line (the terminal prints it last, alone)."""
    lines = [f"pipeline {result.pipeline}: {'SUCCEEDED' if result.succeeded else 'FAILED'} "
             f"in {result.seconds:.1f}s"]
    lines += [f"  {t.name:<28} {t.status:<8} {t.seconds:6.1f}s" for t in result.tasks.values()]
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
            from components.model_store import read_labels

            labels = read_labels(Path(deployed).parent)
            lines.append(f"model deployed to {deployed}" + (f" (labels: {labels.describe()})" if labels else ""))
        elif verdict.get("decision") != "deploy":
            lines.append("nothing deployed")
    if result.error and with_error:
        lines.append(f"error: {result.error}")
    lines += [f"report: {path}" for path in result.reports]
    lines.append(f"artifacts and log: {result.run_dir} (open index.html)")
    if result.tracked_to:
        lines.append(f"MLflow: {result.tracked_to}")
    return "\n".join(lines)
