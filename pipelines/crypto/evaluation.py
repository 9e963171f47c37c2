"""The competition's metric, the baselines, and the evaluation report.

The metric is one weighted Pearson correlation over all rows pooled, each row
weighted by its asset's weight. Two naive baselines stand beside the model:
predicting 0 (the RMSE to beat; a constant has no correlation, counted as 0)
and short-term reversal, -return_30 (the cheapest signal with a correlation:
the last half hour's move, reversed).

The evaluate step also writes the rows it scored (`components.release.rows`), so
that the gate re-scores the serving champion on them and resamples them.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from components.common.errors import InputError
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
from pipelines.crypto.definitions import ASSETS_TABLE, MINUTE, MODEL_FEATURES, WINDOWS
from pipelines.crypto.tables import open_table

MODEL_FILE = "model.bst"  # LightGBM's text format, under the name KServe's LightGBM server loads
# The gate's block bootstrap resamples the test period in runs of this many consecutive minutes, all
# assets of a minute together (they move together). It is the longest indicator window (240 minutes):
# rows further apart share little feature history, so neighbouring blocks share little, and the
# Target's 16-minute horizon lies well inside a block.
BLOCK_LENGTH_MINUTES = max(WINDOWS)


def weighted_correlation(prediction: np.ndarray, target: np.ndarray, weights: np.ndarray) -> float:
    """Pearson correlation of prediction and target with row weights (the competition's metric)."""
    w = np.asarray(weights, dtype=np.float64)
    a = np.asarray(prediction, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    a = a - np.average(a, weights=w)
    b = b - np.average(b, weights=w)
    variance = np.average(a * a, weights=w) * np.average(b * b, weights=w)
    return float(np.average(a * b, weights=w) / np.sqrt(variance)) if variance > 0 else 0.0


def rmse(prediction: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(prediction, np.float64) - target) ** 2)))


@dataclass(frozen=True)
class ScoredRows:
    """The test rows as the booster scored them, one entry per row."""

    features: np.ndarray  # float32 [rows, MODEL_FEATURES]: exactly the booster's input
    timestamp: np.ndarray  # seconds (UTC)
    target: np.ndarray
    weight: np.ndarray  # the asset's weight, the row's weight in the metric
    prediction: np.ndarray
    reversal: np.ndarray  # the reversal baseline's prediction

    def write(self, folder: str) -> dict:
        """Write them as the gate reads them (`components.release.rows`), one block key per
        minute; return the artifact's metadata."""
        return write_rows(folder, self.features, self.timestamp // MINUTE, self.target, self.weight,
                          self.prediction, self.reversal,
                          RowsInfo("weighted_correlation", BLOCK_LENGTH_MINUTES, "minutes", list(MODEL_FEATURES)))


@dataclass
class Evaluation:
    metrics: dict[str, float]
    per_asset: pd.DataFrame  # Asset_ID, Asset_Name, Weight, rows, correlation, reversal_correlation
    scored: ScoredRows

    def per_asset_metrics(self) -> dict[str, float]:
        """Each asset's correlation and its reversal baseline, named e.g. correlation_asset_1_Bitcoin."""
        metrics = {}
        for row in self.per_asset.itertuples(index=False):
            slug = re.sub(r"[^A-Za-z0-9]+", "_", row.Asset_Name).strip("_")  # EOS.IO -> EOS_IO
            name = f"asset_{row.Asset_ID}" + (f"_{slug}" if slug else "")
            metrics[f"correlation_{name}"] = row.correlation
            metrics[f"reversal_correlation_{name}"] = row.reversal_correlation
        return metrics


def read_table(features_path: Path, columns: list[str], since: int | None = None,
               before: int | None = None) -> pa.Table:
    """Rows with a Target, optionally only those with since <= timestamp < before."""
    condition = pc.field("Target").is_valid() & ~pc.field("Target").is_nan()
    if since is not None:
        condition &= pc.field("timestamp") >= since
    if before is not None:
        condition &= pc.field("timestamp") < before
    needed = list(dict.fromkeys(columns + ["Target", "timestamp"]))
    return open_table(features_path, needed).filter(condition).select(columns)


def read_rows(features_path: Path, columns: list[str], since: int | None = None,
              before: int | None = None) -> pd.DataFrame:
    return read_table(features_path, columns, since, before).to_pandas()


def read_asset_names(loaded_dir: Path) -> dict[int, str]:
    """Asset names by Asset_ID as asset_details.csv gave them (the load step's assets table)."""
    assets = open_table(loaded_dir / ASSETS_TABLE, ["Asset_ID", "Asset_Name"]).to_pydict()
    return dict(zip(assets["Asset_ID"], assets["Asset_Name"], strict=True))


def evaluate(features_path: Path, model_dir: Path, test_start: int,
             asset_names: dict[int, str] | None = None) -> Evaluation:
    """Score the model on the held-out test rows (timestamp >= test_start).

    `asset_names` (by Asset_ID, from asset_details.csv) label the per-asset figures.
    """
    import lightgbm as lgb  # only here: the train step imports this module for the metric

    rows = read_rows(features_path, MODEL_FEATURES + ["timestamp", "Target", "Weight"], since=test_start)
    if rows.empty:
        raise InputError(f"no test rows with a Target from timestamp {test_start} on")
    booster = lgb.Booster(model_file=str(model_dir / MODEL_FILE))
    features = rows[MODEL_FEATURES].to_numpy(np.float32)
    prediction = booster.predict(features)
    target, weights = rows["Target"].to_numpy(np.float64), rows["Weight"].to_numpy(np.float64)
    reversal = -rows["return_30"].fillna(0).to_numpy(np.float64)
    metrics = {
        "weighted_correlation": weighted_correlation(prediction, target, weights),
        "weighted_correlation_zero_baseline": 0.0,
        "weighted_correlation_reversal_baseline": weighted_correlation(reversal, target, weights),
        "rmse": rmse(prediction, target),
        "rmse_zero_baseline": rmse(np.zeros_like(target), target),
        "test_rows": len(rows),
    }
    scored = ScoredRows(features, rows["timestamp"].to_numpy(np.int64), target, weights, prediction, reversal)
    return Evaluation(metrics, per_asset_table(rows, prediction, reversal, asset_names or {}), scored)


def per_asset_table(rows: pd.DataFrame, prediction: np.ndarray, reversal: np.ndarray,
                    names: dict[int, str]) -> pd.DataFrame:
    frame = pd.DataFrame({"Asset_ID": rows["Asset_ID"].to_numpy(), "Target": rows["Target"].to_numpy(),
                          "prediction": prediction, "reversal": reversal})
    table = []
    for asset_id, group in frame.groupby("Asset_ID", sort=True):
        table.append({"Asset_ID": int(asset_id), "Asset_Name": names.get(int(asset_id), ""),
                      "Weight": float(rows.loc[group.index[0], "Weight"]), "rows": len(group),
                      "correlation": _pearson(group["prediction"], group["Target"]),
                      "reversal_correlation": _pearson(group["reversal"], group["Target"])})
    return pd.DataFrame(table)


def _pearson(a: pd.Series, b: pd.Series) -> float:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a.to_numpy(np.float64), b.to_numpy(np.float64))[0, 1])


def baseline_comparisons(metrics: dict[str, float]) -> list[BaselineComparison]:
    """The model beside both naive baselines, on the gated correlation and on the RMSE."""
    return [
        BaselineComparison("weighted correlation", metrics["weighted_correlation"], "predicting zero",
                           metrics["weighted_correlation_zero_baseline"]),
        BaselineComparison("weighted correlation", metrics["weighted_correlation"], "reversal (-return_30)",
                           metrics["weighted_correlation_reversal_baseline"]),
        BaselineComparison("RMSE", metrics["rmse"], "predicting zero", metrics["rmse_zero_baseline"],
                           higher_is_better=False),
    ]


def training_section(history: dict, best_iteration: int | None) -> str:
    """The train step's metrics per boosting round, on the validation rows and on a sample of the
    training rows, with the early-stopping point marked."""
    if not history or best_iteration is None:
        return "<p>The model carries no training history.</p>"
    sets = (("validation", "validation rows"), ("training", "training sample"))
    return figure_html(curves_figure(
        [(title, {label: history[name][metric] for name, label in sets if name in history})
         for metric, title in (("weighted_correlation", "weighted correlation"), ("rmse", "RMSE"))],
        "boosting round", mark=(best_iteration, f"best iteration {best_iteration} (kept)")))


def write_evaluation_report(evaluation: Evaluation, path: Path, gate: str, history: dict | None = None,
                            best_iteration: int | None = None) -> None:
    """The gate section (filled in by the gate step), the model beside the baselines, the
    metrics, the training curves and the per-asset correlations."""
    import matplotlib.pyplot as plt

    per_asset = evaluation.per_asset
    figure, axes = plt.subplots(figsize=(9, 3.5))
    x = np.arange(len(per_asset))
    axes.bar(x - 0.2, per_asset["correlation"], 0.4, label="LightGBM")
    axes.bar(x + 0.2, per_asset["reversal_correlation"], 0.4, label="reversal baseline (-return_30)")
    labels = per_asset["Asset_Name"].where(per_asset["Asset_Name"] != "", per_asset["Asset_ID"].astype(str))
    axes.set_xticks(x, labels, rotation=45, ha="right")
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_ylabel("correlation with Target")
    legend_above(axes)
    rows = per_asset[["Asset_ID", "Asset_Name", "Weight", "rows", "correlation",
                      "reversal_correlation"]].itertuples(index=False)
    write_report(path, "crypto: evaluation on the held-out test period", [
        ("Deploy gate", pending_gate_html(gate)),
        ("Model against the naive baselines (held-out test rows)",
         baselines_html(baseline_comparisons(evaluation.metrics))),
        ("Metrics (held-out test rows)", metrics_table_html(evaluation.metrics)),
        ("Training (per boosting round)", training_section(history or {}, best_iteration)),
        ("Correlation per asset", figure_html(figure)),
        ("Per asset", table_html(["Asset_ID", "asset", "weight", "rows", "correlation",
                                  "reversal baseline"], rows)),
    ])
