"""What every model store shares: the `ModelStore` interface, a published version,
the evaluation record's file name, model names and a model's content hash.

Two stores implement the interface: `components.store.folder.FolderStore` (a folder,
local or a mounted claim) and `components.store.bucket.BucketStore` (`gs://`);
`components.store.open_store` picks one from the URI. Both depend on this module,
never on each other.

Every version carries `evaluation.json` beside the model: its metrics on the
pipeline's test set, that test set's description (the data window), the run
and the gate's verdict. TF-Serving reads only the SavedModel's own files and
KServe's LightGBM server only `*.bst` files, so the record disturbs neither.
The record also holds the model's `content_hash` (below), by which the gate
recognises a model identical to the one serving.
"""

import hashlib
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from components.common.errors import InputError
from components.store.serving_labels import ServingLabels

EVALUATION_FILE = "evaluation.json"


@dataclass(frozen=True)
class PublishedVersion:
    """A version as published: its number and where it is (a folder path or a `gs://` URI)."""

    number: int
    uri: str

    @property
    def name(self) -> str:
        """The number as text, like a version folder's name."""
        return str(self.number)

    def __str__(self) -> str:
        return self.uri


class ModelStore(ABC):
    """TF-Serving's versioned layout, `<store>/<model_name>/<N>/`, each version with its evaluation."""

    @abstractmethod
    def published_versions(self, model_name: str) -> list[int]:
        """The version numbers published for `model_name`, ascending."""

    @abstractmethod
    def publish(self, model: Path, model_name: str, evaluation: dict | None = None,
                extra_files: dict[str, Path] | None = None) -> PublishedVersion:
        """Publish `model` (a SavedModel folder or one model file) as the next version, with
        `evaluation` as its `evaluation.json` and each of `extra_files` (name in the version ->
        local file: the training data's statistics and schema) beside it; atomically, and never
        over an existing version."""

    @abstractmethod
    def version_file(self, model_name: str, version: int, name: str) -> bytes | None:
        """The file `name` stored with version N (one of its `extra_files`), or None when absent."""

    @abstractmethod
    def evaluation(self, model_name: str, version: int) -> dict | None:
        """Version N's stored evaluation, or None (a version published before records existed)."""

    @abstractmethod
    def local_copy(self, model_name: str, version: int) -> AbstractContextManager[Path]:
        """Version N's folder on this machine, for the duration of a `with` block: the folder itself
        in a folder store, a temporary download in a bucket store (removed after the block). An
        InputError when the version has no files."""

    @abstractmethod
    def stored_labels(self, model_name: str) -> ServingLabels | None:
        """The labels record this store keeps, or None when it has none."""

    @abstractmethod
    def record_labels(self, model_name: str, labels: ServingLabels) -> str:
        """Record `labels` where a server outside a cluster reads them; says, in words, what
        the deployment is then."""

    @abstractmethod
    def cluster_uri(self, claim_mount: str) -> str:
        """Where a server in a cluster reads this store: the store's URI when the server reads
        it by itself, '' when it mounts the model store claim (which the deploy step sees at
        `claim_mount`); an InputError when no server there could read it."""

    def serving_labels(self, model_name: str) -> ServingLabels:
        """The labels record; without one, the highest version is stable (what TF-Serving serves)."""
        stored = self.stored_labels(model_name)
        if stored is not None:
            return stored
        found = self.published_versions(model_name)
        return ServingLabels(stable=found[-1] if found else None, known_versions=tuple(found))


def check_extra_files(extra_files: dict[str, Path] | None, model: Path) -> dict[str, Path]:
    """`extra_files`, checked: plain names that exist and clash with no file of the model."""
    extra = dict(extra_files or {})
    taken = {EVALUATION_FILE} | ({p.name for p in model.iterdir()} if model.is_dir() else {model.name})
    for name, source in extra.items():
        if "/" in name or name.startswith(".") or name in taken:
            raise InputError(f"cannot store '{name}' with the model: not a plain file name, or taken")
        if not Path(source).is_file():
            raise InputError(f"file to store with the model not found: {source}")
    return extra


def check_model_name(model_name: str) -> None:
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise InputError(f"model_name '{model_name}' is not a valid folder name")


def content_hash(model: Path) -> str:
    """What identifies a model's content: a SavedModel's signature and variable values
    (`components.common.saved_model.content_hash`: its files differ between identical trainings),
    for any other model (a LightGBM model file) the bytes of its files."""
    from components.common.saved_model import is_saved_model

    if model.is_dir() and is_saved_model(model):
        from components.common.saved_model import content_hash as saved_model_hash

        return saved_model_hash(model)
    if not model.exists():
        raise InputError(f"model not found: {model}")
    digest = hashlib.sha256()
    for path in sorted(p for p in (model.rglob("*") if model.is_dir() else [model]) if p.is_file()):
        digest.update(f"{path.relative_to(model) if model.is_dir() else path.name}|".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
