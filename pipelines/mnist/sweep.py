"""The hyperparameter sweep: a grid of (learning rate, hidden layers) trials.

The grid is the `sweep_grid` pipeline parameter, a list of
`[learning_rate, hidden_layers]` pairs such as `[[0.001, 1], [0.003, 2]]`, so a
user changes it in the Pipelines UI without recompiling. The pipeline runs one
train task per pair (`dsl.ParallelFor`); each hands on its SavedModel as an
artifact whose metadata holds the trial's result, and the select step gathers
them (`dsl.Collected`), keeps the best by validation accuracy (ties: lower
validation loss, then grid order) and reports the table.

Pairs, not objects: KFP writes a parameter's default into the compiled file's
header through a protobuf map whose key order changes from one process to the
next, so a default made of objects would make every compile differ. (Objects
would also invite the key `name`, which in the KFP DSL resolves to the loop's
own name, not the item's value.)
"""

import math
from dataclasses import asdict, dataclass, fields
from typing import Sequence

from components.common.errors import InputError

DEFAULT_GRID = [[rate, layers] for rate in (0.001, 0.003) for layers in (1, 2)]
EXAMPLE = "[[0.001, 1], [0.003, 2]]"


@dataclass(frozen=True)
class Trial:
    learning_rate: float
    hidden_layers: int

    @property
    def name(self) -> str:
        return f"lr{self.learning_rate:g}-layers{self.hidden_layers}"


@dataclass(frozen=True)
class TrialResult:
    name: str
    learning_rate: float
    hidden_layers: int
    hidden_units: int
    epochs: int
    val_accuracy: float
    val_loss: float
    train_seconds: float
    workers: int = 1

    def as_metadata(self) -> dict:
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict, where: str) -> "TrialResult":
        missing = [f.name for f in fields(cls) if f.name not in metadata and f.name != "workers"]
        if missing:
            raise InputError(f"{where} carries no trial result (missing {', '.join(missing)}): "
                             f"was it written by the train step?")
        # KFP keeps metadata numbers as floats: give each field its own type back.
        return cls(**{f.name: f.type(metadata[f.name])
                      for f in fields(cls) if f.name in metadata})


def parse_grid_point(item: object, where: str) -> Trial:
    """One `[learning_rate, hidden_layers]` pair as a Trial; one clear error for anything else."""
    if not isinstance(item, (list, tuple)) or len(item) != 2:
        raise InputError(f"{where} must be a pair [learning_rate, hidden_layers], got {item!r}")
    rate, layers = item
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or not 0 < rate < 1:
        raise InputError(f"{where}: learning_rate {rate!r} is not in (0, 1)")
    if isinstance(layers, bool) or not isinstance(layers, (int, float)) or not math.isfinite(layers) \
            or int(layers) != layers or layers < 0:
        raise InputError(f"{where}: hidden_layers {layers!r} is not a whole number >= 0")
    return Trial(float(rate), int(layers))


def parse_grid(grid: object) -> list[Trial]:
    """The trials of a sweep_grid parameter value; one clear error for anything else."""
    if not isinstance(grid, list) or not grid:
        raise InputError(f"sweep_grid must be a non-empty list of [learning_rate, hidden_layers] pairs like "
                         f"{EXAMPLE}, got {grid!r}")
    trials = [parse_grid_point(item, f"sweep_grid item {position}") for position, item in enumerate(grid)]
    # Names, not values, must be unique: the report and the chosen model are named after them.
    if len({trial.name for trial in trials}) != len(trials):
        raise InputError(f"sweep_grid repeats a trial (as trial names show it): {[t.name for t in trials]}")
    return trials


def best_trial(results: Sequence[TrialResult]) -> TrialResult:
    """Highest validation accuracy; ties go to the lower validation loss, then the earlier trial."""
    if not results:
        raise InputError("no trials to select from: the sweep grid is empty")
    return min(enumerate(results), key=lambda item: (-item[1].val_accuracy, item[1].val_loss, item[0]))[1]


TABLE_HEADER = ["trial", "learning rate", "hidden layers", "hidden units", "epochs",
                "val accuracy", "val loss", "workers", "train s", "best"]


def table_rows(results: Sequence[TrialResult], best: TrialResult) -> list[list[object]]:
    return [[r.name, f"{r.learning_rate:g}", r.hidden_layers, r.hidden_units, r.epochs, r.val_accuracy,
             r.val_loss, r.workers, f"{r.train_seconds:.1f}", "*" if r.name == best.name else ""] for r in results]


def format_table(results: Sequence[TrialResult], best: TrialResult) -> str:
    """The trial table as aligned text for the step's log."""
    rows = [TABLE_HEADER] + [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
                             for row in table_rows(results, best)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)


# What each trial's history keeps per epoch (the throughput stays in the step's log and Metrics).
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def epoch_history(history: dict[str, list[float]]) -> dict[str, list[float]]:
    """The per-epoch figures a trial hands on in its model's metadata, for the reports."""
    return {key: [float(value) for value in history[key]] for key in HISTORY_KEYS}


def trial_curves_figure(histories: dict[str, dict[str, list[float]]], best: TrialResult):
    """Validation accuracy and loss per epoch, one line per trial (the best one named so)."""
    from components.common.reports import curves_figure

    def label(name: str) -> str:
        return f"{name} (best)" if name == best.name else name

    return curves_figure(
        [("validation accuracy", {label(n): h["val_accuracy"] for n, h in histories.items()}),
         ("validation loss", {label(n): h["val_loss"] for n, h in histories.items()})], "epoch")


def curves_section(histories: dict[str, dict[str, list[float]]], best: TrialResult) -> str:
    """The sweep report's per-epoch section, for the trials that carry a history."""
    from components.common.reports import figure_html

    shown = {name: history for name, history in histories.items() if history}
    if not shown:
        return "<p>The trials carry no per-epoch history.</p>"
    return figure_html(trial_curves_figure(shown, best))


def hand_on_best(results: Sequence[TrialResult], histories: dict[str, dict[str, list[float]]], best: TrialResult,
                 chosen_dir: str, content_hash: str, best_model, sweep_report, metrics, title: str,
                 workspace: str = "") -> None:
    """What a sweep hands on, however its trials ran: a copy of the best trial's SavedModel
    (`chosen_dir`) with its figures in the metadata, the best figures in `metrics`, the report
    (`title`: which sweep), the step's MLflow tags; with `workspace`, the model and its metadata
    there too (`write_handoff`). The arguments from `best_model` to `metrics` are the step's KFP
    output artifacts."""
    import shutil
    from pathlib import Path

    from components.common import history, tracking
    from components.common.reports import figure_html, table_html, write_report
    from components.common.storage import atomic_path

    print(format_table(results, best), flush=True)
    with atomic_path(Path(best_model.path)) as tmp:
        shutil.copytree(chosen_dir, tmp)
    best_model.metadata.update({"trial": best.name, "learning_rate": best.learning_rate,
                                "hidden_layers": best.hidden_layers, "hidden_units": best.hidden_units,
                                "val_accuracy": best.val_accuracy, "workers": best.workers,
                                **history.as_metadata(histories[best.name]), "content_hash": content_hash})
    if workspace:
        write_handoff(workspace, chosen_dir, dict(best_model.metadata))
    for name in ("val_accuracy", "learning_rate", "hidden_layers"):
        metrics.log_metric(f"best_{name}", getattr(best, name))
    metrics.log_metric("trials", len(results))
    write_report(sweep_report.path, title, [
        ("Trials (best by validation accuracy marked *)", table_html(TABLE_HEADER, table_rows(results, best))),
        ("Every trial per epoch (validation split)", curves_section(histories, best)),
        ("Validation accuracy by learning rate and hidden layers", figure_html(sweep_figure(results, best))),
    ])
    tracking.task_run().set_tags({"best_trial": best.name, "model_uri": best_model.uri})
    tracking.task_run().log_artifact(sweep_report.path, "sweep_report.html")
    print(f"best trial: {best.name} (val_accuracy {best.val_accuracy:.4f})", flush=True)


# Where the grid's select step or the search step leaves the best model for the step after them
# (take_best_model), in the run's workspace: kfp.local 2.17 cannot hand an artifact out of a
# dsl.If/Else branch (dsl.OneOf of artifacts), only a parameter.
HANDOFF_FOLDER = "mnist/best-trial"
HANDOFF_METADATA = "metadata.json"


def write_handoff(workspace: str, model_dir: str, metadata: dict) -> None:
    """The best model (a copy of `model_dir`) and its metadata in the run's workspace."""
    import json
    import shutil
    from pathlib import Path

    from components.common.storage import atomic_path

    folder = Path(workspace) / HANDOFF_FOLDER
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists():  # a retried step's earlier handoff
        shutil.rmtree(folder)
    with atomic_path(folder) as tmp:
        shutil.copytree(model_dir, tmp / "model")
        (tmp / HANDOFF_METADATA).write_text(json.dumps(metadata))


def read_handoff(workspace: str, trial: str) -> tuple[str, dict]:
    """(the handed-on model's folder, its metadata), checked to be `trial`'s."""
    import json
    from pathlib import Path

    folder = Path(workspace) / HANDOFF_FOLDER
    if not (folder / HANDOFF_METADATA).is_file():
        raise InputError(f"{folder} holds no best model: neither the select step nor the search step wrote it")
    metadata = json.loads((folder / HANDOFF_METADATA).read_text())
    if metadata.get("trial") != trial:
        raise InputError(f"{folder} holds trial {metadata.get('trial')!r}, not the best trial {trial!r}")
    return str(folder / "model"), metadata


def sweep_figure(results: Sequence[TrialResult], best: TrialResult):
    """Validation accuracy against learning rate, one line per hidden-layer count."""
    import matplotlib.pyplot as plt

    from components.common.reports import legend_above

    figure, axes = plt.subplots(figsize=(6, 3.5))
    for count in sorted({r.hidden_layers for r in results}):
        line = sorted((r.learning_rate, r.val_accuracy) for r in results if r.hidden_layers == count)
        axes.plot(*zip(*line, strict=True), marker="o", label=f"{count} hidden layer{'s' if count != 1 else ''}")
    axes.scatter([best.learning_rate], [best.val_accuracy], s=160, facecolors="none", edgecolors="red",
                 label=f"best: {best.name}", zorder=3)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("validation accuracy")
    axes.grid(alpha=0.3)
    legend_above(axes)
    return figure
