"""What a local run leaves for people: the terminal's and summary.txt's summary, index.html, the reports.

`run_local` (pipelines.local.run) returns a `LocalRunResult`; everything here reads it and the run
folder, and decides nothing (the gate step's verdict is shown as the step wrote it).
"""

import html
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.readable import readable, readable_output
from components.common.storage import atomic_path
from pipelines.local.output import TaskRun
from pipelines.spec import PipelineSpec


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
pre { background: #f6f8fa; padding: 1rem; border-radius: .4rem; font-size: 13px; white-space: pre-wrap;
      overflow-wrap: anywhere; }
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
