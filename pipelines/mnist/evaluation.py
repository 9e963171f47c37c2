"""Test-set evaluation: accuracy beside the majority-class baseline, the
confusion matrix, per-digit accuracy, and a gallery of the misclassified digits.

The evaluate step also writes the images it scored (`components.release.rows`), so
that the gate re-scores the serving champion on them and resamples them.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.common.reports import (
    BaselineComparison,
    baselines_html,
    curves_figure,
    figure_html,
    metrics_table_html,
    pending_gate_html,
    table_html,
    write_report,
)
from components.release.rows import RowsInfo, write_rows
from pipelines.mnist.data import NUM_CLASSES

CLASS_NAMES = [str(digit) for digit in range(NUM_CLASSES)]
GALLERY_LIMIT = 60
# The gate's bootstrap resamples single images: the test images are separate digits with no time
# order and no shared inputs, so nothing ties one image's error to its neighbour's.
BLOCK_LENGTH_IMAGES = 1


@dataclass(frozen=True)
class Scores:
    accuracy: float
    majority_class_accuracy: float  # always answering the most frequent training digit
    majority_class: int
    test_images: int
    misclassified: int

    def as_dict(self) -> dict[str, float | int]:
        return {"accuracy": self.accuracy, "majority_class_accuracy": self.majority_class_accuracy,
                "majority_class": self.majority_class, "test_images": self.test_images,
                "misclassified": self.misclassified}


def score(train_labels: np.ndarray, test_labels: np.ndarray, predicted: np.ndarray) -> Scores:
    majority = int(np.bincount(train_labels, minlength=NUM_CLASSES).argmax())
    return Scores(accuracy=float(np.mean(predicted == test_labels)),
                  majority_class_accuracy=float(np.mean(test_labels == majority)),
                  majority_class=majority, test_images=len(test_labels),
                  misclassified=int(np.sum(predicted != test_labels)))


def write_scored_rows(folder: str, images: np.ndarray, actual: np.ndarray, predicted: np.ndarray,
                      scores: Scores) -> dict:
    """Write the test images as scored (`components.release.rows`): `images` exactly as the
    SavedModel got them, one block key per image (its position), the majority-class baseline
    beside the model; return the artifact's metadata."""
    count = len(actual)
    return write_rows(folder, images, np.arange(count), actual, None, predicted,
                      np.full(count, scores.majority_class), RowsInfo("accuracy", BLOCK_LENGTH_IMAGES, "images", []))


def confusion_matrix(actual: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    """Rows: actual digit; columns: predicted digit."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (actual.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix.tolist()


def per_digit_accuracy(actual: np.ndarray, predicted: np.ndarray) -> list[float]:
    return [float(np.mean(predicted[actual == d] == d)) if np.any(actual == d) else float("nan")
            for d in range(NUM_CLASSES)]


def misclassified_figure(images: np.ndarray, actual: np.ndarray, predicted: np.ndarray,
                         probabilities: np.ndarray, limit: int = GALLERY_LIMIT):
    """A grid of the first `limit` misclassified digits, titled 'actual -> predicted (p)'."""
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(predicted != actual)[:limit]
    columns = 10
    rows = max(1, -(-len(wrong) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong, strict=False):
        axis.imshow(images[index], cmap="gray_r", vmin=0, vmax=1)
        axis.set_title(f"{actual[index]}→{predicted[index]} ({probabilities[index, predicted[index]]:.2f})",
                       fontsize=8)
    return figure


def confusion_figure(matrix: list[list[int]]):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4.5))
    values = np.array(matrix)
    axes.imshow(values, cmap="Blues")
    for (row, column), count in np.ndenumerate(values):
        if count:
            axes.text(column, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if count > values.max() / 2 else "black")
    axes.set_xticks(range(NUM_CLASSES))
    axes.set_yticks(range(NUM_CLASSES))
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("actual digit")
    return figure


def baseline_comparisons(scores: Scores) -> list[BaselineComparison]:
    return [BaselineComparison("accuracy", scores.accuracy, f"always answering {scores.majority_class} (the "
                               "most frequent training digit)", scores.majority_class_accuracy)]


def training_section(history: dict[str, list[float]]) -> str:
    """The chosen trial's loss and accuracy per epoch, training and validation splits."""
    if not history:
        return "<p>The model carries no training history.</p>"
    return figure_html(curves_figure(
        [("loss (cross-entropy)", {"training": history["loss"], "validation": history["val_loss"]}),
         ("accuracy", {"training": history["accuracy"], "validation": history["val_accuracy"]})], "epoch"))


def write_evaluation_report(path: Path, scores: Scores, gate: str, images: np.ndarray, actual: np.ndarray,
                            predicted: np.ndarray, probabilities: np.ndarray,
                            history: dict[str, list[float]]) -> None:
    matrix = confusion_matrix(actual, predicted)
    per_digit = per_digit_accuracy(actual, predicted)
    shown = min(scores.misclassified, GALLERY_LIMIT)
    write_report(path, "MNIST test-set evaluation", [
        ("Deploy gate", pending_gate_html(gate)),
        ("Model against the naive baseline", baselines_html(baseline_comparisons(scores))),
        ("Scores", metrics_table_html(scores.as_dict())),
        ("Training of the chosen trial (per epoch)", training_section(history)),
        ("Accuracy per digit", table_html(["digit", "accuracy"], zip(CLASS_NAMES, per_digit, strict=True))),
        ("Confusion matrix", figure_html(confusion_figure(matrix))),
        (f"Misclassified digits ({shown} of {scores.misclassified} shown: actual→predicted (probability))",
         figure_html(misclassified_figure(images, actual, predicted, probabilities))
         if scores.misclassified else "<p>none</p>"),
    ])
