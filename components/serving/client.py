"""gRPC and REST clients for TF-Serving's APIs (the local server's or a cluster's)."""

import http.client
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np

from components.common.errors import InputError, ServingError

DEFAULT_PORTS = {"grpc": 8500, "rest": 8501}
NUMPY_DTYPES = {
    "DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_HALF": np.float16,
    "DT_INT8": np.int8, "DT_INT16": np.int16, "DT_INT32": np.int32, "DT_INT64": np.int64,
    "DT_UINT8": np.uint8, "DT_BOOL": np.bool_,
}


class RequestFailed(ServingError):
    """The server answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | str | None = None):
        super().__init__(message)
        self.status = status  # the HTTP code or gRPC code name, when the server answered


# --- what the server says about the model -------------------------------------------


@dataclass
class TensorSpec:
    dtype: str  # a DataType name, e.g. DT_FLOAT
    shape: list[int]  # -1 for any size; [] when the rank is unknown


@dataclass
class Signature:
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def single_input(self) -> tuple[str, TensorSpec]:
        if len(self.inputs) != 1:
            raise InputError(f"the served signature takes {len(self.inputs)} inputs "
                             f"({', '.join(self.inputs)}); this client builds requests for one")
        return next(iter(self.inputs.items()))


def signature_from_json(signature: dict) -> Signature:
    """A SignatureDef as TF-Serving writes it in JSON (metadata over REST, or a proto made JSON)."""
    def specs(infos: dict) -> dict[str, TensorSpec]:
        return {name: TensorSpec(info.get("dtype", "DT_INVALID"),
                                 [int(d.get("size", -1)) for d in info.get("tensor_shape", {}).get("dim", [])])
                for name, info in infos.items()}

    return Signature(specs(signature.get("inputs", {})), specs(signature.get("outputs", {})))


@dataclass
class Request:
    """What a client sends: the inputs, and what they are for the printout."""
    inputs: dict[str, np.ndarray]
    about: str  # what was sent
    truth: str = ""  # the known answer, when the request comes from labelled data


@dataclass
class Answer:
    served_version: int | None  # the store version N that answered, when the API says it
    outputs: dict[str, np.ndarray]


# --- transports -------------------------------------------------------------------------


NOT_REST = ("did not answer as TF-Serving's REST API{detail}: is it the gRPC port? "
            "Use --grpc, or the REST port (8501 by default)")
NOT_FOUND = ("{where} serves no model '{name}'{detail}: check --model / --model-name "
             "(`make serve` lists what it serves)")


class RestClient:
    def __init__(self, host: str, port: int, timeout: float):
        self.address = f"{host}:{port}"
        self.base = f"http://{host}:{port}/v1/models"
        self.timeout = timeout

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method="POST" if data else "GET",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            message = error_text(error.read())
            if error.code == 404 and "Latest(" in message:  # TF-Serving: no version of that name
                raise RequestFailed(NOT_FOUND.format(where=f"REST {self.address}", name=path.split("/")[1]
                                                     .split(":")[0], detail=f" ({message})"), 404) from error
            raise RequestFailed(f"REST {error.code} from {self.base}{path}: {message}", error.code) from error
        except (http.client.HTTPException, ValueError) as error:
            # A gRPC port answers HTTP/1 with HTTP/2 frames (BadStatusLine); another server, not JSON.
            raise RequestFailed(f"{self.address} " + NOT_REST.format(detail=f" ({type(error).__name__})")) from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RequestFailed(f"cannot reach {self.base}{path} ({reason}); is a server running? "
                                "Start one with `make serve` (or port-forward TF-Serving)") from error

    @staticmethod
    def _version_path(version: int | None, label: str | None = None) -> str:
        if label:
            return f"/labels/{label}"
        return f"/versions/{version}" if version is not None else ""

    def metadata(self, name: str, version: int | None, label: str | None = None) -> tuple[int, Signature]:
        document = self._call(f"/{name}{self._version_path(version, label)}/metadata")
        try:
            signatures = document["metadata"]["signature_def"]["signature_def"]
            return int(document["model_spec"]["version"]), signature_from_json(signatures["serving_default"])
        except (KeyError, TypeError, ValueError) as error:
            raise RequestFailed(f"{self.address} " + NOT_REST.format(
                detail=f" (its metadata has no {error})")) from error

    def predict(self, name: str, version: int | None, inputs: dict[str, np.ndarray],
                signature: Signature, label: str | None = None) -> Answer:
        # Row format ("instances"), the form most TF-Serving REST clients send.
        input_name = next(iter(inputs))
        document = self._call(f"/{name}{self._version_path(version, label)}:predict",
                              {"instances": inputs[input_name].tolist()})
        rows = document["predictions"]
        if len(signature.outputs) == 1:
            return Answer(None, {next(iter(signature.outputs)): np.asarray(rows)})
        return Answer(None, {key: np.asarray([row[key] for row in rows]) for key in rows[0]})


def error_text(body: bytes) -> str:
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")[:300]


class GrpcClient:
    """TF-Serving's PredictionService through the official generated stubs."""

    def __init__(self, host: str, port: int, timeout: float):
        import grpc

        from components.common.quiet_tensorflow import import_tensorflow_quietly

        import_tensorflow_quietly()  # the stubs' messages are TensorFlow's protos
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.address = f"{host}:{port}"
        self.timeout = timeout
        self.channel = grpc.insecure_channel(self.address, options=[("grpc.max_receive_message_length", -1)])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def _call(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND and "Latest(" in (error.details() or ""):
                raise RequestFailed(NOT_FOUND.format(where=f"gRPC {self.address}", name=request.model_spec.name,
                                                     detail=f" ({error.details()})"), "NOT_FOUND") from error
            hint = ("; is a server running? Start one with `make serve` (or port-forward TF-Serving)"
                    if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) else "")
            # An HTTP/1 server answers the HTTP/2 preface with text: "got frame type 79" ('O' of "HTTP/1.").
            if re.search(r"http1|http/1|as the first frame", error.details() or "", re.IGNORECASE):
                hint = "; it speaks HTTP/1: is it the REST port? Use --rest, or the gRPC port (8500 by default)"
            raise RequestFailed(f"gRPC {error.code().name} from {self.address}: {error.details()}{hint}",
                                error.code().name) from error

    @staticmethod
    def _model_spec(spec, name: str, version: int | None, label: str | None = None) -> None:
        spec.name = name
        if label:
            spec.version_label = label
        elif version is not None:
            spec.version.value = version

    def metadata(self, name: str, version: int | None, label: str | None = None) -> tuple[int, Signature]:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._model_spec(request.model_spec, name, version, label)
        response = self._call(self.stub.GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        if "serving_default" not in signatures.signature_def:
            raise RequestFailed(f"{name} has no serving_default signature")
        as_json = json_format.MessageToDict(signatures.signature_def["serving_default"],
                                            preserving_proto_field_name=True)
        return response.model_spec.version.value, signature_from_json(as_json)

    def predict(self, name: str, version: int | None, inputs: dict[str, np.ndarray],
                signature: Signature, label: str | None = None) -> Answer:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec, name, version, label)
        for input_name, value in inputs.items():
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
        response = self._call(self.stub.Predict, request)
        outputs = {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}
        return Answer(response.model_spec.version.value, outputs)


