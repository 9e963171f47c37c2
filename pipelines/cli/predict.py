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

Requests from real data:
- sp500 `--date`: that day's features (lagged log returns), computed by the
  pipeline's own feature code with the pipeline's default tickers and lags
  (`--tickers`, `--num-lags`, `--same-day-tickers`, `--source` to match a model
  trained otherwise); the day's actual direction is printed beside the answer.
- mnist `--index N`: test image N of the pipeline's offline data, with its
  label; `--image FILE`: any picture of a digit (PNG/JPEG), made 28x28 grey.
- crypto: the LightGBM model is served by the local server with the signature
  `features` [batch, n] -> `predictions` (see components.serving.servables); `--random` sends
  one random feature row. On a cluster KServe serves it, whose REST predict
  takes the same JSON but which has no TF-Serving gRPC or metadata endpoint.
"""

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components.common.errors import InputError
from components.serving.client import (
    CLASS_NAMES,
    DEFAULT_PORTS,
    NUMPY_DTYPES,
    Answer,
    GrpcClient,
    RequestFailed,
    RestClient,
    Signature,
    TensorSpec,
)

# --- requests from random or real data ---------------------------------------------------


@dataclass
class Request:
    inputs: dict[str, np.ndarray]
    about: str  # what was sent, for the printout
    truth: str = ""  # the known answer, when the request comes from labelled data
    notes: list[str] = field(default_factory=list)


def random_request(signature: Signature, seed: int) -> Request:
    """One example of random values shaped and typed as the signature says."""
    name, spec = signature.single_input()
    if spec.dtype not in NUMPY_DTYPES or not spec.shape:
        raise InputError(f"input '{name}' ({spec.dtype}, shape {spec.shape}) cannot be filled with random numbers")
    shape = [1] + [size if size > 0 else 1 for size in spec.shape[1:]]
    values = np.random.default_rng(seed).normal(0.0, 0.01, size=shape)
    return Request({name: values.astype(NUMPY_DTYPES[spec.dtype])}, f"random values, shape {shape}")


def pipeline_defaults(pipeline: str) -> dict:
    """The pipeline's parameter defaults: the data a model was trained on unless told otherwise."""
    import importlib
    import inspect

    function = importlib.import_module(f"pipelines.{pipeline}").make_pipeline().pipeline_func
    return {name: p.default for name, p in inspect.signature(function).parameters.items()}


def sp500_request(signature: Signature, args: argparse.Namespace) -> Request:
    """The features of one trading day, built exactly as the pipeline builds them."""
    import tempfile

    import pandas as pd

    from pipelines.sp500.data import load_ticker, parse_tickers
    from pipelines.sp500.features import (
        DATE,
        LABEL,
        TARGET_RETURN,
        build_features,
        feature_columns,
        parse_same_day_tickers,
    )

    defaults = pipeline_defaults("sp500")
    tickers = args.tickers or defaults["tickers"]
    num_lags = args.num_lags or defaults["num_lags"]
    same_day_text = defaults["same_day_tickers"] if args.same_day_tickers is None else args.same_day_tickers
    same_day = parse_same_day_tickers(same_day_text)
    source = defaults["source"] if args.source is None else args.source
    try:
        day = pd.Timestamp(args.date)
    except ValueError as error:
        raise InputError(f"--date '{args.date}' is not a date (YYYY-MM-DD)") from error
    with tempfile.TemporaryDirectory() as downloads:
        prices = pd.concat([load_ticker(t, source, Path(downloads)).assign(Ticker=t)
                            for t in parse_tickers(tickers)], ignore_index=True)
    table = build_features(prices, defaults["target"], num_lags, same_day)
    row = table[table[DATE] == day]
    if row.empty:
        raise InputError(f"--date {args.date}: not a trading day with all features in the data "
                         f"({table[DATE].min():%Y-%m-%d} .. {table[DATE].max():%Y-%m-%d}, "
                         "weekends and holidays excluded)")
    columns = feature_columns(table)
    name, spec = signature.single_input()
    if spec.shape and spec.shape[-1] not in (-1, len(columns)):
        raise InputError(f"the served model takes {spec.shape[-1]} features but tickers '{tickers}' with "
                         f"{num_lags} lags give {len(columns)}: pass the --tickers/--num-lags it was trained with")
    features = row[columns].to_numpy(NUMPY_DTYPES.get(spec.dtype, np.float32))
    actual = "up" if int(row[LABEL].iloc[0]) == 1 else "down (or flat)"
    return Request({name: features}, f"features of {day:%Y-%m-%d}: " + ", ".join(
        f"{c}={v:+.4f}" for c, v in zip(columns, features[0], strict=True)),
        truth=f"the S&P 500 closed {actual} that day ({float(row[TARGET_RETURN].iloc[0]):+.2%} log return)")


def mnist_image_from_file(path: Path) -> np.ndarray:
    """A picture of one digit as MNIST draws it: 28x28, light digit on a dark ground, 0..255."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            grey = np.asarray(picture.convert("L").resize((28, 28), Image.Resampling.LANCZOS), dtype=np.float32)
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(f"--image {path}: cannot read it as an image ({error})") from error
    # A dark digit on white paper is turned around to MNIST's white-on-black.
    return 255 - grey if grey.mean() > 127 else grey


def mnist_test_image(index: int) -> tuple[np.ndarray, int]:
    """Image `index` of the test split the pipeline makes with its default parameters."""
    import tempfile

    from pipelines.mnist.data import fetch_digits
    from pipelines.mnist.preprocess import make_splits

    defaults = pipeline_defaults("mnist")
    with tempfile.TemporaryDirectory() as downloads:
        digits = fetch_digits(defaults["source"], Path(downloads))
    test = make_splits(digits, defaults["validation_fraction"], defaults["test_fraction"], defaults["seed"]).test
    if not 0 <= index < len(test.labels):
        raise InputError(f"--index {index}: the test set has images 0..{len(test.labels) - 1}")
    return test.images[index] * 255, int(test.labels[index])


def mnist_request(signature: Signature, args: argparse.Namespace) -> Request:
    """One digit, shaped as the signature asks; float inputs get pixels scaled to [0, 1]."""
    name, spec = signature.single_input()
    if args.image:
        pixels, about, truth = mnist_image_from_file(args.image), f"image {args.image}", ""
    else:
        pixels, label = mnist_test_image(args.index)
        about, truth = f"test image {args.index}", f"the test set labels it {label}"
    dtype = NUMPY_DTYPES.get(spec.dtype, np.float32)
    values = pixels / 255 if np.issubdtype(dtype, np.floating) else np.rint(pixels)
    shape = [1] + [size if size > 0 else -1 for size in spec.shape[1:]]
    try:
        values = values.reshape(shape)
    except ValueError as error:
        raise InputError(f"the served signature takes '{name}' of shape {spec.shape}, not 28x28 images") from error
    return Request({name: values.astype(dtype)}, about, truth)


def build_request(args: argparse.Namespace, signature: Signature) -> Request:
    if args.date:
        if args.model != "sp500":
            raise InputError("--date applies to --model sp500 only")
        return sp500_request(signature, args)
    if args.image or args.index is not None:
        if args.model != "mnist":
            raise InputError("--image and --index apply to --model mnist only")
        return mnist_request(signature, args)
    return random_request(signature, args.seed)


# --- the printout ---------------------------------------------------------------------------


def first(outputs: dict[str, np.ndarray], key: str):
    value = np.asarray(outputs[key]).reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else value


def crypto_signature() -> Signature:
    """The LightGBM model's signature as the local server defines it, for servers that
    cannot report it (KServe's LightGBM server has no metadata endpoint)."""
    from pipelines.crypto.definitions import MODEL_FEATURES

    return Signature({"features": TensorSpec("DT_DOUBLE", [-1, len(MODEL_FEATURES)])},
                     {"predictions": TensorSpec("DT_DOUBLE", [-1])})


def read_signature(client, args: argparse.Namespace, served_name: str) -> tuple[int | None, Signature]:
    try:
        return client.metadata(served_name, args.version, args.label)
    except RequestFailed as error:
        if args.model == "crypto" and error.status == 404:
            return None, crypto_signature()
        raise


def describe_answer(model: str, served_name: str, answer: Answer, reported_version: int | None,
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
        meaning = CLASS_NAMES.get(model, {}).get(predicted, "")
        lines.append(f"predicted class: {predicted}" + (f" ({meaning})" if meaning else ""))
        if "probability" in outputs:
            lines.append(f"probability: {float(first(outputs, 'probability')):.4f}")
    if model == "crypto" and "predictions" in outputs:
        target = float(first(outputs, "predictions"))
        lines.append(f"predicted Target (15-minute forward return, market removed): {target:+.6f}")
    for key in sorted(set(outputs) - {"model_version", "predicted_class", "probability", "predictions"}):
        lines.append(f"{key}: {np.array2string(np.asarray(outputs[key])[0], precision=4)}")
    return lines


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines predict",
        description="Query a served model (local server or TF-Serving) over gRPC or REST.")
    parser.add_argument("--model", required=True, choices=["sp500", "mnist", "crypto"], help="which pipeline's model")
    parser.add_argument("--model-name", help="the served model name (default: the same as --model)")
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--grpc", dest="transport", action="store_const", const="grpc",
                           help="TF-Serving gRPC PredictionService (default, except crypto)")
    transport.add_argument("--rest", dest="transport", action="store_const", const="rest",
                           help="TF-Serving REST API")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, help="default: 8500 for gRPC, 8501 for REST")
    asked = parser.add_mutually_exclusive_group()
    asked.add_argument("--version", type=int, help="ask for this store version (default: the highest served)")
    asked.add_argument("--label", help="ask for the version labelled so: stable or canary")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--random", action="store_true", help="random input of the signature's shape (default)")
    data.add_argument("--date", help="sp500: the features of this trading day, YYYY-MM-DD")
    data.add_argument("--image", type=Path, help="mnist: an image file of a digit")
    data.add_argument("--index", type=int, help="mnist: this image of the offline test set")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random")
    features = parser.add_argument_group("sp500 --date features (default: the pipeline's defaults)")
    features.add_argument("--tickers")
    features.add_argument("--num-lags", type=int)
    features.add_argument("--same-day-tickers")
    features.add_argument("--source", help="price source URI with {ticker} (default: offline data)")
    args = parser.parse_args(argv)
    # KServe, which serves LightGBM on a cluster, speaks TF-Serving's REST JSON but not its gRPC.
    args.transport = args.transport or ("rest" if args.model == "crypto" else "grpc")
    args.port = args.port or DEFAULT_PORTS[args.transport]
    return args


def run(args: argparse.Namespace) -> list[str]:
    client_class = GrpcClient if args.transport == "grpc" else RestClient
    client = client_class(args.host, args.port, args.timeout)
    served_name = args.model_name or args.model
    reported_version, signature = read_signature(client, args, served_name)
    request = build_request(args, signature)
    answer = client.predict(served_name, args.version, request.inputs, signature, args.label)
    how = f"{args.transport.upper() if args.transport == 'rest' else 'gRPC'} {args.host}:{args.port}"
    lines = [f"request: {request.about}", *request.notes]
    lines += describe_answer(args.model, served_name, answer, reported_version, how, args.label)
    if request.truth:
        lines.append(f"actual: {request.truth}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        lines = run(args)
    except (InputError, RequestFailed) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
