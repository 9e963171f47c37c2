"""TF-Serving's REST JSON API: its routes, status and metadata answers, and the HTTP server
(the JSON formats themselves: `components.serving.rest_json`)."""

import json
import re
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import (
    model_pb2,
)

from components.serving.grpc_api import model_status_response
from components.serving.loaded_models import ModelRegistry
from components.serving.metrics import CONTENT_TYPE
from components.serving.prediction import predict, signature_def_map
from components.serving.rest_json import columnar_to_inputs, instances_to_inputs, outputs_to_json, snippet
from components.serving.servables import (
    DEFAULT_SIGNATURE,
    HTTP_STATUS,
    RequestRefused,
    invalid,
)
from components.store.serving_config import MONITORING_PATH

# --- REST: TF-Serving's JSON API ---------------------------------------------------------

# The largest request body accepted (some 8,000 MNIST images written as JSON numbers);
# a larger one is answered 413 from its Content-Length, before any of it is read.
MAX_BODY_BYTES = 32 * 1024 * 1024
LINGER_S = 1.0  # after refusing a body: how long to drain it so the client reads the answer

PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.I)
STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.I)


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


