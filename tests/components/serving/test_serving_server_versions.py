"""The local TF-Serving stand-in's model versions: new and broken ones while serving, labels and metrics, start-up."""

import json
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_cli
from serving_server_helpers import (
    FEATURES,
    expected_outputs,
    grpc_channel,
    post_json,
    predict_request,
    rest,
    wait_for,
)
from serving_server_helpers import exports as exports  # a fixture: the alias marks it as used by name
from tensorflow_serving.apis import prediction_service_pb2_grpc

from components.common.errors import InputError
from components.serving import server as local_server
from components.store.folder import publish_version

# --- deploying while serving ---------------------------------------------------------


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
