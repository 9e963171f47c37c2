"""The mnist evaluate step, run as its container runs it (`python_func`) on the shipped digits:
the rows it scored, handed to the gate, are exactly what the model got and give its accuracy back."""

import numpy as np
import pytest
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Metrics, Model

from components.common.saved_model import load_predictor
from components.release.rows import read_rows
from pipelines.mnist import data, models, preprocess
from pipelines.mnist.evaluation import BLOCK_LENGTH_IMAGES
from pipelines.mnist.steps import evaluate

MOST_FREQUENT_TRAINING_DIGIT = 3


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist-evaluate")
    splits = preprocess.make_splits(data.load_sample(), 0.1, 0.1, seed=0)
    # The test split is balanced; the training labels get a most frequent digit of their own, so the
    # baseline can only be right if it comes from the training labels.
    threes = splits.train.labels == MOST_FREQUENT_TRAINING_DIGIT
    train = preprocess.Split(np.concatenate([splits.train.images, splits.train.images[threes]]),
                             np.concatenate([splits.train.labels, splits.train.labels[threes]]))
    preprocess.save_splits(preprocess.Splits(train, splits.validation, splits.test), folder / "splits.npz")
    # An untrained network: the rows are about what the model got and answered, not how well it did.
    models.export_serving_model(models.build_cnn(models.TrainConfig(hidden_units=8)), folder / "model", "run-1")
    outputs = {"metrics": Metrics(name="metrics", uri=str(folder / "metrics")),
               "confusion": ClassificationMetrics(name="confusion", uri=str(folder / "confusion")),
               "report": HTML(name="report", uri=str(folder / "report.html")),
               "rows": Dataset(name="rows", uri=str(folder / "rows"))}
    accuracy = evaluate.python_func(model=Model(name="model", uri=str(folder / "model")),
                                    splits=Dataset(name="splits", uri=str(folder / "splits.npz")), **outputs)
    return folder, splits.test, accuracy, outputs


def test_the_rows_are_the_test_images_as_the_model_got_them_one_block_each(evaluated):
    folder, test, _, outputs = evaluated
    metadata = outputs["rows"].metadata
    assert metadata == {"metric": "accuracy", "block_length": BLOCK_LENGTH_IMAGES, "block_unit": "images",
                        "features": [], "prediction_output": "predicted_class", "rows": len(test.labels)}
    rows = read_rows(folder / "rows", metadata)
    assert rows.inputs.shape == (len(test.labels), 28, 28) and rows.inputs.dtype == np.float32
    np.testing.assert_array_equal(rows.inputs, test.images)
    np.testing.assert_array_equal(rows.block, np.arange(len(test.labels)))
    np.testing.assert_array_equal(rows.target, test.labels)
    np.testing.assert_array_equal(rows.weight, np.ones(len(test.labels)))
    np.testing.assert_array_equal(rows.baseline, np.full(len(test.labels), MOST_FREQUENT_TRAINING_DIGIT))
    predicted = load_predictor(folder / "model")(images=test.images)["predicted_class"].numpy()
    np.testing.assert_array_equal(rows.challenger, predicted)


def test_the_accuracy_recomputed_from_the_rows_is_the_gate_metric_and_the_baselines(evaluated):
    folder, _, accuracy, outputs = evaluated
    rows = read_rows(folder / "rows", outputs["rows"].metadata)
    logged = outputs["metrics"].metadata
    assert np.mean(rows.challenger == rows.target) == accuracy == logged["accuracy"]
    assert np.mean(rows.baseline == rows.target) == logged["majority_class_accuracy"]
    assert logged["majority_class"] == MOST_FREQUENT_TRAINING_DIGIT
