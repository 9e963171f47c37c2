"""Classifiers exported for TF-Serving, with one signature convention for all.

`serving_default` takes one float32 input (its name and shape per pipeline:
sp500 `features` [batch, n], mnist `images` [batch, 28, 28]) and returns
`predicted_class` (int64), its `probability`, all `probabilities` and the
`model_version` tag the model was trained under (the pipeline run's name), so
a client can tell which training produced an answer.
"""

from pathlib import Path
from typing import Sequence


def export_classifier(model, export_dir: Path | str, version_tag: str, input_name: str,
                      input_shape: Sequence[int]) -> None:
    """Save a Keras classifier (softmax output) as a SavedModel with that signature."""
    import tensorflow as tf

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.version = tf.Variable(version_tag, trainable=False, dtype=tf.string)

        @tf.function(input_signature=[tf.TensorSpec([None, *input_shape], tf.float32, name=input_name)])
        def serve(self, inputs):
            probabilities = self.model(inputs, training=False)
            return {
                "predicted_class": tf.argmax(probabilities, axis=1),
                "probability": tf.reduce_max(probabilities, axis=1),
                "probabilities": probabilities,
                "model_version": tf.fill([tf.shape(inputs)[0]], self.version),
            }

    module = Serving()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})


def load_predictor(export_dir: Path | str):
    """The `serving_default` signature of an exported model, called as TF-Serving calls it."""
    import tensorflow as tf

    return tf.saved_model.load(str(export_dir)).signatures["serving_default"]
