"""The request client (`python -m pipelines predict`) against the local server.

The server runs in this process on loopback; the store holds an sp500 and an
mnist SavedModel exported (untrained) with the pipelines' own export functions,
and a small LightGBM model standing in for crypto's.
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components.serving import server as local_server
from components.store.folder import publish_version
from pipelines.cli import predict
from pipelines.crypto.definitions import MODEL_FEATURES
from pipelines.mnist.data import load_sample
from pipelines.mnist.models import TrainConfig, build_cnn, export_serving_model
from pipelines.mnist.preprocess import make_splits
from pipelines.sp500.data import load_ticker
from pipelines.sp500.features import DATE, LABEL, build_features, feature_columns
from pipelines.sp500.models import build_model, export_saved_model

DATE_ASKED = "2018-03-01"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("client")
    tf.keras.utils.set_random_seed(3)
    train = np.random.default_rng(3).normal(0, 0.01, size=(64, 6)).astype(np.float32)
    export_saved_model(build_model("flat", train, 0.01), root / "sp500-export", "tag-client")
    publish_version(root / "sp500-export", root / "store", "sp500")
    export_serving_model(build_cnn(TrainConfig()), root / "mnist-export", "tag-mnist")
    publish_version(root / "mnist-export", root / "store", "mnist")
    publish_version(lightgbm_export(root / "crypto-export"), root / "store", "crypto")
    return root / "store"


def lightgbm_export(folder: Path) -> Path:
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, len(MODEL_FEATURES)))
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 4},
                        lgb.Dataset(features, label=features[:, 1] + rng.normal(0, 0.1, 300)), num_boost_round=5)
    folder.mkdir()
    booster.save_model(str(folder / "model.bst"))
    return folder


@pytest.fixture(scope="module")
def server(store):
    running = local_server.serve(store, host="127.0.0.1", grpc_port=0, rest_port=0)
    yield running
    running.stop()


def ask(server, *argv: str, transport: str = "grpc") -> tuple[int, str]:
    port = server.grpc_port if transport == "grpc" else server.rest_port
    args = [*argv, f"--{transport}", "--host", "127.0.0.1", "--port", str(port)]
    try:
        return 0, "\n".join(predict.answer(predict.parse_args(args)))
    except (predict.RequestFailed, predict.InputError) as error:
        return 1, str(error)


def value(text: str, label: str) -> str:
    match = re.search(rf"^{label}: (\S+)", text, re.M)
    assert match, f"no '{label}' in:\n{text}"
    return match.group(1)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_random_request_prints_class_probability_and_versions(server, transport):
    code, text = ask(server, "--model", "sp500", "--random", transport=transport)
    assert code == 0, text
    assert "model store version 1" in text
    assert value(text, "model version tag") == "tag-client"
    assert value(text, "predicted class") in {"0", "1"}
    assert 0.5 <= float(value(text, "probability")) <= 1.0


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_date_request_sends_that_days_pipeline_features(server, store, transport):
    code, text = ask(server, "--model", "sp500", "--date", DATE_ASKED, transport=transport)
    assert code == 0, text

    # The same day's features, built independently here from the offline data.
    prices = pd.concat([load_ticker(t, "", store).assign(Ticker=t) for t in ("sp500", "nasdaq")])
    table = build_features(prices, "sp500", 3, set())
    row = table[table[DATE] == pd.Timestamp(DATE_ASKED)]
    signature = tf.saved_model.load(str(store / "sp500" / "1")).signatures["serving_default"]
    expected = signature(features=tf.constant(row[feature_columns(table)].to_numpy(np.float32)))

    assert float(value(text, "probability")) == pytest.approx(float(expected["probability"][0]), abs=1e-4)
    assert int(value(text, "predicted class")) == int(expected["predicted_class"][0])
    direction = "up" if int(row[LABEL].iloc[0]) else "down"
    assert f"actual: the S&P 500 closed {direction}" in text


def mnist_test_split():
    """The pipeline's default test split (validation 0.1, test 0.2, seed 42), rebuilt here."""
    return make_splits(load_sample(), 0.1, 0.2, 42).test


def mnist_expected(store: Path, image: np.ndarray) -> dict:
    signature = tf.saved_model.load(str(store / "mnist" / "1")).signatures["serving_default"]
    return {k: v.numpy()[0] for k, v in signature(images=tf.constant(image[None])).items()}


def test_mnist_index_sends_that_test_image_and_prints_its_label(server, store):
    code, text = ask(server, "--model", "mnist", "--index", "3", transport="rest")
    assert code == 0, text
    test = mnist_test_split()
    expected = mnist_expected(store, test.images[3])
    assert int(value(text, "predicted class")) == int(expected["predicted_class"])
    assert float(value(text, "probability")) == pytest.approx(float(expected["probability"]), abs=1e-4)
    assert f"actual: the test set labels it {int(test.labels[3])}" in text


def test_mnist_image_file_dark_on_white_is_turned_to_mnist_colours(server, store, tmp_path):
    from PIL import Image

    test = mnist_test_split()
    pixels = np.rint(test.images[5] * 255).astype(np.uint8)
    Image.fromarray(255 - pixels).save(tmp_path / "digit.png")  # drawn dark on white
    code, text = ask(server, "--model", "mnist", "--image", str(tmp_path / "digit.png"))
    assert code == 0, text
    expected = mnist_expected(store, pixels.astype(np.float32) / 255)
    assert float(value(text, "probability")) == pytest.approx(float(expected["probability"]), abs=1e-4)


def test_crypto_is_asked_over_rest_by_default_and_gets_a_target(server):
    args = predict.parse_args(["--model", "crypto"])
    assert (args.transport, args.port) == ("rest", 8501)
    code, text = ask(server, "--model", "crypto", "--random", transport="rest")
    assert code == 0, text
    assert "model store version 1" in text
    float(value(text, r"predicted Target \(15-minute forward return, market removed\)"))


@pytest.mark.parametrize("argv, message", [
    (["--model", "sp500", "--model-name", "nasdaq"], "serves no model 'nasdaq'"),
    (["--model", "sp500", "--version", "4"], "Specific(sp500, 4)"),
    (["--model", "sp500", "--date", "2018-03-03"], "not a trading day"),
    (["--model", "sp500", "--date", "first of May"], "is not a date"),
    (["--model", "sp500", "--date", DATE_ASKED, "--num-lags", "2"], "takes 6 features"),
    (["--model", "crypto", "--date", DATE_ASKED], "--date applies to --model sp500 only"),
    (["--model", "sp500", "--index", "1"], "apply to --model mnist only"),
    (["--model", "mnist", "--index", "100000"], "the test set has images 0..999"),
    (["--model", "mnist", "--image", "no-such-digit.png"], "cannot read it as an image"),
])
def test_bad_requests_end_in_one_clear_error(server, argv, message):
    code, text = ask(server, *argv)
    assert code == 1
    assert message in text


def test_no_server_says_how_to_start_one(server, capsys):
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    code = predict.main(["--model", "sp500", "--rest", "--host", "127.0.0.1", "--port", str(port)])
    assert code == 1
    assert "make serve" in capsys.readouterr().err


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_an_unknown_model_is_one_line_naming_it(server, transport):
    code, text = ask(server, "--model", "sp500", "--model-name", "sp50", transport=transport)
    assert code == 1 and "serves no model 'sp50'" in text and "--model-name" in text and "\n" not in text


@pytest.mark.parametrize(("asked", "port", "hint"), [("--rest", "grpc_port", "the gRPC port"),
                                                     ("--grpc", "rest_port", "the REST port")])
def test_the_wrong_port_for_the_protocol_is_one_line_saying_so(server, capsys, asked, port, hint):
    code = predict.main(["--model", "sp500", asked, "--host", "127.0.0.1", "--port", str(getattr(server, port)),
                         "--timeout", "5"])
    error = capsys.readouterr().err
    assert code == 1 and error.startswith("error: ") and error.count("\n") == 1, error
    assert hint in error


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_label_asks_for_stable_or_canary_and_the_answer_says_which_version(store, tmp_path, transport):
    from components.store.folder import ServingLabels, write_labels

    labelled = tmp_path / "labelled"
    for _ in range(2):
        publish_version(store / "sp500" / "1", labelled, "sp500")
    write_labels(labelled / "sp500", ServingLabels(stable=1, canary=2, canary_percent=30, known_versions=(1, 2)))
    running = local_server.serve(labelled, host="127.0.0.1", grpc_port=0, rest_port=0)
    try:
        for label, version in (("stable", 1), ("canary", 2)):
            code, text = ask(running, "--model", "sp500", "--label", label, transport=transport)
            assert code == 0, text
            assert re.search(rf"sp500 answered over .* for label '{label}': model store version {version} ", text)
        code, text = ask(running, "--model", "sp500", "--label", "beta", transport=transport)
        assert code == 1 and "Unrecognized servable version label: beta" in text
    finally:
        running.stop()
