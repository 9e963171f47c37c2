"""Classifiers exported for TF-Serving, with one signature convention for all.

`serving_default` takes one float32 input (its name and shape per pipeline:
sp500 `features` [batch, n], mnist `images` [batch, 28, 28]) and returns
`predicted_class` (int64), its `probability`, all `probabilities` and the
`model_version` tag the model was trained under (the pipeline run's name), so
a client can tell which training produced an answer.

`content_hash` says whether two exports hold the same model. The files cannot
tell: two trainings with the same data and seed give the same weights, but
every file of their exports differs (measured: saved_model.pb, fingerprint.pb
and both variables files), because the run's name is stored as the
`version` variable and the graph's function names carry per-process counters.
So the hash covers what the model computes with: the serving signature and
every variable's name, type, shape and value, except the version tag and the
checkpoint's object-graph record (bookkeeping, not values).
"""

import hashlib
from pathlib import Path
from typing import Sequence

# Checkpoint keys left out of the content hash (see the module's notes).
VERSION_KEY_PREFIX = "version/"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


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


def is_saved_model(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() and (path / "variables" / "variables.index").is_file()


def content_hash(export_dir: Path | str) -> str:
    """sha256 of the serving signature and the variables' values (not the version tag)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    export_dir = Path(export_dir)
    digest = hashlib.sha256()
    saved = saved_model_pb2.SavedModel.FromString((export_dir / "saved_model.pb").read_bytes())
    for graph in saved.meta_graphs:
        for name in sorted(graph.signature_def):
            digest.update(name.encode())
            digest.update(graph.signature_def[name].SerializeToString(deterministic=True))
    reader = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    for key, shape in sorted(reader.get_variable_to_shape_map().items()):
        if key == OBJECT_GRAPH_KEY or key.startswith(VERSION_KEY_PREFIX):
            continue
        value = reader.get_tensor(key)
        digest.update(f"{key}|{dtypes[key].name}|{shape}|".encode())
        digest.update(value.tobytes() if hasattr(value, "tobytes") else bytes(value))
    return digest.hexdigest()
