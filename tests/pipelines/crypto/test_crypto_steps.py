"""The crypto evaluate step, run as its container runs it (`python_func`) on generated minute bars:
the rows it scored, handed to the gate, are exactly what the booster got and give its weighted
correlation back."""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from kfp.dsl import HTML, Dataset, Metrics, Model

from components.common.readable import timestamp
from components.release.rows import read_rows
from pipelines.crypto import data
from pipelines.crypto.definitions import MODEL_FEATURES
from pipelines.crypto.evaluation import BLOCK_LENGTH_MINUTES, weighted_correlation
from pipelines.crypto.features import build_features
from pipelines.crypto.load import load
from pipelines.crypto.models import train
from pipelines.crypto.steps import evaluate


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("crypto-evaluate")
    data.generate(root, "2021-05-01", "2021-05-04", seed=3)
    load(root, root / "loaded", "2021-01-01")
    build_features(root / "loaded", root / "features.arrow", "2021-05-03")
    result = train(root / "features.arrow", root / "model", "2021-05-03", n_estimators=20, early_stopping_rounds=5,
                   test_fraction=0.5, progress=lambda line: None)
    outputs = {"metrics": Metrics(name="metrics", uri=str(root / "metrics")),
               "report": HTML(name="report", uri=str(root / "report.html")),
               "rows": Dataset(name="rows", uri=str(root / "rows"))}
    correlation = evaluate.python_func(features_path=str(root / "features.arrow"), loaded_dir=str(root / "loaded"),
                                       model=Model(name="model", uri=str(root / "model")),
                                       test_start=timestamp(result.test_start), **outputs)
    table = pd.read_feather(root / "features.arrow")
    test = table[(table["timestamp"] >= result.test_start) & table["Target"].notna()]
    return root, test, correlation, outputs


def test_the_rows_are_the_test_rows_as_the_booster_got_them_in_blocks_of_minutes(evaluated):
    root, test, _, outputs = evaluated
    metadata = outputs["rows"].metadata
    assert metadata == {"metric": "weighted_correlation", "block_length": BLOCK_LENGTH_MINUTES,
                        "block_unit": "minutes", "features": MODEL_FEATURES,
                        "prediction_output": "predicted_class", "rows": len(test)}
    rows = read_rows(root / "rows", metadata)
    inputs = test[MODEL_FEATURES].to_numpy(np.float32)
    assert rows.inputs.dtype == np.float32
    np.testing.assert_array_equal(rows.inputs, inputs)
    np.testing.assert_array_equal(rows.block, test["timestamp"].to_numpy() // 60)  # the minute: assets share it
    assert pd.Series(test["Asset_ID"].to_numpy()).groupby(rows.block).nunique().max() > 1
    np.testing.assert_array_equal(rows.target, test["Target"].to_numpy(np.float64))
    np.testing.assert_array_equal(rows.weight, test["Weight"].to_numpy(np.float64))
    np.testing.assert_array_equal(rows.baseline, -test["return_30"].fillna(0).to_numpy(np.float64))
    booster = lgb.Booster(model_file=str(root / "model" / "model.bst"))
    np.testing.assert_array_equal(rows.challenger, booster.predict(inputs))


def test_the_weighted_correlation_recomputed_from_the_rows_is_the_gate_metric(evaluated):
    root, _, correlation, outputs = evaluated
    rows = read_rows(root / "rows", outputs["rows"].metadata)
    logged = outputs["metrics"].metadata
    assert weighted_correlation(rows.challenger, rows.target, rows.weight) == correlation
    assert correlation == logged["weighted_correlation"]
    assert weighted_correlation(rows.baseline, rows.target, rows.weight) == \
        logged["weighted_correlation_reversal_baseline"]
