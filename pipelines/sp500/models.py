"""The two Keras models of the source, training, and the SavedModel export.

- FlatModel ("flat"): one softmax layer, features -> 2 classes.
- DeepModel ("deep"): features -> 50 ReLU -> 25 ReLU -> 2 softmax.
Both start with a Normalization layer adapted on the training set, so the
served model takes raw log returns and no scaler travels beside it.
"""

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from components.common.errors import InputError
from components.common.saved_model import export_classifier

HIDDEN_LAYERS: dict[str, tuple[int, ...]] = {"flat": (), "deep": (50, 25)}


def check_model_type(model_type: str) -> None:
    if model_type not in HIDDEN_LAYERS:
        raise InputError(f"model_type '{model_type}' is unknown: choose one of {', '.join(HIDDEN_LAYERS)}")


def check_training(epochs: int, learning_rate: float) -> None:
    if epochs < 1:
        raise InputError(f"epochs must be at least 1, got {epochs}")
    if not 0 < learning_rate < 1:
        raise InputError(f"learning_rate must be in (0, 1), got {learning_rate}")


def build_model(model_type: str, train_features: np.ndarray, learning_rate: float):
    import keras

    check_model_type(model_type)
    normalize = keras.layers.Normalization(name="normalize")
    normalize.adapt(train_features)
    layers = [keras.Input(shape=(train_features.shape[1],), name="features"), normalize]
    layers += [keras.layers.Dense(units, activation="relu") for units in HIDDEN_LAYERS[model_type]]
    layers.append(keras.layers.Dense(2, activation="softmax", name="probabilities"))
    model = keras.Sequential(layers, name=f"{model_type}_model")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train_model(features: np.ndarray, labels: np.ndarray, model_type: str, epochs: int,
                learning_rate: float, seed: int, batch_size: int = 64,
                progress: Callable[[str], None] = print, callbacks: Sequence = ()):
    """Train deterministically for a given seed (same seed, same weights); `callbacks` are
    Keras callbacks added to the progress printer (the MLflow epoch logger)."""
    import keras
    import tensorflow as tf

    check_model_type(model_type)
    check_training(epochs, learning_rate)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model(model_type, features, learning_rate)
    report_every = max(1, epochs // 10)

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % report_every == 0 or epoch + 1 == epochs:
                progress(f"epoch {epoch + 1}/{epochs} loss {logs['loss']:.4f} "
                         f"accuracy {logs['accuracy']:.4f}")

    model.fit(features, labels, epochs=epochs, batch_size=batch_size, shuffle=True,
              verbose=0, callbacks=[Progress(), *callbacks])
    return model


def training_history(model) -> dict[str, list[float]]:
    """Loss and accuracy per epoch of the last `fit` (Keras keeps its History on the model)."""
    return {name: [float(value) for value in values] for name, values in model.history.history.items()}


def export_saved_model(model, export_dir: Path, version_tag: str) -> None:
    """SavedModel taking `features` [batch, n] float32 (see components.common.saved_model)."""
    export_classifier(model, export_dir, version_tag, "features", model.input_shape[1:])
