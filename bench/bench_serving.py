"""Throughput and latency of the local server over loopback (127.0.0.1 only).

    python bench/bench_serving.py [--model-base-path DIR --model-name NAME]
                                  [--requests 1000] [--seconds 5] [--batches 1,32,256]

The server runs in its own process (`python -m pipelines serve`), as
`make serve` runs it. One client sends requests one after another over a kept
connection, for each transport (gRPC with the official stubs, REST with JSON
in row format) and batch size, until `--requests` are answered or `--seconds`
have passed. Reported: requests/s, rows/s, p50 and p99 latency.

By default the store is a temporary one holding an sp500 DeepModel exported
with the pipeline's own export function (untrained: serving cost does not
depend on the weights). On a 2-core machine client and server share the CPU,
so the figures are a floor for a dedicated server.
"""

import argparse
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results import recorded  # this script's folder is on the path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WARMUP_REQUESTS = 20
STARTUP_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def export_sp500_model(store: Path) -> None:
    from components.store.folder import publish_version
    from pipelines.sp500.models import build_model, export_saved_model

    train = np.random.default_rng(0).normal(0, 0.01, size=(256, 6)).astype(np.float32)
    export_saved_model(build_model("deep", train, 0.001), store.parent / "export", "bench")
    publish_version(store.parent / "export", store, "sp500")


def wait_until_serving(rest_port: int, model_name: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=2)
            connection.request("GET", f"/v1/models/{model_name}")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"no model '{model_name}' served within {STARTUP_SECONDS}s")


def input_width(rest_port: int, model_name: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", rest_port)
    connection.request("GET", f"/v1/models/{model_name}/metadata")
    document = json.loads(connection.getresponse().read())
    signature = document["metadata"]["signature_def"]["signature_def"]["serving_default"]
    (spec,) = signature["inputs"].values()
    return int(spec["tensor_shape"]["dim"][-1]["size"])


def measure(send, max_requests: int, max_seconds: float) -> list[float]:
    for _ in range(WARMUP_REQUESTS):
        send()
    latencies = []
    deadline = time.perf_counter() + max_seconds
    while len(latencies) < max_requests and time.perf_counter() < deadline:
        started = time.perf_counter()
        send()
        latencies.append(time.perf_counter() - started)
    return latencies


def grpc_sender(port: int, model_name: str, features: np.ndarray):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.inputs["features"].CopyFrom(tf.make_tensor_proto(features))

    def send():
        stub.Predict(request, timeout=30)

    return send


def rest_sender(port: int, model_name: str, features: np.ndarray):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps({"instances": features.tolist()})
    headers = {"Content-Type": "application/json"}

    def send():
        connection.request("POST", f"/v1/models/{model_name}:predict", body, headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise SystemExit(f"REST {response.status}: {payload[:200]!r}")

    return send


def run(args: argparse.Namespace, store: Path) -> None:
    grpc_port, rest_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "serve", "--model-base-path", str(store),
         "--model-name", args.model_name, "--host", "127.0.0.1",
         "--grpc-port", str(grpc_port), "--rest-port", str(rest_port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        wait_until_serving(rest_port, args.model_name, server)
        print(f"server ready in {time.monotonic() - started:.1f}s (process start, TensorFlow import, model load)")
        width = input_width(rest_port, args.model_name)
        rng = np.random.default_rng(0)
        print(f"{'transport':<9} {'batch':>5} {'requests':>8} {'req/s':>8} {'rows/s':>9} {'p50 ms':>7} {'p99 ms':>7}")
        for transport, make_sender, port in (("gRPC", grpc_sender, grpc_port), ("REST", rest_sender, rest_port)):
            for batch in args.batches:
                features = rng.normal(0, 0.01, size=(batch, width)).astype(np.float32)
                latencies = np.array(measure(make_sender(port, args.model_name, features),
                                             args.requests, args.seconds))
                rate = len(latencies) / latencies.sum()
                print(f"{transport:<9} {batch:>5} {len(latencies):>8} {rate:>8.0f} {rate * batch:>9.0f} "
                      f"{np.percentile(latencies, 50) * 1e3:>7.2f} {np.percentile(latencies, 99) * 1e3:>7.2f}",
                      flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-base-path", type=Path,
                        help="a model store to serve (default: a temporary sp500 model)")
    parser.add_argument("--model-name", default="sp500")
    parser.add_argument("--requests", type=int, default=1000, help="at most this many timed requests per case")
    parser.add_argument("--seconds", type=float, default=5.0, help="at most this long per case")
    parser.add_argument("--batches", type=lambda text: [int(b) for b in text.split(",")], default=[1, 32, 256])
    args = parser.parse_args()
    if args.model_base_path:
        run(args, args.model_base_path)
        return
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store"
        export_sp500_model(store)
        run(args, store)


if __name__ == "__main__":
    with recorded("bench_serving", measures=["components/serving/*.py", "pipelines/sp500/models.py"]):
        main()
