"""Self-contained HTML reports that the Pipelines UI renders in its visualization tab.

Plots are PNGs embedded as base64 so the report is one file with no external
references (the UI sandboxes HTML artifacts). Tables are plain HTML. Legends
sit above the plot area, never over the data.

The gate step decides after the evaluate step has written its report, so an
evaluation report carries a marked "Deploy gate" section (`pending_gate_html`)
that the gate step fills with its verdict (`with_verdict`) in its own report:
the same page, decided.
"""

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display in a pod or in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from components.common.errors import InputError  # noqa: E402
from components.common.readable import number  # noqa: E402
from components.common.storage import atomic_path  # noqa: E402

STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:1000px}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
         "th{background:#f3f3f3}img{max-width:100%}"
         ".deploy{color:#1a7f37}.refuse{color:#c62828}.worse{color:#c62828;font-weight:bold}")
GATE_START, GATE_END = "<!-- gate verdict -->", "<!-- /gate verdict -->"


def figure_html(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'


def table_html(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return number(value) if isinstance(value, (int, float)) else html.escape(str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def metrics_table_html(metrics: Mapping[str, float]) -> str:
    return table_html(["metric", "value"], metrics.items())


def write_report(path: str | Path, title: str, sections: Sequence[tuple[str, str]]) -> None:
    """Write an HTML page with a title and (heading, html body) sections."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<h2>{html.escape(heading)}</h2>{body}" for heading, body in sections]
    parts.append("</body></html>")
    write_html(path, "".join(parts))


def legend_above(axis, columns: int = 3) -> None:
    """The legend in a row above the plot area, where it can cover no bar or line."""
    axis.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=columns, fontsize=8, frameon=False)


def curves_figure(panels: Sequence[tuple[str, Mapping[str, Sequence[float]]]], x_label: str,
                  mark: tuple[int, str] | None = None) -> plt.Figure:
    """One plot per (y label, {series label: values per step}) panel, steps counted from 1;
    `mark` draws a dashed line at one step (e.g. the early-stopping point) with its label."""
    figure, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.4), squeeze=False)
    steps = max((len(values) for _, series in panels for values in series.values()), default=1)
    for axis, (y_label, series) in zip(axes[0], panels, strict=True):
        for label, values in series.items():
            axis.plot(range(1, len(values) + 1), values, label=label,
                      marker="o" if len(values) <= 30 else None, markersize=3)
        if mark is not None:
            axis.axvline(mark[0], color="red", linestyle="--", linewidth=1, label=mark[1])
        axis.set_xlim(0.5, steps + 0.5)  # a one-epoch training still reads "epoch 1"
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # epochs and rounds are whole
        axis.set_xlabel(x_label)
        axis.set_ylabel(y_label)
        axis.grid(alpha=0.3)
        legend_above(axis, columns=2)
    figure.tight_layout()
    return figure


@dataclass(frozen=True)
class BaselineComparison:
    """The model's score beside a naive baseline's on one metric."""

    metric: str
    model: float
    baseline: str  # what the baseline does, e.g. "always up"
    baseline_value: float
    higher_is_better: bool = True

    @property
    def model_loses(self) -> bool:
        return self.model < self.baseline_value if self.higher_is_better else self.model > self.baseline_value

    def loss_sentence(self) -> str:
        return (f"the model is worse than {self.baseline} on {self.metric}: {number(self.model)} "
                f"against {number(self.baseline_value)}")

    def outcome(self) -> str:
        gap = number(abs(self.model - self.baseline_value))
        if self.model == self.baseline_value:
            return "no better: equal"
        return f"WORSE by {gap}" if self.model_loses else f"better by {gap}"


def baselines_html(comparisons: Sequence[BaselineComparison]) -> str:
    """The model beside every naive baseline; each loss said in a sentence under the table."""
    rows = "".join(
        f"<tr><td>{html.escape(c.metric)} ({'higher' if c.higher_is_better else 'lower'} is better)</td>"
        f"<td>{number(c.model)}</td><td>{html.escape(c.baseline)}</td><td>{number(c.baseline_value)}</td>"
        f"<td class='{'worse' if c.model_loses else ''}'>{html.escape(c.outcome())}</td></tr>"
        for c in comparisons)
    table = ("<table><tr><th>metric</th><th>model</th><th>naive baseline</th><th>baseline's score</th>"
             f"<th>model against baseline</th></tr>{rows}</table>")
    losses = [f"<p class='worse'>{html.escape(c.loss_sentence()[:1].upper() + c.loss_sentence()[1:])}.</p>"
              for c in comparisons if c.model_loses]
    return table + "".join(losses)


def pending_gate_html(line: str) -> str:
    """An evaluation report's gate section before the gate step has decided."""
    return (f"{GATE_START}<p>{html.escape(line)}</p><p>Not decided yet: the gate step decides after this "
            "report, and its own report (the gate step's <code>report</code> artifact) is this page with "
            f"the verdict.</p>{GATE_END}")


def verdict_html(decision: str, reason: str, comparisons: Sequence[str], details: str = "") -> str:
    """The verdict: DEPLOY or REFUSED in large, the reason, every comparison with its outcome, then
    `details` (HTML: the intervals' plot and the models' scores, `intervals_html`)."""
    word, css = ("DEPLOY", "deploy") if decision == "deploy" else ("REFUSED", "refuse")
    rows = []
    for line in comparisons:
        check, _, outcome = line.partition(" -> ")
        name, _, detail = check.partition(": ")
        rows.append([name, detail, outcome])
    table = table_html(["check", "comparison", "outcome"], rows).replace("<td>", "<td style='text-align:left'>")
    return (f"<p class='{css}' style='font-size:1.6em;font-weight:bold'>{word}</p><p>{html.escape(reason)}</p>"
            f"{table}{details}")


def intervals_html(metric: str, confidence: float, tolerance: float,
                   intervals: Sequence[tuple[str, float, float, float]], scores: Sequence[Sequence[object]]) -> str:
    """The gate's intervals as a forest plot, (label, point, low, high) each, with the zero line and
    -tolerance marked; then the table of `scores` rows: model, version, score on these rows, stored score."""
    figure, axis = plt.subplots(figsize=(7.5, 0.9 + 0.6 * len(intervals)))
    positions = list(range(len(intervals)))[::-1]  # the first interval on top
    for y, (_, point, low, high) in zip(positions, intervals, strict=True):
        color = "#1a7f37" if low > 0 else "#c62828" if high < 0 else "#444444"
        axis.errorbar([point], [y], xerr=[[point - low], [high - point]], fmt="o", color=color, capsize=5)
    axis.axvline(0, color="black", linewidth=1, label="0: no difference" + (" (= -tolerance)" if not tolerance else ""))
    if tolerance:
        axis.axvline(-tolerance, color="#c62828", linestyle="--", linewidth=1, label=f"-tolerance ({-tolerance:g})")
    axis.set_yticks(positions, [label for label, *_ in intervals])
    axis.set_ylim(-0.6, len(intervals) - 0.4)
    axis.set_xlabel(f"{metric.replace('_', ' ')}: challenger minus the other model, {confidence:.0%} interval")
    axis.grid(axis="x", alpha=0.3)
    legend_above(axis, columns=2)
    figure.tight_layout()
    table = table_html(["model", "version", f"{metric.replace('_', ' ')} on these rows", "stored score (history)"],
                       scores).replace("<td>", "<td style='text-align:left'>")  # words: read from the left
    return (f"<h3>Paired intervals ({confidence:.0%})</h3>{figure_html(figure)}"
            f"<h3>Every model on the same rows</h3>{table}")


def with_verdict(report: str, verdict: str) -> str:
    """The evaluation report `report` with its gate section replaced by `verdict` (HTML)."""
    start, end = report.find(GATE_START), report.find(GATE_END)
    if start < 0 or end < start:
        raise InputError("the evaluation report has no gate section to fill in")
    return report[:start] + verdict + report[end + len(GATE_END):]


def write_html(path: str | Path, text: str) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")
