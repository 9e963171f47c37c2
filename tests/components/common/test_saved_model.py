"""The content hash of an export: the same model gives the same hash though its files differ."""

import hashlib

import numpy as np
import pytest

from components.common.saved_model import content_hash
from components.store import base as model_store
from pipelines.sp500 import models


@pytest.fixture(scope="module")
def toy_data():
    rng = np.random.default_rng(0)
    features = rng.normal(0, 0.01, (200, 6)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    return features, labels


def export(toy_data, folder, seed, version_tag):
    model = models.train_model(*toy_data, "deep", 2, 0.01, seed=seed, progress=lambda line: None)
    models.export_saved_model(model, folder, version_tag)
    return folder


def file_digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def test_a_retrained_model_has_the_same_content_and_another_seed_another(toy_data, tmp_path):
    first = export(toy_data, tmp_path / "first", 7, "run-1")
    again = export(toy_data, tmp_path / "again", 7, "run-2")
    other = export(toy_data, tmp_path / "other", 8, "run-1")
    # Why the files cannot be hashed: every one of them differs between the two identical trainings.
    assert all(file_digests(first)[name] != digest for name, digest in file_digests(again).items())
    assert content_hash(first) == content_hash(again)
    assert content_hash(first) != content_hash(other)
    # The model store hashes a SavedModel by its content and any other model by its bytes.
    assert model_store.content_hash(first) == content_hash(first)
    (tmp_path / "model.bst").write_text("tree 1")
    assert model_store.content_hash(tmp_path / "model.bst") == model_store.content_hash(tmp_path / "model.bst")
    (tmp_path / "other.bst").write_text("tree 2")
    assert model_store.content_hash(tmp_path / "other.bst") != model_store.content_hash(tmp_path / "model.bst")
