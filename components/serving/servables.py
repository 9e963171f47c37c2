"""One loaded model version (a SavedModel or a LightGBM text model) and the TF-Serving
constants every API shares."""

from http import HTTPStatus
from pathlib import Path
from typing import Protocol

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from components.common.errors import ServingError
from components.common.model_files import lightgbm_model_files

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
# TF-Serving retries a failed load a few times (a version copied in by hand may
# be incomplete when first seen) and then gives up on that version.
MAX_LOAD_ATTEMPTS = 5
# http_server.cc's ToHTTPStatusCode, for the codes this server produces.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
}


class RequestRefused(ServingError):
    """A request that cannot be answered, with the gRPC status code TF-Serving would give."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> RequestRefused:
    return RequestRefused(grpc.StatusCode.INVALID_ARGUMENT, message)


# --- servables: one loaded model version ------------------------------------


class Servable(Protocol):
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def dtype_name(dtype: int) -> str:
    """`DT_FLOAT` -> `float`, the spelling of TF-Serving's messages."""
    return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()


def numpy_dtype(dtype: int) -> np.dtype:
    return np.dtype(object) if dtype == types_pb2.DT_STRING else np.dtype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)


def tensor_info(dtype: int, shape: list[int], name: str) -> meta_graph_pb2.TensorInfo:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in shape]
    return meta_graph_pb2.TensorInfo(name=name, dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims))


class SavedModelServable:
    """A SavedModel, called through its signatures as TF-Serving calls it."""

    def __init__(self, export_dir: Path):
        graph = saved_model_pb2.SavedModel.FromString((export_dir / "saved_model.pb").read_bytes())
        self._loaded = tf.saved_model.load(str(export_dir))
        # Signatures as TF-Serving reports them (metadata, REST input maps),
        # including `__saved_model_init_op`, which cannot be called.
        self.signature_defs = dict(graph.meta_graphs[0].signature_def)

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        function = self._loaded.signatures.get(signature_name)
        if function is None:
            raise RequestRefused(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature key "{signature_name}" is not callable.')
        try:
            outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
        except tf.errors.OpError as error:
            raise RequestRefused(status_code(error.error_code), error.message) from error
        except (TypeError, ValueError) as error:
            raise invalid(str(error)) from error
        return {name: value.numpy() for name, value in outputs.items()}


def status_code(number: int) -> grpc.StatusCode:
    """TensorFlow's error codes are gRPC's status numbers."""
    return next((code for code in grpc.StatusCode if code.value[0] == number), grpc.StatusCode.UNKNOWN)


class LightGBMServable:
    """A LightGBM text model behind a predict signature: `features` [batch, n] -> `predictions` [batch]."""

    def __init__(self, model_file: Path):
        import lightgbm

        self._booster = lightgbm.Booster(model_file=str(model_file))
        n_features = self._booster.num_feature()
        self.signature_defs = {DEFAULT_SIGNATURE: meta_graph_pb2.SignatureDef(
            method_name=PREDICT_METHOD,
            inputs={"features": tensor_info(types_pb2.DT_DOUBLE, [-1, n_features], "features")},
            outputs={"predictions": tensor_info(types_pb2.DT_DOUBLE, [-1], "predictions")},
        )}

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"predictions": np.asarray(self._booster.predict(inputs["features"]), dtype=np.float64)}


def load_servable(version_dir: Path) -> Servable:
    if (version_dir / "saved_model.pb").is_file():
        return SavedModelServable(version_dir)
    models = lightgbm_model_files(version_dir)
    if len(models) == 1:
        return LightGBMServable(models[0])
    raise RequestRefused(grpc.StatusCode.NOT_FOUND,
                       f"{version_dir}: no SavedModel (saved_model.pb) and not exactly one LightGBM model file")


