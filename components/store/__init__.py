"""The model store behind one front: `open_store(uri)` gives a `ModelStore`.

A `gs://bucket/prefix` URI is a bucket store (`components.store.bucket`); anything
else a folder (`components.store.folder`). Callers use the `ModelStore` interface
(`components.store.base`) and never ask which one they have.
"""

from pathlib import Path

from components.store.base import ModelStore, PublishedVersion
from components.store.bucket import BucketStore
from components.store.folder import FolderStore

__all__ = ["ModelStore", "PublishedVersion", "open_store"]


def open_store(uri: str | Path) -> ModelStore:
    """The model store at `uri`: a bucket for `gs://…`, else a folder."""
    if str(uri).startswith("gs://"):
        return BucketStore(str(uri))
    return FolderStore(Path(uri))
