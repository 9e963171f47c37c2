"""The request client: ask a served model for a prediction, over gRPC or REST.

    python -m pipelines predict --model sp500 [--grpc | --rest] [--host H] [--port P] [--label stable|canary]
        [--random | --date YYYY-MM-DD | --image FILE | --index N]

It speaks TF-Serving's own APIs, so the same command queries the local server
(`python -m pipelines serve`, `make serve`) or a TF-Serving in a cluster
reached with `kubectl port-forward`. gRPC goes through the official
`tensorflow-serving-api` stubs; REST is plain JSON over HTTP. The request is
built from the model's signature, read first with GetModelMetadata (gRPC) or
`GET /v1/models/<name>/metadata` (REST): the input name, dtype and width come
from the server, not from assumptions here. It prints the predicted class, its
probability and the version that answered: the store version N the server
reports, and the `model_version` tag the model was trained under.

`--random` (the default) sends random values of the signature's shape. A
pipeline may add requests from its own data, with options of its own, and say
what its classes and outputs mean: its spec's `predict` (pipelines.spec.PredictSpec;
`pipelines/<name>/requests.py` builds them).
"""

import argparse
import sys

import numpy as np

from components.common.errors import InputError
from components.serving.client import (
    DEFAULT_PORTS,
    NUMPY_DTYPES,
    Answer,
    GrpcClient,
    Request,
    RequestFailed,
    RestClient,
    Signature,
)
from pipelines import registry
from pipelines.spec import PipelineSpec

HELP = "query a served model over gRPC or REST"

# --- requests from random or real data ---------------------------------------------------


def random_request(signature: Signature, seed: int) -> Request:
    """One example of random values shaped and typed as the signature says."""
    name, spec = signature.single_input()
    if spec.dtype not in NUMPY_DTYPES or not spec.shape:
        raise InputError(f"input '{name}' ({spec.dtype}, shape {spec.shape}) cannot be filled with random numbers")
    shape = [1] + [size if size > 0 else 1 for size in spec.shape[1:]]
    values = np.random.default_rng(seed).normal(0.0, 0.01, size=shape)
    return Request({name: values.astype(NUMPY_DTYPES[spec.dtype])}, f"random values, shape {shape}")


def build_request(args: argparse.Namespace, spec: PipelineSpec, signature: Signature) -> Request:
    """The request the options ask for: from a pipeline's own data, or random."""
    for other in registry.PIPELINES:
        requests = other.predict.requests
        if requests is not None and requests.asked(args):
            if other is not spec:
                verb = "applies" if len(requests.options) == 1 else "apply"
                raise InputError(f"{' and '.join(requests.options)} {verb} to --model {other.name} only")
            return requests.build(signature, args)
    return random_request(signature, args.seed)


# --- the printout ---------------------------------------------------------------------------


def first(outputs: dict[str, np.ndarray], key: str):
    value = np.asarray(outputs[key]).reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else value


def read_signature(client, args: argparse.Namespace, spec: PipelineSpec,
                   served_name: str) -> tuple[int | None, Signature]:
    try:
        return client.metadata(served_name, args.version, args.label)
    except RequestFailed as error:
        if spec.predict.signature is not None and error.status == 404:  # a server without metadata
            return None, spec.predict.signature()
        raise


def describe_answer(spec: PipelineSpec, served_name: str, answer: Answer, reported_version: int | None,
                    how: str, label: str | None = None) -> list[str]:
    outputs = answer.outputs
    if answer.served_version is not None:
        version = f"model store version {answer.served_version} (in the Predict response)"
    elif reported_version is not None:
        version = f"model store version {reported_version} (per the metadata endpoint)"
    else:
        version = "version not reported by this server"
    asked = f" for label '{label}'" if label else ""
    lines = [f"{served_name} answered over {how}{asked}: {version}"]
    if "model_version" in outputs:
        lines.append(f"model version tag: {first(outputs, 'model_version')}")
    if "predicted_class" in outputs:
        predicted = int(first(outputs, "predicted_class"))
        meaning = spec.predict.class_names.get(predicted, "")
        lines.append(f"predicted class: {predicted}" + (f" ({meaning})" if meaning else ""))
        if "probability" in outputs:
            lines.append(f"probability: {float(first(outputs, 'probability')):.4f}")
    scalars = {key: what for key, what in spec.predict.scalar_outputs.items() if key in outputs}
    for key, what in scalars.items():
        lines.append(f"{what}: {float(first(outputs, key)):+.6f}")
    for key in sorted(set(outputs) - {"model_version", "predicted_class", "probability", *scalars}):
        lines.append(f"{key}: {np.array2string(np.asarray(outputs[key])[0], precision=4)}")
    return lines


# --- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """predict's options, and every registered pipeline's options for requests from its data."""
    parser.add_argument("--model", required=True, choices=registry.names(), help="which pipeline's model")
    parser.add_argument("--model-name", help="the served model name (default: the same as --model)")
    rest_only = [spec.name for spec in registry.PIPELINES if spec.predict.transport == "rest"]
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--grpc", dest="transport", action="store_const", const="grpc",
                           help="TF-Serving gRPC PredictionService (default"
                                + (f", except {', '.join(rest_only)})" if rest_only else ")"))
    transport.add_argument("--rest", dest="transport", action="store_const", const="rest",
                           help="TF-Serving REST API")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, help="default: 8500 for gRPC, 8501 for REST")
    asked = parser.add_mutually_exclusive_group()
    asked.add_argument("--version", type=int, help="ask for this store version (default: the highest served)")
    asked.add_argument("--label", help="ask for the version labelled so: stable or canary")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    kinds = parser.add_mutually_exclusive_group()  # one kind of request at a time
    kinds.add_argument("--random", action="store_true", help="random input of the signature's shape (default)")
    requests = [spec.predict.requests for spec in registry.PIPELINES if spec.predict.requests is not None]
    for request in requests:
        for option, keywords in request.options.items():
            kinds.add_argument(option, **keywords)
    parser.add_argument("--seed", type=int, default=0, help="seed for --random")
    for request in requests:
        if request.add_arguments is not None:
            request.add_arguments(parser)


def with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with the model's own default transport, and that transport's default port."""
    args.transport = args.transport or registry.get(args.model).predict.transport
    args.port = args.port or DEFAULT_PORTS[args.transport]
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines predict",
        description="Query a served model (local server or TF-Serving) over gRPC or REST.")
    add_arguments(parser)
    return with_defaults(parser.parse_args(argv))


def answer(args: argparse.Namespace) -> list[str]:
    """Ask the served model as `args` say; the printout's lines."""
    args = with_defaults(args)
    spec = registry.get(args.model)
    client_class = GrpcClient if args.transport == "grpc" else RestClient
    client = client_class(args.host, args.port, args.timeout)
    served_name = args.model_name or args.model
    reported_version, signature = read_signature(client, args, spec, served_name)
    request = build_request(args, spec, signature)
    response = client.predict(served_name, args.version, request.inputs, signature, args.label)
    how = f"{args.transport.upper() if args.transport == 'rest' else 'gRPC'} {args.host}:{args.port}"
    lines = [f"request: {request.about}"]
    lines += describe_answer(spec, served_name, response, reported_version, how, args.label)
    if request.truth:
        lines.append(f"actual: {request.truth}")
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        lines = answer(args)
    except (InputError, RequestFailed) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    print("\n".join(lines), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
