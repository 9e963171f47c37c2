"""The CNN: its depth, its optimizer, and the served SavedModel signature."""

import numpy as np
import pytest
import tensorflow as tf

from components.common.errors import InputError
from components.common.saved_model import load_predictor
from pipelines.mnist import data, distributed, models, preprocess


@pytest.fixture(scope="module")
def small_splits():
    """A few hundred real digits: enough to learn something in one epoch, fast."""
    splits = preprocess.make_splits(data.load_sample(), 0.1, 0.2, seed=0)

    def head(split, count):
        return preprocess.Split(split.images[::len(split.labels) // count][:count],
                                split.labels[::len(split.labels) // count][:count])

    return preprocess.Splits(head(splits.train, 700), head(splits.validation, 100), head(splits.test, 200))


CONFIG = models.TrainConfig(learning_rate=0.003, hidden_layers=1, hidden_units=32, epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def exported(small_splits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model, history = distributed.train_with_strategy(CONFIG, small_splits, tf.distribute.get_strategy(),
                                                     str(folder / "logs"), progress=lambda line: None)
    models.export_serving_model(model, folder / "saved_model", "run-123")
    return folder, model, history


def test_serving_signature_takes_28x28_float32_images(exported):
    folder, _, _ = exported
    predictor = load_predictor(folder / "saved_model")
    (spec,) = predictor.structured_input_signature[1].values()
    assert spec.name == "images" and spec.dtype.name == "float32"
    assert spec.shape.as_list() == [None, 28, 28]
    assert set(predictor.structured_outputs) == {"predicted_class", "probability", "probabilities",
                                                 "model_version"}


@pytest.mark.parametrize("batch", [1, 7])
def test_served_probabilities_sum_to_one_and_match_the_class(exported, small_splits, batch):
    folder, _, _ = exported
    predictor = load_predictor(folder / "saved_model")
    answer = predictor(images=small_splits.test.images[:batch])
    probabilities = answer["probabilities"].numpy()
    assert probabilities.shape == (batch, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(answer["predicted_class"].numpy(), probabilities.argmax(axis=1))
    np.testing.assert_allclose(answer["probability"].numpy(), probabilities.max(axis=1))
    assert answer["model_version"].numpy().tolist() == [b"run-123"] * batch


def test_served_model_learned_something_and_matches_keras(exported, small_splits):
    folder, model, _ = exported
    classes, probabilities = models.predict_digits(load_predictor(folder / "saved_model"),
                                                   small_splits.test.images, batch_size=64)
    assert np.mean(classes == small_splits.test.labels) > 0.5, "one epoch on 700 digits beats chance (0.1)"
    np.testing.assert_allclose(probabilities, model.predict(small_splits.test.images, verbose=0), atol=1e-5)


def test_wrong_image_shape_is_refused_by_the_signature(exported):
    folder, _, _ = exported
    predictor = load_predictor(folder / "saved_model")
    with pytest.raises((ValueError, TypeError)):
        predictor(images=np.zeros((2, 28, 29), np.float32))


@pytest.mark.parametrize("change, message", [
    ({"learning_rate": 0.0}, "learning_rate must be in"),
    ({"hidden_layers": -1}, "hidden_layers must be 0 or more"),
    ({"hidden_units": 0}, "hidden_units must be at least 1"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
])
def test_bad_training_parameters_are_clear_errors(change, message):
    config = models.TrainConfig(**{**CONFIG.__dict__, **change})
    with pytest.raises(InputError, match=message):
        config.check()


def test_hidden_layers_set_the_depth():
    for layers in (0, 3):
        model = models.build_cnn(models.TrainConfig(hidden_layers=layers, hidden_units=16))
        dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
        assert [layer.units for layer in dense] == [16] * layers + [10]

