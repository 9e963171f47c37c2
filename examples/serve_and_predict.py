"""Serve a model store with the project's model server, ask it for predictions, stop it.

The server (components/serving/server.py) speaks TF-Serving's gRPC and REST APIs over
the store's `<model_name>/<N>/` folders, so the same clients (components/serving/client.py)
query it here or a TF-Serving on a cluster. Serve the store run_locally.py filled:

    python examples/serve_and_predict.py --model-base-path /tmp/my-run/model_store --model-name my-sp500

(`make serve` runs the same server on its own, until Ctrl-C.)
"""

import argparse
from pathlib import Path

import numpy as np

from components.common.errors import InputError
from components.common.quiet_tensorflow import import_tensorflow_quietly
from components.serving.client import GrpcClient, RestClient
from components.serving.server import serve

HOST = "127.0.0.1"


def predict(model_base_path: Path, model_name: str) -> list[str]:
    """Start the server on free ports, query it over REST and gRPC; one line per answer."""
    import_tensorflow_quietly()  # the server loads SavedModels with TensorFlow
    server = serve(model_base_path, model_name, HOST, grpc_port=0, rest_port=0)  # port 0: any free port
    try:
        lines = []
        for client in (RestClient(HOST, server.rest_port, timeout=30), GrpcClient(HOST, server.grpc_port, timeout=30)):
            # The model's signature says its input's name and width; version None: what serves as stable.
            version, signature = client.metadata(model_name, None)
            input_name, spec = signature.single_input()
            # The sp500 model takes lagged daily log returns: one day after 1% rises, one after 1% falls.
            days = np.array([[0.01] * spec.shape[-1], [-0.01] * spec.shape[-1]], np.float32)
            answer = client.predict(model_name, None, {input_name: days}, signature)
            for day, predicted, probability in zip(("after rises", "after falls"), answer.outputs["predicted_class"],
                                                   answer.outputs["probability"], strict=True):
                lines.append(f"{type(client).__name__} {model_name} version {version}, {day}: "
                             f"class {int(predicted)} (probability {float(probability):.3f})")
        return lines
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base-path", type=Path, default=Path("model_store"), help="the store's root")
    parser.add_argument("--model-name", default="my-sp500")
    args = parser.parse_args()
    print("\n".join(predict(args.model_base_path, args.model_name)))


if __name__ == "__main__":
    try:
        main()
    except InputError as error:  # bad input: one line, as the project's command line says it
        raise SystemExit(f"error: {error}") from None
