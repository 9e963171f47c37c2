"""The shared report helpers: the gate section the gate step fills in, the baselines, the curves."""

import pytest

from components.common import reports
from components.common.errors import InputError


def test_the_gate_section_is_replaced_by_the_verdict_and_nothing_else_changes(tmp_path):
    path = tmp_path / "report.html"
    reports.write_report(path, "Evaluation", [("Deploy gate", reports.pending_gate_html("accuracy 0.61")),
                                              ("Metrics", reports.metrics_table_html({"accuracy": 0.61}))])
    pending = path.read_text()
    assert "accuracy 0.61" in pending and "Not decided yet" in pending
    verdict = reports.verdict_html("refuse", "REFUSED: accuracy 0.6100 is below the threshold 0.7.",
                                   ["threshold: accuracy 0.6100 < 0.7 -> FAIL",
                                    "serving champion: none, nothing is serving yet -> first deploy"])
    decided = reports.with_verdict(pending, verdict)
    assert "Not decided yet" not in decided and ">REFUSED<" in decided
    assert "<td style='text-align:left'>accuracy 0.6100 &lt; 0.7</td><td style='text-align:left'>FAIL</td>" \
        in decided
    assert decided.split("<h2>Metrics</h2>")[1] == pending.split("<h2>Metrics</h2>")[1]
    assert ">DEPLOY<" in reports.with_verdict(pending, reports.verdict_html("deploy", "DEPLOY: first", []))
    with pytest.raises(InputError, match="no gate section"):
        reports.with_verdict("<html>no section</html>", verdict)


def test_a_model_worse_than_a_baseline_is_said_plainly():
    html = reports.baselines_html([
        reports.BaselineComparison("RMSE", 0.006003, "predicting zero", 0.005993, higher_is_better=False),
        reports.BaselineComparison("weighted correlation", 0.0414, "reversal (-return_30)", 0.0123),
    ])
    assert "WORSE by 0.00001000" in html
    assert "The model is worse than predicting zero on RMSE: 0.006003 against 0.005993." in html
    assert "better by 0.0291" in html and "worse than reversal" not in html


def test_numbers_in_tables_read_as_numbers():
    table = reports.metrics_table_html({"test_rows": 96990.0, "accuracy": 0.53125, "rmse": 0.0060031})
    assert "<td>96,990</td>" in table and "<td>0.5312</td>" in table and "<td>0.006003</td>" in table


def test_curves_have_one_panel_per_metric_and_their_legends_above_the_plot():
    figure = reports.curves_figure([("loss", {"training": [0.7, 0.6, 0.5]}),
                                    ("accuracy", {"training": [0.5, 0.55, 0.6], "validation": [0.5, 0.52, 0.5]})],
                                   "epoch", mark=(2, "best"))
    axes = figure.axes
    assert [axis.get_ylabel() for axis in axes] == ["loss", "accuracy"]
    assert [text.get_text() for text in axes[1].get_legend().get_texts()] == ["training", "validation", "best"]
    for axis in axes:  # anchored above the plotting area: it cannot cover a line
        assert axis.get_legend()._loc == 3 and axis.get_legend().get_bbox_to_anchor().y0 > axis.bbox.y1
    assert list(axes[0].lines[0].get_xdata()) == [1, 2, 3]
    single = reports.curves_figure([("loss", {"training": [0.7]})], "epoch").axes[0]
    assert single.get_xlim() == (0.5, 1.5) and [t for t in single.get_xticks() if 0.5 <= t <= 1.5] == [1]


def test_the_gates_intervals_are_a_forest_plot_and_a_table_of_scores(monkeypatch):
    drawn = []
    monkeypatch.setattr(reports, "figure_html", lambda figure: drawn.append(figure) or "<img alt='plot'>")
    details = reports.intervals_html("accuracy", 0.95, 0.01, [("challenger - champion", 0.02, -0.01, 0.05),
                                                               ("challenger - baseline", -0.03, -0.05, -0.01)],
                                     [["champion (stable)", 3, 0.5312, "scored 0.6 on its own test set"]])
    (figure,) = drawn
    (axis,) = figure.axes
    placed = {tick: label.get_text() for tick, label in zip(axis.get_yticks(), axis.get_yticklabels(), strict=True)}
    assert placed == {1: "challenger - champion", 0: "challenger - baseline"}  # the first interval on top
    vertical = sorted(line.get_xdata()[0] for line in axis.lines if len(set(line.get_xdata())) == 1)
    assert -0.01 in vertical and 0 in vertical  # -tolerance and the zero line
    assert "95% interval" in axis.get_xlabel()
    assert ">0.5312</td>" in details and "scored 0.6 on its own test set" in details
    decided = reports.verdict_html("deploy", "DEPLOY", ["threshold: accuracy 0.6 >= 0.5 -> pass"], details)
    assert decided.endswith(details)
