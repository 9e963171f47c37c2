"""The sp500 evaluate step, run as its container runs it (`python_func`) on the shipped prices:
the rows it scored, handed to the gate, are exactly what the model got and give its accuracy back."""

import numpy as np
import pytest
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Metrics, Model

from components.common.saved_model import load_predictor
from components.release.rows import read_rows
from pipelines.sp500 import features as f
from pipelines.sp500 import models
from pipelines.sp500.data import download_prices
from pipelines.sp500.evaluation import BLOCK_LENGTH_DAYS
from pipelines.sp500.steps import evaluate


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sp500-evaluate")
    prices = download_prices("sp500,nasdaq", "", folder / "prices.parquet")
    table = f.select_dates(f.build_features(prices, "sp500", 2, set()), "2017-01-01", "2018-12-31")
    train, test = f.chronological_split(table, 0.25)
    test.to_parquet(folder / "test.parquet", index=False)
    columns = f.feature_columns(train)
    fitted = models.train_model(train[columns].to_numpy(np.float32), train[f.LABEL].to_numpy(), "flat", 2, 0.01,
                                seed=1, progress=lambda line: None)
    models.export_saved_model(fitted, folder / "model", "run-1")
    outputs = {"metrics": Metrics(name="metrics", uri=str(folder / "metrics")),
               "confusion": ClassificationMetrics(name="confusion", uri=str(folder / "confusion")),
               "report": HTML(name="report", uri=str(folder / "report.html")),
               "rows": Dataset(name="rows", uri=str(folder / "rows"))}
    accuracy = evaluate.python_func(model=Model(name="model", uri=str(folder / "model")),
                                    test_data=Dataset(name="test_data", uri=str(folder / "test.parquet")),
                                    **outputs)
    return folder, test, columns, accuracy, outputs


def test_the_rows_are_the_test_days_as_the_model_got_them_in_blocks_of_days(evaluated):
    folder, test, columns, _, outputs = evaluated
    metadata = outputs["rows"].metadata
    assert metadata == {"metric": "accuracy", "block_length": BLOCK_LENGTH_DAYS, "block_unit": "trading days",
                        "features": columns, "prediction_output": "predicted_class", "rows": len(test)}
    rows = read_rows(folder / "rows", metadata)
    inputs = test[columns].to_numpy(np.float32)
    np.testing.assert_array_equal(rows.inputs, inputs)
    assert rows.inputs.dtype == np.float32
    np.testing.assert_array_equal(rows.block, np.arange(len(test)))  # the day's position in the test period
    np.testing.assert_array_equal(rows.target, test[f.LABEL].to_numpy())
    np.testing.assert_array_equal(rows.weight, np.ones(len(test)))
    np.testing.assert_array_equal(rows.baseline, np.ones(len(test)))  # always up
    predicted = load_predictor(folder / "model")(features=inputs)["predicted_class"].numpy()
    np.testing.assert_array_equal(rows.challenger, predicted)


def test_the_accuracy_recomputed_from_the_rows_is_the_gate_metric_and_the_baselines(evaluated):
    folder, _, _, accuracy, outputs = evaluated
    rows = read_rows(folder / "rows", outputs["rows"].metadata)
    assert np.mean(rows.challenger == rows.target) == accuracy == outputs["metrics"].metadata["accuracy"]
    assert np.mean(rows.baseline == rows.target) == outputs["metrics"].metadata["always_up_accuracy"]


def test_the_report_leaves_the_decision_to_the_gate_step(evaluated):
    folder, *_ = evaluated
    text = (folder / "report.html").read_text()
    assert "the gate step decides the deploy against the threshold, the serving champion (re-scored on " \
           "these rows) and the naive baseline" in text
    assert "(threshold " not in text
