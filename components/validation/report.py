"""The validation report: what a person reads in ten seconds, in that order.

1. The anomalies, in red: what stops the run (or would have, under `skip_validation`),
   and the warnings that do not.
2. Drift per column, worst first, PSI beside the Jensen-Shannon distance, against the
   gate's limit when the pipeline gives one.
3. Each column's histogram of this run over the champion's, on the champion's bins,
   in the same order.
"""

import html
import math
from pathlib import Path

from components.common import reports
from components.validation.drift import ColumnDrift
from components.validation.schema import Anomaly

PSI_ACT = 0.25  # the usual "act" level, marked in the report (the gate's own limit is max_drift)
COLUMNS_PER_ROW = 3


def anomalies_html(anomalies: list[Anomaly], skipped: bool) -> str:
    if not anomalies:
        return "<p class='deploy'>No anomalies: the columns, types, domains and missing rates match.</p>"
    fatal = [a for a in anomalies if a.fatal]
    note = "<p>Nothing here stops the run: values beyond the recorded range are drift's to judge.</p>"
    if fatal and skipped:
        note = "<p class='refuse'><b>skip_validation is set: these did not stop the run.</b></p>"
    items = "".join(f"<li class='{'refuse' if a.fatal else ''}'>{html.escape(str(a))}"
                    f"{'' if a.fatal else ' (warning)'}</li>" for a in anomalies)
    return f"{note}<ul>{items}</ul>"


def drift_html(drifts: list[ColumnDrift], champion_line: str) -> str:
    if not drifts:
        return f"<p>{html.escape(champion_line)}</p>"
    rows = [[d.column, round(d.psi, 4), round(d.js, 4), "above 0.25" if d.psi > PSI_ACT else ""] for d in drifts]
    table = reports.table_html(["column", "PSI", "Jensen-Shannon distance", ""], rows)
    table = table.replace("<td>above 0.25</td>", "<td class='worse'>above 0.25</td>")
    table = table.replace("<tr><td>", "<tr><td style='text-align:left'>")  # the column names
    return f"<p>{html.escape(champion_line)}</p>{table}"


def histograms_html(drifts: list[ColumnDrift]) -> str:
    if not drifts:
        return "<p>Nothing to compare.</p>"
    import matplotlib.pyplot as plt
    import numpy as np

    rows = math.ceil(len(drifts) / COLUMNS_PER_ROW)
    figure, axes = plt.subplots(rows, COLUMNS_PER_ROW, figsize=(12, 2.6 * rows), squeeze=False)
    for axis, drift in zip(axes.flat, drifts, strict=False):
        x = np.arange(len(drift.bins))
        axis.bar(x, drift.champion, width=0.9, color="#b0bec5", label="champion")
        axis.bar(x, drift.current, width=0.45, color="#c62828" if drift.psi > PSI_ACT else "#1565c0",
                 label="this run")
        axis.set_title(f"{drift.column}  PSI {drift.psi:.3g}", fontsize=9)
        axis.set_xticks(x[:: max(1, len(x) // 5)])
        axis.set_xticklabels(drift.bins[:: max(1, len(x) // 5)], fontsize=6, rotation=20)
        axis.tick_params(axis="y", labelsize=7)
    for axis in list(axes.flat)[len(drifts):]:
        axis.set_visible(False)
    # One legend for every panel, in a strip above them all, where it covers no bar and no title.
    figure.legend(*axes.flat[0].get_legend_handles_labels(), loc="upper left", ncol=2, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.3 / (2.6 * rows)))
    return ("<p>Share of the data per bin: the champion's (grey; its deciles, so about a tenth each) "
            "and this run's on the same bins (blue, red above PSI 0.25).</p>" + reports.figure_html(figure))


def write_validation_report(path: str | Path, anomalies: list[Anomaly], skipped: bool,
                            drifts: list[ColumnDrift], champion_line: str, summary: str) -> None:
    reports.write_report(path, "Data validation", [
        ("Anomalies", anomalies_html(anomalies, skipped)),
        ("Drift, worst first", f"<p>{html.escape(summary)}</p>" + drift_html(drifts, champion_line)),
        ("This run over the champion", histograms_html(drifts)),
    ])
