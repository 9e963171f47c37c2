"""Scaling and the train / validation / test split.

Images become float32 in [0, 1], shape (N, 28, 28): what the served model takes.
The split is stratified (every digit in the same proportion in each part) and
fixed by a seed, and it partitions indices, so no image is in two parts.
With the full MNIST the official 10,000-image test set is the test part and
validation comes out of the 60,000 training images; the offline sample has no
official test set, so its test part is a stratified slice of it.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.common.errors import InputError
from components.common.storage import atomic_path
from pipelines.mnist.data import NUM_CLASSES, Digits

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 28, 28) float32 in [0, 1]
    labels: np.ndarray  # (N,) uint8


@dataclass(frozen=True)
class Splits:
    train: Split
    validation: Split
    test: Split

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name).labels) for name in SPLITS}


def scale(images: np.ndarray) -> np.ndarray:
    """uint8 pixels 0..255 -> float32 0..1."""
    return images.astype(np.float32) / np.float32(255)


def check_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise InputError(f"{name} must be between 0 and 1 (exclusive), got {value}")


def stratified_indices(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Split the indices of `labels` into len(fractions) + 1 disjoint parts, per class.

    Part i gets round(fractions[i] * class size) of each class; the last part
    gets the rest. Each part is sorted, so its order does not depend on the class loop.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for digit in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == digit))
        start = 0
        for part, fraction in zip(parts, fractions, strict=False):
            count = int(round(fraction * len(members)))
            part.append(members[start:start + count])
            start += count
        parts[-1].append(members[start:])
    return [np.sort(np.concatenate(part)) for part in parts]


def make_splits(digits: Digits, validation_fraction: float, test_fraction: float, seed: int) -> Splits:
    """Train / validation / test; `test_fraction` applies only without an official test set."""
    check_fraction("validation_fraction", validation_fraction)
    check_fraction("test_fraction", test_fraction)
    if digits.has_official_test_set:
        validation, train = stratified_indices(digits.labels, (validation_fraction,), seed)
        test = Split(scale(digits.test_images), digits.test_labels)
    else:
        if validation_fraction + test_fraction >= 1:
            raise InputError(f"validation_fraction + test_fraction must be below 1, got "
                             f"{validation_fraction} + {test_fraction}")
        test_idx, validation, train = stratified_indices(
            digits.labels, (test_fraction, validation_fraction), seed)
        test = Split(scale(digits.images[test_idx]), digits.labels[test_idx])
    splits = Splits(Split(scale(digits.images[train]), digits.labels[train]),
                    Split(scale(digits.images[validation]), digits.labels[validation]), test)
    empty = [name for name, size in splits.sizes().items() if size == 0]
    if empty:
        raise InputError(f"the {' and '.join(empty)} split is empty: use more data or larger fractions")
    return splits


def save_splits(splits: Splits, path: Path) -> None:
    arrays = {}
    for name in SPLITS:
        part = getattr(splits, name)
        arrays |= {f"{name}_images": part.images, f"{name}_labels": part.labels}
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, **arrays)


def load_splits(path: Path | str) -> Splits:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return Splits(*(Split(archive[f"{name}_images"], archive[f"{name}_labels"]) for name in SPLITS))
    except (OSError, KeyError, ValueError) as error:
        raise InputError(f"{path}: not a splits file written by preprocess ({error})") from error
