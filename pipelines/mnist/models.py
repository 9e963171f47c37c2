"""The Keras CNN, its optimizer, and the SavedModel that TF-Serving serves (training: distributed.py).

Architecture: two convolution blocks (32 and 64 filters, 3x3, max-pooling),
dropout, then `hidden_layers` dense ReLU layers of `hidden_units` each (the
source's "variable number of layers", which the sweep tunes with the learning
rate), then a 10-way softmax. Adam with a cosine-decayed learning rate: a
high starting rate converges in few epochs and the decay settles it, which
matters when every trial of a sweep gets only a handful of epochs.

The served signature (`serving_default`) takes `images`: float32 [batch, 28, 28]
with pixels scaled to [0, 1] (what preprocess produces; divide 0..255 pixels by
255) and returns `predicted_class` (int64), its `probability`, all ten
`probabilities` (they sum to 1) and the `model_version` tag it was trained under.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.common.errors import InputError
from components.common.saved_model import export_classifier
from pipelines.mnist.data import IMAGE_SHAPE, NUM_CLASSES

CONV_FILTERS = (32, 64)
DROPOUT = 0.3


@dataclass(frozen=True)
class TrainConfig:
    learning_rate: float = 0.003
    hidden_layers: int = 1
    hidden_units: int = 128
    epochs: int = 6
    batch_size: int = 64
    seed: int = 42

    def check(self) -> None:
        if not 0 < self.learning_rate < 1:
            raise InputError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.hidden_layers < 0:
            raise InputError(f"hidden_layers must be 0 or more, got {self.hidden_layers}")
        for name in ("hidden_units", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")


def build_cnn(config: TrainConfig):
    """The CNN for `config` (uncompiled: pipelines.mnist.distributed trains it)."""
    import keras
    from keras import layers

    stack = [keras.Input(shape=IMAGE_SHAPE, name="images"), layers.Reshape((*IMAGE_SHAPE, 1))]
    for filters in CONV_FILTERS:
        stack += [layers.Conv2D(filters, 3, activation="relu"), layers.MaxPooling2D()]
    stack += [layers.Flatten(), layers.Dropout(DROPOUT)]
    stack += [layers.Dense(config.hidden_units, activation="relu") for _ in range(config.hidden_layers)]
    stack.append(layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"))
    return keras.Sequential(stack, name=f"cnn_{config.hidden_layers}x{config.hidden_units}")


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """Adam, its learning rate cosine-decayed to 0 over the whole training."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch)
    return keras.optimizers.Adam(schedule)


def export_serving_model(model, export_dir: Path | str, version_tag: str) -> None:
    """SavedModel taking `images` [batch, 28, 28] float32 (see components.common.saved_model)."""
    export_classifier(model, export_dir, version_tag, "images", IMAGE_SHAPE)


def predict_digits(predictor, images: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes, probabilities [N, 10]) through the served signature, in batches."""
    classes, probabilities = [], []
    for start in range(0, len(images), batch_size):
        answer = predictor(images=images[start:start + batch_size].astype(np.float32))
        classes.append(answer["predicted_class"].numpy())
        probabilities.append(answer["probabilities"].numpy())
    return np.concatenate(classes), np.concatenate(probabilities)
