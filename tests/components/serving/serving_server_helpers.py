"""What the local TF-Serving stand-in's tests share: the models, the running server and the clients.

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
from tensorflow_serving.apis import predict_pb2

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


def wait_for(condition, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not true within {seconds}s")
