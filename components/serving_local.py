"""A local stand-in for TF-Serving, so the train → deploy → query loop runs offline.

On a cluster the real TF-Serving (or KServe for LightGBM) serves the model store;
this server speaks the same APIs over the same store layout, so the request
client and any TF-Serving client work against either:

- gRPC `tensorflow.serving.PredictionService` (Predict, GetModelMetadata) and
  `ModelService.GetModelStatus`, from the official `tensorflow-serving-api` stubs;
- REST `POST /v1/models/<name>[/versions/<n>]:predict` with `instances` (row
  format) or `inputs` (columnar format), `GET /v1/models/<name>[/versions/<n>]`
  (status) and `GET /v1/models/<name>[/versions/<n>]/metadata`.

The store is `<model_base_path>/<model_name>/<N>/`. Like TF-Serving's file
system poller with its default "latest" version policy, a background thread looks
at the folder every `poll_seconds`, loads the highest version, switches to it
once loaded and unloads the previous one: deploying a new version needs no
restart. A version folder holds a SavedModel (`saved_model.pb`) or a single
LightGBM text model (the crypto pipeline's model), which is served with the
signature `features` float64 [batch, n] → `predictions` float64 [batch].

Errors follow TF-Serving: gRPC status codes (INVALID_ARGUMENT, NOT_FOUND,
FAILED_PRECONDITION …) and, over REST, `{"error": "<message>"}` with the HTTP
code TF-Serving maps that status to (400, 404 …). A malformed request never
takes the server down.
"""

import argparse
import base64
import json
import os
import re
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

# TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) is noise for a server log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: E402
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from components.errors import InputError  # noqa: E402
from components.model_store import versions  # noqa: E402

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


class ServingError(Exception):
    """A request that cannot be answered, with the gRPC status code TF-Serving would give."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


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
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature key "{signature_name}" is not callable.')
        try:
            outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
        except tf.errors.OpError as error:
            raise ServingError(status_code(error.error_code), error.message) from error
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


def is_lightgbm_text_model(path: Path) -> bool:
    # LightGBM's text format starts with the line "tree"; file names vary by pipeline.
    with path.open("rb") as file:
        return file.read(5) == b"tree\n"


def load_servable(version_dir: Path) -> Servable:
    if (version_dir / "saved_model.pb").is_file():
        return SavedModelServable(version_dir)
    models = [p for p in version_dir.iterdir() if p.is_file() and is_lightgbm_text_model(p)]
    if len(models) == 1:
        return LightGBMServable(models[0])
    raise ServingError(grpc.StatusCode.NOT_FOUND,
                       f"{version_dir}: no SavedModel (saved_model.pb) and not exactly one LightGBM model file")


# --- the model registry and its poller ----------------------------------------


@dataclass
class VersionStatus:
    state: str  # a ModelVersionStatus.State name: AVAILABLE, END
    error_code: int = 0  # a tensorflow.error.Code (the gRPC numbers): 0 OK, 2 UNKNOWN
    error_message: str = ""


@dataclass
class ServedModel:
    version: int
    servable: Servable


@dataclass
class ModelRegistry:
    """The models under `model_base_path`, each at its highest loadable version."""

    model_base_path: Path
    model_name: str | None = None  # serve only this model; None: every folder in the store
    served: dict[str, ServedModel] = field(default_factory=dict)
    history: dict[str, dict[int, VersionStatus]] = field(default_factory=dict)
    failed_loads: dict[tuple[str, int], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def model_names(self) -> list[str]:
        if self.model_name:
            return [self.model_name]
        if not self.model_base_path.is_dir():
            return []
        return sorted(p.name for p in self.model_base_path.iterdir() if p.is_dir() and not p.name.startswith("."))

    def poll(self) -> None:
        """One pass of the file system poller: load what is new, unload what is gone."""
        names = set(self.model_names())
        for name in names:
            self.poll_model(name)
        for name in set(self.served) - names:
            self.unload(name)

    def poll_model(self, name: str) -> None:
        on_disk = versions(self.model_base_path / name)
        current = self.served.get(name)
        candidates = [v for v in reversed(on_disk) if self.failed_loads.get((name, v), 0) < MAX_LOAD_ATTEMPTS]
        if not on_disk:
            if current:
                self.unload(name)
            return
        if not candidates or (current and current.version == candidates[0]):
            return
        # Availability first, as TF-Serving's default policy: the new version is
        # loaded while the old one keeps answering, then the two are swapped.
        self.load(name, candidates[0])

    def load(self, name: str, version: int) -> None:
        version_dir = self.model_base_path / name / str(version)
        started = time.monotonic()
        try:
            servable = load_servable(version_dir)
        except Exception as error:  # any broken model must leave the server running
            attempts = self.failed_loads.get((name, version), 0) + 1
            self.failed_loads[(name, version)] = attempts
            message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
            print(f"serving: cannot load {name} version {version} (attempt {attempts}/{MAX_LOAD_ATTEMPTS}): "
                  f"{message}", flush=True)
            if attempts >= MAX_LOAD_ATTEMPTS:
                with self.lock:
                    unknown = grpc.StatusCode.UNKNOWN.value[0]
                    self.history.setdefault(name, {})[version] = VersionStatus("END", unknown, message)
            return
        with self.lock:
            previous = self.served.get(name)
            self.served[name] = ServedModel(version, servable)
            states = self.history.setdefault(name, {})
            states[version] = VersionStatus("AVAILABLE")
            if previous:
                states[previous.version] = VersionStatus("END")
        replaced = f", replacing version {previous.version}" if previous else ""
        print(f"serving: {name} version {version} loaded in {time.monotonic() - started:.1f}s{replaced}", flush=True)

    def unload(self, name: str) -> None:
        with self.lock:
            gone = self.served.pop(name, None)
            if gone:
                self.history[name][gone.version] = VersionStatus("END")
        if gone:
            print(f"serving: {name} version {gone.version} unloaded (no versions left on disk)", flush=True)

    def get(self, name: str, version: int | None) -> ServedModel:
        with self.lock:
            model = self.served.get(name)
        if model is None or (version is not None and version != model.version):
            request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
        return model

    def status(self, name: str, version: int | None) -> list[tuple[int, VersionStatus]]:
        with self.lock:
            states = dict(self.history.get(name, {}))
        if version is not None:
            if version not in states:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
            return [(version, states[version])]
        if not states:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        return sorted(states.items(), reverse=True)


# --- prediction, shared by gRPC and REST ------------------------------------------


@dataclass
class PredictResult:
    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]


def resolve_version(spec) -> int | None:
    """The version asked for in a ModelSpec; version labels are not configured here."""
    if spec.version_label:
        raise invalid(f"Unrecognized servable version label: {spec.version_label}")
    return spec.version.value if spec.HasField("version") else None


def signature_of(model: ServedModel, signature_name: str) -> meta_graph_pb2.SignatureDef:
    signature = model.servable.signature_defs.get(signature_name)
    if signature is None:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'Serving signature key "{signature_name}" not found.')
    return signature


def check_inputs(signature: meta_graph_pb2.SignatureDef, inputs: dict[str, np.ndarray]) -> None:
    """Names, dtypes and shapes against the signature, with TF-Serving's wording where it has one."""
    expected, sent = set(signature.inputs), set(inputs)
    if len(sent) != len(expected):
        raise invalid(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")
    for index, name in enumerate(sorted(inputs)):
        if name not in expected:
            raise invalid(f"input tensor alias not found in signature: {name}. "
                          f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}.")
        info, value = signature.inputs[name], inputs[name]
        if value.dtype != numpy_dtype(info.dtype):
            got = "string" if value.dtype == object else dtype_name(tf.dtypes.as_dtype(value.dtype).as_datatype_enum)
            raise invalid(f"Expects arg[{index}] to be {dtype_name(info.dtype)} but {got} is provided")
        if not info.tensor_shape.unknown_rank:
            want = [dim.size for dim in info.tensor_shape.dim]
            if len(want) != value.ndim or any(w not in (-1, g) for w, g in zip(want, value.shape, strict=True)):
                raise invalid(f"input '{name}' has shape [{','.join(map(str, value.shape))}] but the "
                              f"signature expects [{','.join(map(str, want))}] (-1: any size)")


def predict(model: ServedModel, signature_name: str, inputs: dict[str, np.ndarray],
            output_filter: list[str]) -> PredictResult:
    signature_name = signature_name or DEFAULT_SIGNATURE
    signature = signature_of(model, signature_name)
    check_inputs(signature, inputs)
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                          f"the set {{{','.join(sorted(signature.outputs))}}}.")
    if len(set(output_filter)) != len(output_filter):
        raise invalid(f"duplicate output tensor alias: {output_filter}")
    outputs = model.servable.run(signature_name, inputs)
    if output_filter:
        outputs = {alias: outputs[alias] for alias in output_filter}
    return PredictResult(model.version, signature_name, outputs)


def signature_def_map(model: ServedModel) -> get_model_metadata_pb2.SignatureDefMap:
    return get_model_metadata_pb2.SignatureDefMap(signature_def=model.servable.signature_defs)


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


def abort(context: grpc.ServicerContext, error: ServingError):
    context.abort(error.code, error.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference stay UNIMPLEMENTED."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def Predict(self, request, context):
        try:
            spec = request.model_spec
            inputs = {name: from_tensor_proto(name, proto) for name, proto in request.inputs.items()}
            model = self.registry.get(spec.name, resolve_version(spec))
            result = predict(model, spec.signature_name, inputs, list(request.output_filter))
        except ServingError as error:
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
        except ServingError as error:
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
    return registry.get(request.model_spec.name, resolve_version(request.model_spec))


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
            return model_status_response(self.registry, request.model_spec.name,
                                         resolve_version(request.model_spec))
        except ServingError as error:
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


# --- REST: TF-Serving's JSON API ---------------------------------------------------------

PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.I)
STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.I)
# JSON kinds numpy infers, allowed per target kind (TF-Serving: a float takes any
# number, an integer only integers, a bool only true/false).
ACCEPTED_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}


def snippet(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def dense_shape(value) -> list[int]:
    """The shape a nested list claims, read along the first elements (as TF-Serving does)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def decode_strings(value, where: str):
    if isinstance(value, list):
        return [decode_strings(item, where) for item in value]
    if is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError as error:
            raise invalid(f"{where}: Unable to base64 decode") from error
    if isinstance(value, str):
        return value.encode()
    raise invalid(f"{where}: JSON Value: {snippet(value)} is not of expected type: string")


def json_to_array(value, dtype: int, where: str) -> np.ndarray:
    """A JSON value as a dense tensor of the signature's dtype, or INVALID_ARGUMENT."""
    target = numpy_dtype(dtype)
    shape = dense_shape(value)
    strings = dtype == types_pb2.DT_STRING
    if strings:
        value = decode_strings(value, where)
    try:
        array = np.array(value, dtype=object if strings else None)
    except (ValueError, OverflowError):
        array = None
    if array is None or list(array.shape) != shape or (array.dtype.kind == "O" and not strings):
        raise invalid(f"{where}: JSON Value: {snippet(value)} is not a dense tensor: every list at a level "
                      f"must have the same length (expected shape [{','.join(map(str, shape))}])")
    if strings:
        return array
    if array.size and array.dtype.kind not in ACCEPTED_KINDS.get(target.kind, ""):
        raise invalid(f"{where}: JSON Value: {snippet(value)} is not of expected type: {dtype_name(dtype)}")
    limits = np.iinfo(target) if target.kind in "iu" else None
    if limits and array.size and (array.min() < limits.min or array.max() > limits.max):
        raise invalid(f"{where}: JSON Value: {snippet(value)} does not fit in type: {dtype_name(dtype)}")
    converted = array.astype(target)
    if target.kind == "f" and np.any(np.isinf(converted) & np.isfinite(array)):
        raise invalid(f"Cannot convert JSON value: {snippet(value)} to {dtype_name(dtype)} without loss of precision.")
    return converted


def instances_to_inputs(instances, infos) -> dict[str, np.ndarray]:
    """Row format: one list element per example, stacked along a new batch dimension."""
    names = sorted(infos)
    if not isinstance(instances, list):
        raise invalid(f"JSON Value: {snippet(instances)} Excepting 'instances' to be an list/array")
    if not instances:
        raise invalid("No values in 'instances' array")
    named = isinstance(instances[0], dict) and not is_b64(instances[0])
    if not named and len(names) > 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple input tensors "
                      "required as per tensorinfo_map")
    columns: dict[str, list] = {name: [] for name in names} if named else {names[0]: instances}
    for index, element in enumerate(instances):
        is_object = isinstance(element, dict) and not is_b64(element)
        if named and not is_object:
            raise invalid(f"Expecting object but got list at item {index} of input list")
        if not named and is_object:
            raise invalid(f"Expecting value/list but got object at item {index} of input list")
        if named:
            if set(element) != set(names):
                raise invalid(f"Failed to process element: {index} of 'instances' list. JSON object: "
                              f"{snippet(element)} keys must be equal to: {','.join(names)}")
            for name in names:
                columns[name].append(element[name])
    return {name: json_to_array(values, infos[name].dtype, f"'instances' input '{name}'")
            for name, values in columns.items()}


def columnar_to_inputs(inputs, infos) -> dict[str, np.ndarray]:
    """Columnar format: one value per named input, batch dimension included."""
    names = sorted(infos)
    if not isinstance(inputs, dict) or is_b64(inputs):
        if len(names) > 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple input tensors "
                          "required as per tensorinfo_map")
        return {names[0]: json_to_array(inputs, infos[names[0]].dtype, f"'inputs' input '{names[0]}'")}
    for name in names:
        if name not in inputs:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
    return {name: json_to_array(inputs[name], infos[name].dtype, f"'inputs' input '{name}'") for name in names}


def array_to_json(name: str, value: np.ndarray):
    if value.dtype == object:
        as_bytes = name.endswith("_bytes")  # TF-Serving's convention for binary outputs

        def encode(item):
            if isinstance(item, list):
                return [encode(i) for i in item]
            if as_bytes:
                return {"b64": base64.b64encode(item).decode()}
            return item.decode(errors="backslashreplace")

        return encode(value.tolist())
    if value.dtype.kind == "f" and value.dtype != np.float64:
        # The shortest text that reads back as the same float32 (0.2, not
        # 0.20000000298023224), as TF-Serving writes it.
        return value.astype(str).astype(np.float64).tolist()
    return value.tolist()


def outputs_to_json(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    names = sorted(outputs)
    if not row_format:
        columns = {name: array_to_json(name, outputs[name]) for name in names}
        return {"outputs": columns[names[0]] if len(names) == 1 else columns}
    batch = None
    for name in names:
        if outputs[name].ndim == 0:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch is not None and outputs[name].shape[0] != batch:
            raise invalid(f"Tensor name: {name} has inconsistent batch size: {outputs[name].shape[0]} "
                          f"expecting: {batch}")
        batch = outputs[name].shape[0]
    rows = {name: array_to_json(name, outputs[name]) for name in names}
    if len(names) == 1:
        return {"predictions": rows[names[0]]}
    return {"predictions": [{name: rows[name][i] for name in names} for i in range(batch)]}


def parse_json_body(body: bytes) -> dict:
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise invalid(f"JSON Parse error: {error.msg} at offset: {error.pos}") from error
    except (UnicodeDecodeError, RecursionError) as error:
        raise invalid(f"JSON Parse error: {error}") from error
    if not isinstance(document, dict):
        raise invalid(f"JSON Value: {snippet(document)} Is not object")
    return document


def rest_predict(registry: ModelRegistry, name: str, version: int | None, body: bytes) -> dict:
    request = parse_json_body(body)
    signature_name = request.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid(f"JSON Value: {snippet(request)} not formatted correctly. "
                      "'signature_name' key must be a string value.")
    model = registry.get(name, version)
    signature = model.servable.signature_defs.get(signature_name or DEFAULT_SIGNATURE)
    if signature is None:
        raise invalid(f'Serving signature name: "{signature_name or DEFAULT_SIGNATURE}" not found in signature def')
    if not signature.inputs:
        raise invalid(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    if "instances" in request and "inputs" in request:
        raise invalid(f"JSON Value: {snippet(request)} Not formatted correctly expecting only one of "
                      "'inputs' or 'instances' keys to exist ")
    if "instances" in request:
        inputs = instances_to_inputs(request["instances"], signature.inputs)
    elif "inputs" in request:
        inputs = columnar_to_inputs(request["inputs"], signature.inputs)
    else:
        raise invalid("Missing 'inputs' or 'instances' key")
    result = predict(model, signature_name, inputs, [])
    return outputs_to_json(result.outputs, row_format="instances" in request)


def rest_metadata(registry: ModelRegistry, name: str, version: int | None) -> dict:
    model = registry.get(name, version)
    as_json = dict(preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    spec = model_pb2.ModelSpec(name=name)
    spec.version.value = model.version
    return {"model_spec": json_format.MessageToDict(spec, **as_json),
            "metadata": {"signature_def": json_format.MessageToDict(signature_def_map(model), **as_json)}}


def rest_route(registry: ModelRegistry, method: str, path: str, body: bytes) -> dict:
    if method == "POST" and (match := PREDICT_PATH.fullmatch(path)):
        name, version, label, verb = match.groups()
        if label:
            raise invalid(f"Unrecognized servable version label: {unquote(label)}")
        if verb.lower() != "predict":
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                               f"{verb} is not offered by this local server: the models here have predict signatures")
        return rest_predict(registry, unquote(name), int(version) if version else None, body)
    if method == "GET" and (match := STATUS_PATH.fullmatch(path)):
        name, version, label, metadata = match.groups()
        if not name:
            raise invalid("Missing model name in request.")
        if label:
            raise invalid(f"Unrecognized servable version label: {unquote(label)}")
        version_number = int(version) if version else None
        if metadata:
            return rest_metadata(registry, unquote(name), version_number)
        status = model_status_response(registry, unquote(name), version_number)
        return json_format.MessageToDict(status, always_print_fields_with_no_presence=True)
    raise invalid(f"Malformed request: {method} {path}")


def handle_rest(registry: ModelRegistry, method: str, target: str, body: bytes) -> tuple[HTTPStatus, dict]:
    """One REST request: (HTTP status, JSON document). Errors become {"error": ...}."""
    path = urlsplit(target).path
    try:
        if not path.lower().startswith("/v1/"):
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"no handler for {path}: the API is under /v1/models/")
        return HTTPStatus.OK, rest_route(registry, method, path, body)
    except ServingError as error:
        return HTTP_STATUS.get(error.code, HTTPStatus.INTERNAL_SERVER_ERROR), {"error": error.message}
    except Exception as error:  # a bug here must cost one request, not the server
        print(f"serving: internal error on {method} {path}: {type(error).__name__}: {error}", flush=True)
        return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"Internal: {type(error).__name__}: {error}"}


class RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients and the benchmark expect
    # Headers and body leave in two writes; with Nagle's algorithm the second
    # waits for the client's delayed ACK (40 ms per request on Linux).
    disable_nagle_algorithm = True
    timeout = 60  # seconds a connection may stay silent (idle keep-alive, or a body that never comes)
    server: "RestServer"

    def do_GET(self):
        self.respond(*handle_rest(self.server.registry, "GET", self.path, b""))

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.respond(HTTPStatus.BAD_REQUEST, {"error": "Content-Length is not a number"})
            return
        body = self.rfile.read(length)
        self.respond(*handle_rest(self.server.registry, "POST", self.path, body))

    def respond(self, status: HTTPStatus, document: dict) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        pass  # one line per request would drown the load/unload log; errors come back to the client


class RestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: ModelRegistry):
        super().__init__(address, RestHandler)
        self.registry = registry


# --- running it --------------------------------------------------------------------------


@dataclass
class RunningServer:
    registry: ModelRegistry
    grpc_server: grpc.Server
    rest_server: RestServer
    grpc_port: int
    rest_port: int
    stop_polling: threading.Event

    def stop(self) -> None:
        self.stop_polling.set()
        self.rest_server.shutdown()
        self.rest_server.server_close()
        self.grpc_server.stop(grace=1).wait()


def poll_forever(registry: ModelRegistry, every_seconds: float, stop: threading.Event) -> None:
    while not stop.wait(every_seconds):
        try:
            registry.poll()
        except Exception as error:  # the poller must outlive a bad folder
            print(f"serving: polling {registry.model_base_path} failed: {error}", flush=True)


def serve(model_base_path: Path, model_name: str | None = None, host: str = "127.0.0.1",
          grpc_port: int = 8500, rest_port: int = 8501, poll_seconds: float = 1.0) -> RunningServer:
    """Load what the store holds, then serve gRPC and REST in background threads.

    Port 0 picks a free port; the ports bound are in the result.
    """
    if model_name is not None and (not model_name or "/" in model_name or model_name.startswith(".")):
        raise InputError(f"--model-name '{model_name}' is not a model folder name")
    if poll_seconds <= 0:
        raise InputError(f"--poll-seconds must be positive, got {poll_seconds}")
    registry = ModelRegistry(Path(model_base_path), model_name)
    registry.poll()
    grpc_server, grpc_bound = start_grpc(registry, host, grpc_port)
    try:
        rest_server = RestServer((host, rest_port), registry)
    except OSError as error:
        grpc_server.stop(grace=None)
        raise InputError(f"--rest-port {rest_port}: cannot listen on {host}:{rest_port} ({error})") from error
    threading.Thread(target=rest_server.serve_forever, name="rest", daemon=True).start()
    stop_polling = threading.Event()
    threading.Thread(target=poll_forever, args=(registry, poll_seconds, stop_polling),
                     name="poller", daemon=True).start()
    return RunningServer(registry, grpc_server, rest_server, grpc_bound, rest_server.server_address[1], stop_polling)


def describe(running: RunningServer, host: str) -> str:
    registry = running.registry
    served = ", ".join(f"{name} version {model.version}" for name, model in sorted(registry.served.items()))
    lines = [f"model store: {registry.model_base_path.resolve()}",
             f"serving: {served}" if served else
             "serving: nothing yet; waiting for a version to be deployed (e.g. make run PARAMS=\"threshold=0.5\")",
             f"gRPC: tensorflow.serving.PredictionService on {host}:{running.grpc_port}",
             f"REST: http://{host}:{running.rest_port}/v1/models/<name>  (:predict, /metadata)",
             "new versions are picked up without a restart; Ctrl-C stops"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.serving_local",
        description="Serve the local model store with TF-Serving's gRPC and REST APIs (offline stand-in "
                    "for TF-Serving; on a cluster the real TF-Serving serves).")
    parser.add_argument("--model-base-path", type=Path, default=Path("model_store"),
                        help="the store: <model-base-path>/<model-name>/<N>/ (default: model_store)")
    parser.add_argument("--model-name", default=None, help="serve only this model (default: every model in the store)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--grpc-port", type=int, default=8500)
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for new versions")
    args = parser.parse_args(argv)
    try:
        running = serve(args.model_base_path, args.model_name, args.host, args.grpc_port, args.rest_port,
                        args.poll_seconds)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    print(describe(running, args.host), flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    print("serving: stopping", flush=True)
    running.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
