"""Training determinism and the exported serving signature."""

import numpy as np
import pytest

from components.common.errors import InputError
from components.common.saved_model import load_predictor
from pipelines.sp500 import models


@pytest.fixture(scope="module")
def toy_data():
    rng = np.random.default_rng(0)
    features = rng.normal(0, 0.01, (200, 6)).astype(np.float32)
    labels = (features[:, 0] + rng.normal(0, 0.005, 200) > 0).astype(np.int64)
    return features, labels


def weights(model):
    return [w.copy() for w in model.get_weights()]


def test_same_seed_same_weights_other_seed_other_weights(toy_data):
    features, labels = toy_data
    quiet = dict(progress=lambda line: None)
    first = models.train_model(features, labels, "deep", 3, 0.01, seed=7, **quiet)
    again = models.train_model(features, labels, "deep", 3, 0.01, seed=7, **quiet)
    other = models.train_model(features, labels, "deep", 3, 0.01, seed=8, **quiet)
    for a, b in zip(weights(first), weights(again), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(weights(first), weights(other), strict=True))


def test_training_keeps_the_loss_and_accuracy_of_every_epoch(toy_data):
    model = models.train_model(*toy_data, "flat", 3, 0.01, seed=1, progress=lambda line: None)
    history = models.training_history(model)
    assert set(history) == {"loss", "accuracy"} and all(len(values) == 3 for values in history.values())
    assert all(isinstance(value, float) for values in history.values() for value in values)  # JSON-ready


def test_architectures_match_the_source(toy_data):
    features, _ = toy_data
    dense = lambda m: [layer.units for layer in m.layers if hasattr(layer, "units")]  # noqa: E731
    assert dense(models.build_model("flat", features, 0.01)) == [2]
    assert dense(models.build_model("deep", features, 0.01)) == [50, 25, 2]


def test_serving_signature_returns_class_probability_and_version(toy_data, tmp_path):
    features, labels = toy_data
    model = models.train_model(features, labels, "flat", 2, 0.01, seed=1, progress=lambda line: None)
    models.export_saved_model(model, tmp_path / "model", "run-123")
    predict = load_predictor(tmp_path / "model")
    assert set(predict.structured_input_signature[1]) == {"features"}
    out = predict(features=features[:5])
    assert out["predicted_class"].shape == (5,) and out["predicted_class"].dtype.name == "int64"
    probabilities = out["probabilities"].numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["probability"].numpy(), probabilities.max(axis=1))
    np.testing.assert_array_equal(out["predicted_class"].numpy(), probabilities.argmax(axis=1))
    assert [v.decode() for v in out["model_version"].numpy()] == ["run-123"] * 5
    keras_probabilities = model.predict(features[:5], verbose=0)
    np.testing.assert_allclose(probabilities, keras_probabilities, rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(model_type="wide"), "model_type 'wide' is unknown"),
    (dict(epochs=0), "epochs must be at least 1"),
    (dict(learning_rate=2.0), "learning_rate"),
])
def test_impossible_training_parameters(toy_data, kwargs, message):
    features, labels = toy_data
    args = dict(model_type="flat", epochs=1, learning_rate=0.01, seed=0) | kwargs
    with pytest.raises(InputError, match=message):
        models.train_model(features, labels, **args)
