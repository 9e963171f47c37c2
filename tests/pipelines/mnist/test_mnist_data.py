"""MNIST sources: the offline sample, mnist.npz, the four IDX files, checksums and bad files."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from components.common.errors import InputError
from pipelines.mnist import data


def write_idx(path: Path, array: np.ndarray) -> Path:
    header = bytes([0, 0, data.IDX_UNSIGNED_BYTE, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    content = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)
    return path


def random_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), np.arange(count, dtype=np.uint8) % 10


@pytest.fixture
def write_idx_set(monkeypatch):
    """Write small IDX files under the standard names, their sums standing in for the published ones."""

    def write(folder: Path, suffix: str, train: int = 50, test: int = 20) -> tuple:
        folder.mkdir(parents=True, exist_ok=True)
        train_x, train_y = random_digits(train, 1)
        test_x, test_y = random_digits(test, 2)
        for stem, array in zip(data.IDX_FILES.values(), (train_x, train_y, test_x, test_y), strict=True):
            path = write_idx(folder / f"{stem}{suffix}", array)
            if path.name in data.KNOWN_SHA256:
                monkeypatch.setitem(data.KNOWN_SHA256, path.name, data.sha256_of(path))
        return train_x, train_y, test_x, test_y

    return write


def test_offline_sample_is_5000_real_digits_500_per_class():
    digits = data.load_sample()
    assert digits.images.shape == (5000, 28, 28) and digits.images.dtype == np.uint8
    assert np.bincount(digits.labels).tolist() == [500] * 10
    assert not digits.has_official_test_set
    # Real handwriting: ink in the middle, blank borders, many distinct grey levels.
    assert digits.images[:, 10:18, 10:18].mean() > 3 * digits.images[:, :3, :].mean()
    assert len(np.unique(digits.images)) > 200


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_idx_files_are_read_gzipped_or_not(tmp_path, write_idx_set, suffix):
    train_x, train_y, test_x, test_y = write_idx_set(tmp_path / "src", suffix)
    digits = data.fetch_digits(str(tmp_path / "src"), tmp_path / "downloads")
    assert np.array_equal(digits.images, train_x) and np.array_equal(digits.labels, train_y)
    assert np.array_equal(digits.test_images, test_x) and np.array_equal(digits.test_labels, test_y)


def test_npz_source_keeps_the_official_test_set(tmp_path):
    train_x, train_y = random_digits(30)
    test_x, test_y = random_digits(10, 3)
    np.savez(tmp_path / "digits.npz", x_train=train_x, y_train=train_y, x_test=test_x, y_test=test_y)
    digits = data.fetch_digits(str(tmp_path / "digits.npz"), tmp_path / "downloads")
    assert digits.has_official_test_set
    assert np.array_equal(digits.test_images, test_x) and np.array_equal(digits.labels, train_y)


def test_truncated_gzipped_idx_file_is_a_clear_error(tmp_path, write_idx_set):
    write_idx_set(tmp_path / "src", ".gz")
    path = tmp_path / "src" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match="train-images-idx3-ubyte.gz: SHA-256 .* does not match"):
        data.fetch_digits(str(tmp_path / "src"), tmp_path / "downloads")
    with pytest.raises(InputError, match="train-images-idx3-ubyte.gz: cannot read, truncated"):
        data.read_idx(path)  # also caught without a published sum


def test_truncated_raw_idx_file_is_a_clear_error(tmp_path, write_idx_set):
    write_idx_set(tmp_path / "src", "")
    path = tmp_path / "src" / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(InputError, match=r"t10k-labels-idx1-ubyte: \d+ bytes but its header"):
        data.fetch_digits(str(tmp_path / "src"), tmp_path / "downloads")


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(InputError, match="bad magic number"):
        data.read_idx(path)


def test_missing_idx_file_names_what_was_looked_for(tmp_path, write_idx_set):
    write_idx_set(tmp_path / "src", ".gz")
    (tmp_path / "src" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(InputError, match="none of t10k-images-idx3-ubyte.gz, t10k-images-idx3-ubyte found"):
        data.fetch_digits(str(tmp_path / "src"), tmp_path / "downloads")


def test_truncated_npz_is_a_clear_error(tmp_path):
    train_x, train_y = random_digits(30)
    np.savez(tmp_path / "full.npz", x_train=train_x, y_train=train_y, x_test=train_x, y_test=train_y)
    content = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(content[:len(content) // 2])
    with pytest.raises(InputError, match="cut.npz: not a readable .npz file"):
        data.fetch_digits(str(tmp_path / "cut.npz"), tmp_path / "downloads")


def test_npz_without_the_test_arrays_names_them(tmp_path):
    train_x, train_y = random_digits(30)
    np.savez(tmp_path / "partial.npz", x_train=train_x, y_train=train_y)
    with pytest.raises(InputError, match=rf"^{tmp_path}/partial.npz: missing arrays x_test, y_test$"):
        data.fetch_digits(str(tmp_path / "partial.npz"), tmp_path / "downloads")


@pytest.mark.parametrize("shape", [(30, 784), (30, 32, 32), (30, 28, 28, 3)])
def test_wrong_image_shape_is_a_clear_error(tmp_path, shape):
    images = np.zeros(shape, dtype=np.uint8)
    labels = np.zeros(30, dtype=np.uint8)
    np.savez(tmp_path / "odd.npz", x_train=images, y_train=labels, x_test=images, y_test=labels)
    with pytest.raises(InputError, match=r"odd.npz x_train/y_train: images have shape .* expected \(N, 28, 28\)"):
        data.fetch_digits(str(tmp_path / "odd.npz"), tmp_path / "downloads")


def test_labels_out_of_range_are_rejected():
    images, labels = random_digits(10)
    with pytest.raises(InputError, match="labels outside 0..9"):
        data.check_digits(images, labels + 5, "here")


def test_a_known_file_with_the_wrong_checksum_is_rejected(tmp_path):
    train_x, train_y = random_digits(30)
    # Structurally fine, but not the published mnist.npz.
    np.savez(tmp_path / "mnist.npz", x_train=train_x, y_train=train_y, x_test=train_x, y_test=train_y)
    with pytest.raises(InputError, match="mnist.npz: SHA-256 .* does not match the published 731c5ac6"):
        data.fetch_digits(str(tmp_path / "mnist.npz"), tmp_path / "downloads")


def test_checksum_verification_accepts_the_published_sum(tmp_path, monkeypatch):
    path = tmp_path / "file.bin"
    path.write_bytes(b"digits")
    monkeypatch.setitem(data.KNOWN_SHA256, "file.bin", data.sha256_of(path))
    assert data.verify_checksum(path, "file.bin") is True
    assert data.verify_checksum(path, "unknown.bin") is False


def test_digits_round_trip_through_the_workspace_file(tmp_path):
    images, labels = random_digits(12)
    digits = data.Digits(images, labels, images[:4], labels[:4])
    data.save_digits(digits, tmp_path / "digits.npz")
    loaded = data.load_digits(tmp_path / "digits.npz")
    assert np.array_equal(loaded.images, images) and np.array_equal(loaded.test_labels, labels[:4])
    assert [p.name for p in tmp_path.iterdir()] == ["digits.npz"], "no temporary file left behind"
