"""Run a registered pipeline on this machine through kfp.local, and summarize it.

Each run gets `runs/<pipeline>/<timestamp>/` in the checkout: `artifacts/`
(kfp's pipeline root: every task's outputs), `run.log` (everything the steps
printed) and `summary.txt`. The workspace volume is emulated by a folder that
kfp deletes when the run ends. The model store defaults to `model_store/`.

kfp.local reports task starts and ends only as log lines, so per-step times
are read from those lines as they are printed.
"""

import contextlib
import io
import json
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

from pipelines import parameters, registry

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_START = re.compile(r"Executing task '([^']+)'")
TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")
# Kept in run.log only: kfp's executor echoing its whole input/output JSON, and
# TensorFlow's C++ start-up lines (absl format: I0000 00:00:...), which ignore
# TF_CPP_MIN_LOG_LEVEL before absl's logging is initialised.
TERMINAL_NOISE = re.compile(r'^\s{4}(?:\s*["{}\[\]]|\[KFP Executor|\s*$|[IWE]\d{4} |WARNING: All log)')


@dataclass
class TaskRun:
    name: str
    status: str = "RUNNING"
    seconds: float = 0.0
    output: Any = None  # the step's single return value, if any
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class LocalRunResult:
    pipeline: str
    run_dir: Path
    params: dict[str, Any]
    tasks: dict[str, TaskRun]
    error: str | None = None
    seconds: float = 0.0

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
        if self.verbose or not TERMINAL_NOISE.match(plain):
            self.terminal.write(line + "\n")

    def last_error(self) -> str | None:
        for line in reversed(self.lines):
            if match := ERROR_LINE.match(line):
                return match[2] if match[1] == "InputError" else f"{match[1]}: {match[2]}"
        return None


def default_run_dir(pipeline: str) -> Path:
    return Path("runs") / pipeline / datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def _read_task_outputs(pipeline_root: Path, tasks: dict[str, TaskRun]) -> None:
    """Fill each task's return value and metrics from its executor_output.json."""
    for output_file in pipeline_root.glob("*/*/executor_output.json"):
        task = tasks.get(output_file.parent.name)
        if task is None:
            continue
        written = json.loads(output_file.read_text())
        values = written.get("parameterValues", {})
        task.output = values.get("Output")
        # executor_output.json does not name artifact types: take every number
        # in the output artifacts' metadata (a Metrics artifact holds only numbers).
        for artifact_list in written.get("artifacts", {}).values():
            for artifact in artifact_list.get("artifacts", []):
                task.metrics.update({k: v for k, v in artifact.get("metadata", {}).items()
                                     if isinstance(v, (int, float))})


def run_local(pipeline_name: str, params: dict[str, Any], run_dir: Path | None = None,
              verbose: bool = False) -> LocalRunResult:
    """Run the pipeline through kfp.local's SubprocessRunner in this environment."""
    from kfp import local

    entry = registry.get(pipeline_name)
    pipeline_func = entry.make_pipeline(gpu=False)
    declared = parameters.declared_by(pipeline_func)
    params = parameters.resolve(pipeline_name, declared, params)
    if "model_base_path" in declared and "model_base_path" not in params:
        params["model_base_path"] = str(Path("model_store").resolve())
    effective = {**{name: spec.get("defaultValue") for name, spec in declared.items()}, **params}

    run_dir = (run_dir or default_run_dir(pipeline_name)).resolve()
    workspace = run_dir / "workspace"
    workspace.mkdir(parents=True)
    pipeline_root = run_dir / "artifacts"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
               workspace_root=str(workspace), raise_on_error=False)
    # Steps run in this environment, not in the image the warning is about.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task")
    started = time.monotonic()
    # Steps inherit the environment: fewer of TensorFlow's C++ log lines.
    quiet_tensorflow = mock.patch.dict(os.environ, {"TF_CPP_MIN_LOG_LEVEL": "2"})
    with open(run_dir / "run.log", "w", encoding="utf-8") as log_file, quiet_tensorflow:
        capture = _LogCapture(sys.stdout, log_file, verbose)
        with contextlib.redirect_stdout(capture):
            pipeline_func(**params)
        capture.flush()
    tasks = capture.tasks
    _read_task_outputs(pipeline_root, tasks)
    failed = [t.name for t in tasks.values() if t.status == "FAILURE"]
    error = None
    if failed:
        error = f"step '{failed[-1]}' failed: {capture.last_error() or 'see ' + str(run_dir / 'run.log')}"
    result = LocalRunResult(pipeline_name, run_dir, effective, tasks, error, time.monotonic() - started)
    (run_dir / "summary.txt").write_text(summary(result, entry) + "\n", encoding="utf-8")
    return result


GATE_TASK = "gate-model"


def _gate_verdict(result: LocalRunResult) -> dict | None:
    """The gate step's verdict (its artifact's metadata), as the step wrote it."""
    for output_file in (result.run_dir / "artifacts").glob(f"*/{GATE_TASK}/executor_output.json"):
        verdict = json.loads(output_file.read_text()).get("artifacts", {}).get("verdict", {})
        for artifact in verdict.get("artifacts", []):
            return artifact.get("metadata")
    return None


def summary(result: LocalRunResult, entry: registry.PipelineEntry) -> str:
    """What ran, the scores beside the baseline, and the gate's verdict as the gate step
    wrote it: every comparison and the reason (the summary decides nothing itself)."""
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
    if result.error:
        lines.append(f"error: {result.error}")
    lines.append(f"artifacts and log: {result.run_dir}")
    return "\n".join(lines)
