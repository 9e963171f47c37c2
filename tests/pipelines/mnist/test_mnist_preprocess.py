"""Scaling and the stratified train / validation / test split."""

import hashlib

import numpy as np
import pytest

from components.common.errors import InputError
from pipelines.mnist import data, preprocess


@pytest.fixture(scope="module")
def sample():
    return data.load_sample()


def image_hashes(images: np.ndarray) -> set[str]:
    return {hashlib.sha256(image.tobytes()).hexdigest() for image in images}


def test_sample_split_is_stratified_with_fixed_sizes(sample):
    splits = preprocess.make_splits(sample, validation_fraction=0.1, test_fraction=0.2, seed=42)
    assert splits.sizes() == {"train": 3500, "validation": 500, "test": 1000}
    for name, per_class in (("train", 350), ("validation", 50), ("test", 100)):
        assert np.bincount(getattr(splits, name).labels, minlength=10).tolist() == [per_class] * 10, name


def test_no_image_is_in_two_splits(sample):
    splits = preprocess.make_splits(sample, 0.1, 0.2, seed=7)
    hashes = [image_hashes(getattr(splits, name).images) for name in preprocess.SPLITS]
    assert sum(map(len, hashes)) == len(sample.images), "every image lands in exactly one split"
    assert not (hashes[0] & hashes[1] or hashes[0] & hashes[2] or hashes[1] & hashes[2])


def test_images_are_scaled_float32_and_keep_their_labels(sample):
    splits = preprocess.make_splits(sample, 0.1, 0.2, seed=42)
    test = splits.test
    assert test.images.dtype == np.float32 and test.images.shape[1:] == (28, 28)
    assert test.images.min() == 0.0 and test.images.max() == 1.0
    # Each scaled image is an original one with its original label.
    originals = {hashlib.sha256(image.tobytes()).hexdigest(): label
                 for image, label in zip(sample.images, sample.labels, strict=True)}
    restored = np.rint(test.images * 255).astype(np.uint8)
    assert all(originals[hashlib.sha256(image.tobytes()).hexdigest()] == label
               for image, label in zip(restored, test.labels, strict=True))


def test_split_is_fixed_by_the_seed(sample):
    first = preprocess.make_splits(sample, 0.1, 0.2, seed=42)
    again = preprocess.make_splits(sample, 0.1, 0.2, seed=42)
    other = preprocess.make_splits(sample, 0.1, 0.2, seed=43)
    assert np.array_equal(first.test.images, again.test.images)
    assert not np.array_equal(first.test.images, other.test.images)


def test_official_test_set_is_the_test_split():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (200, 28, 28), dtype=np.uint8)
    labels = np.arange(200, dtype=np.uint8) % 10
    digits = data.Digits(images[:150], labels[:150], images[150:], labels[150:])
    splits = preprocess.make_splits(digits, validation_fraction=0.2, test_fraction=0.5, seed=1)
    assert splits.sizes() == {"train": 120, "validation": 30, "test": 50}
    assert np.array_equal(splits.test.labels, labels[150:])
    assert image_hashes(preprocess.scale(images[150:])) == image_hashes(splits.test.images)


@pytest.mark.parametrize("validation, test, message", [
    (0.0, 0.2, "validation_fraction must be between 0 and 1"),
    (0.1, 1.0, "test_fraction must be between 0 and 1"),
    (0.5, 0.5, "validation_fraction \\+ test_fraction must be below 1"),
])
def test_bad_fractions_are_clear_errors(sample, validation, test, message):
    with pytest.raises(InputError, match=message):
        preprocess.make_splits(sample, validation, test, seed=0)


def test_splits_round_trip_and_a_foreign_file_is_rejected(sample, tmp_path):
    splits = preprocess.make_splits(sample, 0.1, 0.2, seed=42)
    preprocess.save_splits(splits, tmp_path / "splits.npz")
    loaded = preprocess.load_splits(tmp_path / "splits.npz")
    assert loaded.sizes() == splits.sizes()
    assert np.array_equal(loaded.validation.images, splits.validation.images)
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(InputError, match="not a splits file"):
        preprocess.load_splits(tmp_path / "other.npz")
