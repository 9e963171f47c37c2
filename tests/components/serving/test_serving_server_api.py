"""The local TF-Serving stand-in's gRPC and REST APIs, its JSON codec and its request limits."""

import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from serving_server_helpers import (
    FEATURES,
    N_FEATURES,
    expected_outputs,
    grpc_channel,
    post_json,
    predict_request,
    rest,
)
from serving_server_helpers import exports as exports  # fixtures: the alias marks them as used by name
from serving_server_helpers import server as server
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from components.serving import rest_api, rest_json, servables

# --- gRPC -------------------------------------------------------------------------


def test_grpc_predict_answers_like_the_saved_model_and_names_the_version(server, exports):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel(server))
    response = stub.Predict(predict_request("sp500", FEATURES), timeout=30)
    expected = expected_outputs(exports["v1"], FEATURES)

    assert response.model_spec.name == "sp500"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    # Typed fields, as TF-Serving answers, so clients reading float_val work.
    assert list(response.outputs["probability"].float_val) == pytest.approx(expected["probability"].tolist())
    assert list(response.outputs["predicted_class"].int64_val) == expected["predicted_class"].tolist()
    assert tf.make_ndarray(response.outputs["model_version"]).tolist() == [b"tag-v1"] * len(FEATURES)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected["probabilities"],
                               rtol=1e-6)


def test_grpc_output_filter_returns_only_what_was_asked(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel(server))
    request = predict_request("sp500", FEATURES)
    request.output_filter.append("predicted_class")
    assert set(stub.Predict(request, timeout=30).outputs) == {"predicted_class"}


def test_grpc_metadata_reports_the_signature(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel(server))
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "sp500"
    response = stub.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    serving = signatures.signature_def["serving_default"]

    assert response.model_spec.version.value == 1
    assert [d.size for d in serving.inputs["features"].tensor_shape.dim] == [-1, N_FEATURES]
    assert serving.inputs["features"].dtype == tf.float32.as_datatype_enum
    assert set(serving.outputs) == {"predicted_class", "probability", "probabilities", "model_version"}


def test_grpc_model_status(server):
    stub = model_service_pb2_grpc.ModelServiceStub(grpc_channel(server))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "sp500"
    (status,) = stub.GetModelStatus(request, timeout=30).model_version_status
    assert (status.version, status.state) == (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)


@pytest.mark.parametrize("case, code", [
    ("wrong width", grpc.StatusCode.INVALID_ARGUMENT),
    ("wrong dtype", grpc.StatusCode.INVALID_ARGUMENT),
    ("wrong input name", grpc.StatusCode.INVALID_ARGUMENT),
    ("no inputs", grpc.StatusCode.INVALID_ARGUMENT),
    ("unknown output", grpc.StatusCode.INVALID_ARGUMENT),
    ("unknown model", grpc.StatusCode.NOT_FOUND),
    ("unknown version", grpc.StatusCode.NOT_FOUND),
    ("unknown signature", grpc.StatusCode.FAILED_PRECONDITION),
])
def test_grpc_malformed_requests_get_tf_serving_status_codes(server, case, code):
    request = predict_request("sp500", FEATURES)
    if case == "wrong width":
        request = predict_request("sp500", FEATURES[:, :4])
    elif case == "wrong dtype":
        request = predict_request("sp500", FEATURES.astype(np.float64))
    elif case == "wrong input name":
        request.inputs["prices"].CopyFrom(request.inputs["features"])
        del request.inputs["features"]
    elif case == "no inputs":
        request.inputs.clear()
    elif case == "unknown output":
        request.output_filter.append("tomorrow")
    elif case == "unknown model":
        request = predict_request("nasdaq", FEATURES)
    elif case == "unknown version":
        request = predict_request("sp500", FEATURES, version=9)
    elif case == "unknown signature":
        request.model_spec.signature_name = "train"
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel(server))
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(request, timeout=30)
    assert raised.value.code() == code, raised.value.details()
    # The server is still there and still right.
    assert stub.Predict(predict_request("sp500", FEATURES), timeout=30).model_spec.version.value == 1


def test_grpc_metadata_without_a_field_is_invalid(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel(server))
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "sp500"
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetModelMetadata(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- REST -------------------------------------------------------------------------


def test_rest_row_format_matches_grpc(server, exports):
    status, document = post_json(server, "/v1/models/sp500:predict", {"instances": FEATURES.tolist()})
    expected = expected_outputs(exports["v1"], FEATURES)

    assert status == 200
    rows = document["predictions"]
    assert [row["predicted_class"] for row in rows] == expected["predicted_class"].tolist()
    assert [row["probability"] for row in rows] == pytest.approx(expected["probability"].tolist(), rel=1e-6)
    assert {row["model_version"] for row in rows} == {"tag-v1"}


def test_rest_columnar_format_and_explicit_version(server, exports):
    status, document = post_json(server, "/v1/models/sp500/versions/1:predict", {"inputs": FEATURES.tolist()})
    expected = expected_outputs(exports["v1"], FEATURES)

    assert status == 200
    outputs = document["outputs"]
    assert outputs["predicted_class"] == expected["predicted_class"].tolist()
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=1e-6)


def test_rest_float32_outputs_are_written_shortest(server):
    _, document = post_json(server, "/v1/models/sp500:predict", {"instances": FEATURES[:1].tolist()})
    probability = document["predictions"][0]["probability"]
    # 0.7310586, as TF-Serving writes a float32, not the double 0.7310585975646973.
    assert repr(probability) == str(np.float32(probability))


def test_rest_status_and_metadata(server):
    status, document = rest(server, "GET", "/v1/models/sp500")
    assert status == 200
    assert document["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]

    status, document = rest(server, "GET", "/v1/models/sp500/metadata")
    assert status == 200
    assert document["model_spec"]["version"] == "1"
    serving = document["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert [d["size"] for d in serving["inputs"]["features"]["tensor_shape"]["dim"]] == ["-1", str(N_FEATURES)]


@pytest.mark.parametrize("path, body, code, message", [
    ("/v1/models/sp500:predict", b'{"instances": [[1, 2', 400, "JSON Parse error"),
    ("/v1/models/sp500:predict", b"", 400, "The document is empty"),
    ("/v1/models/sp500:predict", b"[1, 2]", 400, "Is not object"),
    ("/v1/models/sp500:predict", b'{"instances": [[1, 2, 3]]}', 400, "shape [1,3]"),
    ("/v1/models/sp500:predict", b'{"instances": [[1, 2, 3, 4, 5, 6], [1, 2]]}', 400, "not a dense tensor"),
    ("/v1/models/sp500:predict", b'{"instances": [["up", 2, 3, 4, 5, 6]]}', 400, "not of expected type: float"),
    ("/v1/models/sp500:predict", b'{"instances": []}', 400, "No values in 'instances'"),
    ("/v1/models/sp500:predict", b'{"instances": [[1]], "inputs": [[1]]}', 400, "only one of"),
    ("/v1/models/sp500:predict", b'{"rows": [[1]]}', 400, "Missing 'inputs' or 'instances' key"),
    ("/v1/models/sp500:predict", b'{"signature_name": "train", "inputs": [[1]]}', 400, "not found in signature def"),
    ("/v1/models/nasdaq:predict", b'{"instances": [[1, 2, 3, 4, 5, 6]]}', 404, "Servable not found"),
    ("/v1/models/sp500/versions/9:predict", b'{"instances": [[1, 2, 3, 4, 5, 6]]}', 404, "Specific(sp500, 9)"),
    ("/v1/models/sp500:explain", b"{}", 400, "Malformed request"),
])
def test_rest_malformed_requests_get_tf_serving_errors(server, path, body, code, message):
    status, document = rest(server, "POST", path, body)
    assert status == code
    assert message in document["error"]
    assert rest(server, "GET", "/v1/models/sp500")[0] == 200


def test_rest_unknown_model_status_and_paths(server):
    status, document = rest(server, "GET", "/v1/models/nasdaq")
    assert (status, document["error"]) == (404, "Could not find any versions of model nasdaq")
    assert rest(server, "GET", "/v1/models")[0] == 400
    assert rest(server, "GET", "/healthz")[0] == 404


# --- the JSON codec, without a server ---------------------------------------------------


def test_named_instances_and_base64_strings_follow_the_rest_api():
    from tensorflow.core.framework import types_pb2

    infos = {"image_bytes": servables.tensor_info(types_pb2.DT_STRING, [-1], "image_bytes"),
             "scale": servables.tensor_info(types_pb2.DT_FLOAT, [-1, 2], "scale")}
    inputs = rest_json.instances_to_inputs(
        [{"image_bytes": {"b64": "AAEC"}, "scale": [1, 2.5]}, {"image_bytes": {"b64": "/w=="}, "scale": [0, 1]}],
        infos)
    assert inputs["image_bytes"].tolist() == [b"\x00\x01\x02", b"\xff"]
    assert inputs["scale"].dtype == np.float32 and inputs["scale"].shape == (2, 2)

    with pytest.raises(servables.RequestRefused, match="keys must be equal to"):
        rest_json.instances_to_inputs([{"scale": [1, 2]}], infos)
    with pytest.raises(servables.RequestRefused, match="plain list"):
        rest_json.instances_to_inputs([[1, 2]], infos)

    document = rest_json.outputs_to_json(
        {"thumb_bytes": np.array([b"\xff"], dtype=object), "label": np.array([b"seven"], dtype=object)},
        row_format=True)
    assert document == {"predictions": [{"label": "seven", "thumb_bytes": {"b64": "/w=="}}]}


# --- request limits ------------------------------------------------------------------

def raw_exchange(running, head: bytes, body_part: bytes = b"") -> bytes:
    """Send `head` (and a first part of the body) on a new connection; return all it answers."""
    import socket

    with socket.create_connection(("127.0.0.1", running.rest_port), timeout=10) as connection:
        connection.sendall(head + body_part)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def json_answer(answer: bytes) -> tuple[str, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode().splitlines()[0], json.loads(body)


def still_serving(running) -> bool:
    return rest(running, "GET", "/v1/models/sp500")[0] == 200


def test_a_body_above_the_limit_gets_413_before_it_is_read(server):
    announced = rest_api.MAX_BODY_BYTES + 1
    head = (f"POST /v1/models/sp500:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {announced}\r\n\r\n").encode()
    # The rest never comes: a server waiting for it (60 s of silence allowed) would let raw_exchange's
    # 10 s socket timeout fail this test, so an answer at all means it was not waited for.
    status, document = json_answer(raw_exchange(server, head, b"[" * 65536))
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert document == {"error": f"request body of {announced} bytes is above the limit of "
                                 f"{rest_api.MAX_BODY_BYTES} bytes"}
    assert still_serving(server)


def test_a_large_body_sent_in_full_still_gets_its_413(server):
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}/v1/models/sp500:predict",
                                     data=b" " * (rest_api.MAX_BODY_BYTES + 1024), method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413 and "above the limit" in json.loads(refused.value.read())["error"]
    assert still_serving(server)


def test_expect_100_continue_is_refused_before_the_body_is_sent(server):
    head = (f"POST /v1/models/sp500:predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            f"Content-Length: {rest_api.MAX_BODY_BYTES + 1}\r\n\r\n").encode()
    status, document = json_answer(raw_exchange(server, head))
    assert status.startswith("HTTP/1.1 413") and "above the limit" in document["error"]


@pytest.mark.parametrize("length", ["abc", "-5", "1_000", "", "12, 12"])
def test_a_malformed_content_length_gets_400_and_the_server_keeps_serving(server, length):
    head = (f"POST /v1/models/sp500:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
            '{"instances": [[0, 0, 0, 0, 0, 0]]}').encode()
    status, document = json_answer(raw_exchange(server, head))
    assert status == "HTTP/1.1 400 Bad Request"
    assert document == {"error": f"Content-Length {length!r} is not a number of bytes"}
    assert still_serving(server)


def test_a_body_within_the_limit_is_still_answered(server):
    code, document = post_json(server, "/v1/models/sp500:predict", {"instances": FEATURES.tolist()})
    assert code == 200 and len(document["predictions"]) == len(FEATURES)
