"""TF-Serving's gRPC API (PredictionService, ModelService) from the official stubs."""

from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from components.common.errors import InputError
from components.serving.loaded_models import ModelRegistry, ServedModel
from components.serving.prediction import predict, resolve_version, signature_def_map
from components.serving.servables import RequestRefused, invalid

# --- gRPC ---------------------------------------------------------------------------

# numpy dtype -> (TensorProto dtype, the typed field TF-Serving's responses fill)
PROTO_FIELDS = {
    np.dtype(np.float32): (types_pb2.DT_FLOAT, "float_val"),
    np.dtype(np.float64): (types_pb2.DT_DOUBLE, "double_val"),
    np.dtype(np.int32): (types_pb2.DT_INT32, "int_val"),
    np.dtype(np.int16): (types_pb2.DT_INT16, "int_val"),
    np.dtype(np.int8): (types_pb2.DT_INT8, "int_val"),
    np.dtype(np.uint8): (types_pb2.DT_UINT8, "int_val"),
    np.dtype(np.int64): (types_pb2.DT_INT64, "int64_val"),
    np.dtype(np.uint32): (types_pb2.DT_UINT32, "uint32_val"),
    np.dtype(np.uint64): (types_pb2.DT_UINT64, "uint64_val"),
    np.dtype(np.bool_): (types_pb2.DT_BOOL, "bool_val"),
    np.dtype(object): (types_pb2.DT_STRING, "string_val"),
}


def to_tensor_proto(value: np.ndarray) -> tensor_pb2.TensorProto:
    """Typed value fields (`float_val` …), not `tensor_content`, as TF-Serving answers:
    clients written for it read e.g. `outputs['probability'].float_val`."""
    dtype, field_name = PROTO_FIELDS[value.dtype]
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in value.shape]))
    getattr(proto, field_name).extend(value.ravel().tolist())
    return proto


def from_tensor_proto(name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
    try:
        return tf.make_ndarray(proto)
    except Exception as error:  # a malformed TensorProto is the client's fault
        raise invalid(f"tensor parsing error: {name} ({error})") from error


def abort(context: grpc.ServicerContext, error: RequestRefused):
    context.abort(error.code, error.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference stay UNIMPLEMENTED."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def Predict(self, request, context):
        spec = request.model_spec
        with self.registry.metrics.request(spec.name, "predict", "GRPC") as outcome:
            try:
                inputs = {name: from_tensor_proto(name, proto) for name, proto in request.inputs.items()}
                model = self.registry.get(spec.name, *resolve_version(spec))
                outcome.version = model.version
                result = predict(model, spec.signature_name, inputs, list(request.output_filter))
            except RequestRefused as error:
                outcome.status = error.code.name
                abort(context, error)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = result.version
        response.model_spec.signature_name = result.signature_name
        for name, value in result.outputs.items():
            response.outputs[name].CopyFrom(to_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        try:
            model = metadata_model(self.registry, request)
        except RequestRefused as error:
            abort(context, error)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = model.version
        response.metadata["signature_def"].Pack(signature_def_map(model))
        return response


def metadata_model(registry: ModelRegistry, request) -> ServedModel:
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")
    if not request.metadata_field:
        raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
    for metadata_field in request.metadata_field:
        if metadata_field != "signature_def":
            raise invalid(f"Metadata field {metadata_field} is not supported")
    return registry.get(request.model_spec.name, *resolve_version(request.model_spec))


def model_status_response(registry: ModelRegistry, name: str,
                          version: int | None) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, status in registry.status(name, version):
        entry = response.model_version_status.add(version=number)
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
        entry.status.error_code = status.error_code
        entry.status.error_message = status.error_message
    return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def GetModelStatus(self, request, context):
        try:
            version, label = resolve_version(request.model_spec)
            if label:
                version = self.registry.version_for_label(request.model_spec.name, label)
            return model_status_response(self.registry, request.model_spec.name, version)
        except RequestRefused as error:
            abort(context, error)


def start_grpc(registry: ModelRegistry, host: str, port: int, workers: int = 8) -> tuple[grpc.Server, int]:
    # TF-Serving accepts messages up to 2 GiB; -1 lifts grpc's 4 MiB default.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         options=[("grpc.max_receive_message_length", -1),
                                  ("grpc.max_send_message_length", -1)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(registry), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(registry), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:
        raise InputError(f"--grpc-port {port}: cannot listen on {host}:{port} ({error})") from error
    server.start()
    return server, bound


