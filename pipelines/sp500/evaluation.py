"""Test-set metrics for the direction classifier, beside the naive baseline.

The baseline is "always up": predict that the target closes up every day. A
model that does not beat it has learned nothing useful, whatever its accuracy.

The evaluate step also writes the rows it scored (`components.release.rows`), so
that the gate re-scores the serving champion on them and resamples them.
"""

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from components.common.reports import (
    BaselineComparison,
    baselines_html,
    curves_figure,
    figure_html,
    legend_above,
    metrics_table_html,
    pending_gate_html,
    table_html,
    write_report,
)
from components.release.rows import RowsInfo, write_rows

UP = 1  # the "up" class, which the always-up baseline predicts every day
# The gate's block bootstrap resamples the test period in runs of this many consecutive trading days
# (two weeks). Neighbouring days are not independent: a day's features are the previous num_lags days'
# returns (3 by default), and volatility clusters over days. Ten days span the default lag window three
# times over and still leave about 45 blocks in the default 453-day test period.
BLOCK_LENGTH_DAYS = 10


@dataclass(frozen=True)
class DirectionMetrics:
    accuracy: float
    precision: float
    recall: float
    f1: float
    always_up_accuracy: float
    test_days: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def direction_metrics(labels: np.ndarray, predicted: np.ndarray) -> DirectionMetrics:
    """Precision, recall and F1 are for the "up" class (label 1)."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    true_up = float(np.sum((predicted == UP) & (labels == UP)))
    precision = true_up / max(1, int(np.sum(predicted == UP)))
    recall = true_up / max(1, int(np.sum(labels == UP)))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return DirectionMetrics(
        accuracy=float(np.mean(predicted == labels)),
        precision=precision,
        recall=recall,
        f1=f1,
        always_up_accuracy=float(np.mean(labels == UP)),
        test_days=int(len(labels)),
    )


def write_scored_rows(folder: str, features: np.ndarray, columns: list[str], labels: np.ndarray,
                      predicted: np.ndarray) -> dict:
    """Write the test days as scored (`components.release.rows`): `features` exactly as the
    SavedModel got them, one block key per day (its position in the test period), the
    always-up baseline beside the model; return the artifact's metadata."""
    days = len(labels)
    return write_rows(folder, features, np.arange(days), labels, None, predicted, np.full(days, UP),
                      RowsInfo("accuracy", BLOCK_LENGTH_DAYS, "trading days", list(columns)))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    """Rows: true class (down, up); columns: predicted class."""
    return [[int(np.sum((labels == t) & (predicted == p))) for p in (0, 1)] for t in (0, 1)]


def baseline_comparisons(metrics: DirectionMetrics) -> list[BaselineComparison]:
    return [BaselineComparison("accuracy", metrics.accuracy, "always up", metrics.always_up_accuracy)]


def training_section(history: dict[str, list[float]]) -> str:
    """Loss and accuracy per epoch on the training days (what the train step recorded)."""
    if not history:
        return "<p>The model carries no training history (trained before histories were recorded).</p>"
    return figure_html(curves_figure([("loss (cross-entropy)", {"training days": history["loss"]}),
                                      ("accuracy", {"training days": history["accuracy"]})], "epoch"))


def write_direction_report(path: str, test: pd.DataFrame, predicted: np.ndarray,
                           metrics: DirectionMetrics, gate: str, history: dict[str, list[float]]) -> None:
    """HTML report: the gate section (filled in by the gate step), the model beside the
    always-up baseline, every metric, the training curves, and the signal's cumulative
    return (long on predicted up days, flat otherwise) against buy-and-hold."""
    import matplotlib.pyplot as plt

    daily = test["target_return"].to_numpy()
    figure, axis = plt.subplots(figsize=(9, 4))
    axis.plot(test["Date"], np.cumsum(daily), label="buy and hold")
    axis.plot(test["Date"], np.cumsum(daily * (predicted == 1)), label="long when the model says up")
    axis.set_ylabel("cumulative log return")
    legend_above(axis)
    matrix = confusion_matrix(test["label"].to_numpy(), predicted)
    write_report(path, "S&P 500 direction: evaluation on the test period", [
        ("Deploy gate", pending_gate_html(gate)),
        ("Model against the naive baseline", baselines_html(baseline_comparisons(metrics))),
        ("Metrics", metrics_table_html(metrics.as_dict())),
        ("Training (loss and accuracy per epoch)", training_section(history)),
        ("Confusion matrix", table_html(["true \\ predicted", "down", "up"],
                                        [["down", *matrix[0]], ["up", *matrix[1]]])),
        ("Signal against buy-and-hold on the test period", figure_html(figure)),
    ])
