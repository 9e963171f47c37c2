"""The hyperparameter sweep: a grid over learning rate x number of hidden layers.

The pipeline unrolls the grid at compile time into one train task per trial
(they run in parallel on a cluster and one after another locally). Each trial
leaves `trial.json` and its SavedModel under `<workspace>/mnist/trials/<name>/`;
the select step reads them all, keeps the trial with the best validation
accuracy (ties: lower validation loss, then grid order) and reports the table.
"""

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from components.errors import InputError
from components.storage import atomic_path

TRIAL_FILE = "trial.json"
MODEL_FOLDER = "model"


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


def sweep_grid(learning_rates: Sequence[float], hidden_layer_counts: Sequence[int]) -> list[Trial]:
    """Every (learning rate, hidden layers) pair, learning rate varying slowest."""
    if not learning_rates or not hidden_layer_counts:
        raise InputError(f"the sweep grid is empty: learning_rates={list(learning_rates)}, "
                         f"hidden_layer_counts={list(hidden_layer_counts)}; give at least one of each")
    for rate in learning_rates:
        if not 0 < rate < 1:
            raise InputError(f"sweep learning rate {rate} is not in (0, 1)")
    for count in hidden_layer_counts:
        if int(count) != count or count < 0:
            raise InputError(f"sweep hidden layer count {count} is not a whole number >= 0")
    trials = [Trial(float(rate), int(count)) for rate, count in itertools.product(learning_rates, hidden_layer_counts)]
    # Names, not values, must be unique: each trial's folder and task are named after it.
    if len({trial.name for trial in trials}) != len(trials):
        raise InputError(f"the sweep grid repeats a value (as trial names show it): "
                         f"learning_rates={list(learning_rates)}, hidden_layer_counts={list(hidden_layer_counts)}")
    return trials


def parse_grid_values(text: str, kind: type, what: str) -> list:
    """'0.001,0.003' -> [0.001, 0.003] (for grids given on the command line or in the environment)."""
    try:
        return [kind(item) for item in text.split(",") if item.strip()]
    except ValueError as error:
        raise InputError(f"{what}: '{text}' is not a comma-separated list of {kind.__name__}") from error


def trials_root(workspace: str | Path) -> Path:
    return Path(workspace) / "mnist" / "trials"


def write_result(folder: Path, result: TrialResult) -> None:
    with atomic_path(folder / TRIAL_FILE) as tmp:
        tmp.write_text(json.dumps(asdict(result), indent=2))


def read_results(trials_root: Path, names: Sequence[str]) -> list[TrialResult]:
    """The results of the named trials, in the given order."""
    if not names:
        raise InputError("no trials to select from: the sweep grid is empty")
    results = []
    for name in names:
        path = Path(trials_root) / name / TRIAL_FILE
        if not path.is_file():
            raise InputError(f"trial '{name}' left no result at {path}: did its train step run?")
        results.append(TrialResult(**json.loads(path.read_text())))
    return results


def best_trial(results: Sequence[TrialResult]) -> TrialResult:
    """Highest validation accuracy; ties go to the lower validation loss, then the earlier trial."""
    if not results:
        raise InputError("no trials to select from: the sweep grid is empty")
    return min(enumerate(results), key=lambda item: (-item[1].val_accuracy, item[1].val_loss, item[0]))[1]


TABLE_HEADER = ["trial", "learning rate", "hidden layers", "hidden units", "epochs",
                "val accuracy", "val loss", "train s", "best"]


def table_rows(results: Sequence[TrialResult], best: TrialResult) -> list[list[object]]:
    return [[r.name, f"{r.learning_rate:g}", r.hidden_layers, r.hidden_units, r.epochs, r.val_accuracy,
             r.val_loss, f"{r.train_seconds:.1f}", "*" if r.name == best.name else ""] for r in results]


def format_table(results: Sequence[TrialResult], best: TrialResult) -> str:
    """The trial table as aligned text for the step's log."""
    rows = [TABLE_HEADER] + [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
                             for row in table_rows(results, best)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)


def sweep_figure(results: Sequence[TrialResult], best: TrialResult):
    """Validation accuracy against learning rate, one line per hidden-layer count."""
    import matplotlib.pyplot as plt

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
    axes.legend(fontsize=8)
    return figure
