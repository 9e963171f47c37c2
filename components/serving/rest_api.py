"""TF-Serving's REST JSON API."""

import base64
import json
import re
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import grpc
import numpy as np
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    model_pb2,
)

from components.serving.grpc_api import model_status_response
from components.serving.loaded_models import ModelRegistry
from components.serving.metrics import CONTENT_TYPE
from components.serving.prediction import predict, signature_def_map
from components.serving.servables import (
    DEFAULT_SIGNATURE,
    HTTP_STATUS,
    RequestRefused,
    dtype_name,
    invalid,
    numpy_dtype,
)
from components.store.serving_config import MONITORING_PATH

# --- REST: TF-Serving's JSON API ---------------------------------------------------------

# The largest request body accepted (some 8,000 MNIST images written as JSON numbers);
# a larger one is answered 413 from its Content-Length, before any of it is read.
MAX_BODY_BYTES = 32 * 1024 * 1024
LINGER_S = 1.0  # after refusing a body: how long to drain it so the client reads the answer

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


def rest_predict(registry: ModelRegistry, name: str, version: int | None, label: str | None, body: bytes,
                 outcome) -> dict:
    request = parse_json_body(body)
    signature_name = request.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid(f"JSON Value: {snippet(request)} not formatted correctly. "
                      "'signature_name' key must be a string value.")
    model = registry.get(name, version, label)
    outcome.version = model.version
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
        if verb.lower() != "predict":
            raise RequestRefused(grpc.StatusCode.UNIMPLEMENTED,
                               f"{verb} is not offered by this local server: the models here have predict signatures")
        with registry.metrics.request(unquote(name), "predict", "REST") as outcome:
            try:
                return rest_predict(registry, unquote(name), int(version) if version else None,
                                    unquote(label) if label else None, body, outcome)
            except RequestRefused as error:
                outcome.status = error.code.name
                raise
    if method == "GET" and (match := STATUS_PATH.fullmatch(path)):
        name, version, label, metadata = match.groups()
        if not name:
            raise invalid("Missing model name in request.")
        version_number = int(version) if version else None
        if label:
            version_number = registry.version_for_label(unquote(name), unquote(label))
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
            raise RequestRefused(grpc.StatusCode.NOT_FOUND, f"no handler for {path}: the API is under /v1/models/")
        return HTTPStatus.OK, rest_route(registry, method, path, body)
    except RequestRefused as error:
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
        if urlsplit(self.path).path == MONITORING_PATH:
            self.respond_bytes(HTTPStatus.OK, self.server.registry.metrics.exposition(), CONTENT_TYPE)
            return
        self.respond(*handle_rest(self.server.registry, "GET", self.path, b""))

    def do_POST(self):
        length = self.body_length()
        if length is not None:
            body = self.rfile.read(length)
            self.respond(*handle_rest(self.server.registry, "POST", self.path, body))

    def handle_expect_100(self) -> bool:
        """`Expect: 100-continue`: refuse a bad or oversized body before the client sends it."""
        return self.body_length() is not None and super().handle_expect_100()

    def body_length(self) -> int | None:
        """The body's announced size, or None after answering 400/413 without reading it.

        Both answers close the connection: the unread body cannot be taken for the next request.
        """
        if getattr(self, "refused", False):
            return None
        text = self.headers.get("Content-Length")
        if text is None:
            return 0
        if not text.strip().isdigit():  # int() would take "-5", " 1_000 " and "+3"
            self.refuse(HTTPStatus.BAD_REQUEST, f"Content-Length {text!r} is not a number of bytes")
            return None
        if int(text) > MAX_BODY_BYTES:
            self.refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"request body of {int(text)} bytes is above the limit of {MAX_BODY_BYTES} bytes")
            return None
        return int(text)

    def refuse(self, status: HTTPStatus, message: str) -> None:
        self.refused = True
        self.close_connection = True
        self.respond(status, {"error": message}, close=True)
        # A lingering close: read (and drop) what the client is still sending for a
        # moment, so that closing with unread data does not reset the connection
        # before the client has read the answer.
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_S)
            deadline = time.monotonic() + LINGER_S
            while time.monotonic() < deadline and self.rfile.read1(1 << 16):
                pass
        except OSError:
            pass

    def respond(self, status: HTTPStatus, document: dict, close: bool = False) -> None:
        self.respond_bytes(status, json.dumps(document).encode(), "application/json", close)

    def respond_bytes(self, status: HTTPStatus, payload: bytes, content_type: str, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        pass  # one line per request would drown the load/unload log; errors come back to the client


class RestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: ModelRegistry):
        super().__init__(address, RestHandler)
        self.registry = registry


