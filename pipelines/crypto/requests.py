"""`predict --model crypto`: the served LightGBM model's signature, for servers that do not report it.

The local server serves the model with the signature `features` [batch, n] ->
`predictions` (components.serving.servables); KServe's LightGBM server, which
serves it on a cluster, has no metadata endpoint, so `predict` takes the same
signature from here. Its requests are random feature rows (`--random`).
"""

from components.serving.client import Signature, TensorSpec
from pipelines.crypto.definitions import MODEL_FEATURES


def served_signature() -> Signature:
    """The signature the local server gives the model: one row of MODEL_FEATURES in, the Target out."""
    return Signature({"features": TensorSpec("DT_DOUBLE", [-1, len(MODEL_FEATURES)])},
                     {"predictions": TensorSpec("DT_DOUBLE", [-1])})
