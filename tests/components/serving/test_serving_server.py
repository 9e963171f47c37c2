"""The local TF-Serving stand-in, queried the way clients query TF-Serving.

The server runs in this process on loopback, on ports the OS picks. Models
are small SavedModels exported with the sp500 pipeline's own export function,
so the signature under test is the one the pipeline deploys.
"""

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_cli
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from components.common.errors import InputError
from components.serving import rest_api, rest_json, servables
from components.serving import server as local_server
from components.store.folder import publish_version
from pipelines.sp500.models import build_model, export_saved_model

N_FEATURES = 6
FEATURES = np.random.default_rng(7).normal(0, 0.01, size=(3, N_FEATURES)).astype(np.float32)


def export_model(path: Path, model_type: str, seed: int, tag: str) -> Path:
    """An untrained model: its weights differ by seed, so two versions answer differently."""
    tf.keras.utils.set_random_seed(seed)
    train = np.random.default_rng(seed).normal(0, 0.01, size=(64, N_FEATURES)).astype(np.float32)
    export_saved_model(build_model(model_type, train, 0.01), path, tag)
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {"v1": export_model(root / "v1", "flat", 1, "tag-v1"),
            "v2": export_model(root / "v2", "deep", 2, "tag-v2")}


@pytest.fixture(scope="module")
def server(tmp_path_factory, exports):
    store = tmp_path_factory.mktemp("store")
    publish_version(exports["v1"], store, "sp500")
    running = local_server.serve(store, host="127.0.0.1", grpc_port=0, rest_port=0, poll_seconds=0.1)
    yield running
    running.stop()


def grpc_channel(running) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}")


def predict_request(name: str, features: np.ndarray, version: int | None = None) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["features"].CopyFrom(tf.make_tensor_proto(features))
    return request


def rest(running, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{running.rest_port}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_json(running, path: str, document) -> tuple[int, dict]:
    return rest(running, "POST", path, json.dumps(document).encode())


def expected_outputs(export: Path, features: np.ndarray) -> dict[str, np.ndarray]:
    signature = tf.saved_model.load(str(export)).signatures["serving_default"]
    return {name: value.numpy() for name, value in signature(features=tf.constant(features)).items()}


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


# --- deploying while serving ---------------------------------------------------------


def wait_for(condition, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not true within {seconds}s")


def test_a_new_version_is_served_without_restart(tmp_path, exports):
    store = tmp_path / "store"
    publish_version(exports["v1"], store, "sp500")
    running = local_server.serve(store, host="127.0.0.1", grpc_port=0, rest_port=0, poll_seconds=0.05)
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel(running))
        before = stub.Predict(predict_request("sp500", FEATURES), timeout=30)
        assert before.model_spec.version.value == 1

        publish_version(exports["v2"], store, "sp500")
        after = wait_for(lambda: (r := stub.Predict(predict_request("sp500", FEATURES), timeout=30))
                         .model_spec.version.value == 2 and r)

        expected = expected_outputs(exports["v2"], FEATURES)
        assert tf.make_ndarray(after.outputs["model_version"])[0] == b"tag-v2"
        np.testing.assert_allclose(tf.make_ndarray(after.outputs["probabilities"]), expected["probabilities"],
                                   rtol=1e-6)
        assert not np.allclose(tf.make_ndarray(after.outputs["probabilities"]),
                               tf.make_ndarray(before.outputs["probabilities"]))
        _, document = post_json(running, "/v1/models/sp500:predict", {"instances": FEATURES.tolist()})
        assert document["predictions"][0]["model_version"] == "tag-v2"
        _, status = rest(running, "GET", "/v1/models/sp500")
        assert [(s["version"], s["state"]) for s in status["model_version_status"]] == [("2", "AVAILABLE"),
                                                                                        ("1", "END")]
    finally:
        running.stop()


def test_a_broken_version_leaves_the_previous_one_serving(tmp_path, exports):
    store = tmp_path / "store"
    publish_version(exports["v1"], store, "sp500")
    running = local_server.serve(store, host="127.0.0.1", grpc_port=0, rest_port=0, poll_seconds=0.02)
    try:
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "notes.txt").write_text("not a model")
        publish_version(broken, store, "sp500")
        _, status = wait_for(lambda: (s := rest(running, "GET", "/v1/models/sp500/versions/2"))[0] == 200 and s)
        (entry,) = status["model_version_status"]
        assert entry["state"] == "END" and "no SavedModel" in entry["status"]["error_message"]
        code, document = post_json(running, "/v1/models/sp500:predict", {"instances": FEATURES.tolist()})
        assert code == 200 and document["predictions"][0]["model_version"] == "tag-v1"
    finally:
        running.stop()


def test_a_lightgbm_version_is_served_with_a_features_signature(tmp_path):
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 5))
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 4},
                        lgb.Dataset(features, label=features[:, 0] * 2 + rng.normal(0, 0.1, 200)),
                        num_boost_round=10)
    version = tmp_path / "export"
    version.mkdir()
    booster.save_model(str(version / "model.bst"))
    (version / "features.json").write_text(json.dumps([f"f{i}" for i in range(5)]))
    publish_version(version, tmp_path / "store", "crypto")
    running = local_server.serve(tmp_path / "store", "crypto", host="127.0.0.1", grpc_port=0, rest_port=0)
    try:
        code, document = post_json(running, "/v1/models/crypto:predict", {"instances": features[:4].tolist()})
        assert code == 200
        np.testing.assert_allclose(document["predictions"], booster.predict(features[:4]), rtol=1e-12)
        code, document = post_json(running, "/v1/models/crypto:predict", {"instances": [[1.0, 2.0]]})
        assert code == 400 and "shape [1,2]" in document["error"]
    finally:
        running.stop()


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
    started = time.monotonic()
    status, document = json_answer(raw_exchange(server, head, b"[" * 65536))  # the rest never comes
    assert time.monotonic() - started < rest_api.LINGER_S + 5  # answered, not waiting for 32 MiB
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


# --------------------------------------------------------------------------- labels, canary, metrics

def tag_answered(document: dict) -> str:
    return document["predictions"][0]["model_version"]


def request_counts(running) -> dict[tuple[str, str, str, str], float]:
    """(model, version, entrypoint, status) -> requests, read from the Prometheus endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{running.rest_port}/monitoring/prometheus/metrics",
                                timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    counts = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == ":tensorflow:serving:request_count_total":
                labels = sample.labels
                counts[labels["model_name"], labels["version"], labels["entrypoint"], labels["status"]] = sample.value
            if sample.name == ":tensorflow:serving:request_latency_count":
                counts["latency", sample.labels["version"], sample.labels["entrypoint"], ""] = sample.value
    return counts


def test_canary_labels_over_rest_and_grpc_then_promote_and_rollback(tmp_path, exports):
    from components.store.folder import ServingLabels, write_labels
    from pipelines.cli import lifecycle

    store = tmp_path / "store"
    publish_version(exports["v1"], store, "sp500")
    publish_version(exports["v2"], store, "sp500")
    write_labels(store / "sp500", ServingLabels(stable=1, canary=2, canary_percent=20, known_versions=(1, 2)))
    running = local_server.serve(store, host="127.0.0.1", grpc_port=0, rest_port=0, poll_seconds=0.05)
    try:
        assert "sp500 versions 1 (stable), 2 (canary)" in local_server.describe(running, "127.0.0.1")
        body = {"instances": FEATURES.tolist()}
        assert tag_answered(post_json(running, "/v1/models/sp500/labels/stable:predict", body)[1]) == "tag-v1"
        assert tag_answered(post_json(running, "/v1/models/sp500/labels/canary:predict", body)[1]) == "tag-v2"
        status, unknown = post_json(running, "/v1/models/sp500/labels/beta:predict", body)
        assert (status, unknown) == (400, {"error": "Unrecognized servable version label: beta"})
        _, by_label = rest(running, "GET", "/v1/models/sp500/labels/stable/metadata")
        assert by_label["model_spec"]["version"] == "1"

        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel(running))
        for label, version in (("stable", 1), ("canary", 2)):
            request = predict_request("sp500", FEATURES)
            request.model_spec.version_label = label
            assert stub.Predict(request, timeout=30).model_spec.version.value == version
        # No version, no label: the highest version served, as TF-Serving answers.
        assert stub.Predict(predict_request("sp500", FEATURES), timeout=30).model_spec.version.value == 2
        request = predict_request("sp500", FEATURES)
        request.model_spec.version_label = "beta"
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predict(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        counts = request_counts(running)
        assert counts["sp500", "1", "REST", "OK"] == 1 and counts["sp500", "2", "REST", "OK"] == 1
        assert counts["sp500", "", "REST", "INVALID_ARGUMENT"] == 1
        assert counts["sp500", "1", "GRPC", "OK"] == 1 and counts["sp500", "2", "GRPC", "OK"] == 2
        assert counts["sp500", "", "GRPC", "INVALID_ARGUMENT"] == 1
        assert counts["latency", "2", "GRPC", ""] == 2, "every request is timed too"

        assert lifecycle.run_local("promote", "sp500", None, store).startswith("sp500: stable=2 (was")
        wait_for(lambda: set(running.registry.served["sp500"]) == {2})
        assert tag_answered(post_json(running, "/v1/models/sp500/labels/stable:predict", body)[1]) == "tag-v2"
        assert post_json(running, "/v1/models/sp500/labels/canary:predict", body)[0] == 400

        lifecycle.run_local("rollback", "sp500", 1, store)
        wait_for(lambda: set(running.registry.served["sp500"]) == {1})
        assert tag_answered(post_json(running, "/v1/models/sp500:predict", body)[1]) == "tag-v1"
    finally:
        running.stop()


def test_an_unknown_model_or_store_is_refused_at_start_naming_what_exists(tmp_path, exports):
    store = tmp_path / "store"
    publish_version(exports["v1"], store, "sp500")
    publish_version(exports["v1"], store, "mnist")
    with pytest.raises(InputError, match=r"--model-name 'sp50': .*store holds the models mnist, sp500"):
        local_server.serve(store, "sp50", grpc_port=0, rest_port=0)
    with pytest.raises(InputError, match=r"--model-base-path .*nope: no such folder"):
        local_server.serve(tmp_path / "nope", grpc_port=0, rest_port=0)


def test_wait_serves_a_store_and_model_that_come_later(tmp_path, exports):
    store = tmp_path / "store"
    running = local_server.serve(store, "sp500", host="127.0.0.1", grpc_port=0, rest_port=0, poll_seconds=0.05,
                                 wait=True)
    try:
        assert "waiting for a version" in local_server.describe(running, "127.0.0.1")
        publish_version(exports["v1"], store, "sp500")
        wait_for(lambda: rest(running, "GET", "/v1/models/sp500")[0] == 200)
    finally:
        running.stop()


def test_serve_on_the_command_line_says_the_error_in_one_line(tmp_path):
    result = run_cli("serve", "--model-base-path", str(tmp_path / "nope"), cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith("error: --model-base-path ")
    assert result.stderr.count("\n") == 1
