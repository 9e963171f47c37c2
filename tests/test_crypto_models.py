"""crypto model and evaluation: the competition metric, training, the held-out test, the report."""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from components.crypto import data
from components.crypto.evaluation import evaluate, weighted_correlation, write_evaluation_report
from components.crypto.features import MODEL_FEATURES, build_features
from components.crypto.load import load
from components.crypto.models import train
from components.errors import InputError


def numpy_weighted_correlation(a, b, w):
    covariance = np.cov(a, b, aweights=w)
    return covariance[0, 1] / np.sqrt(covariance[0, 0] * covariance[1, 1])


def test_weighted_correlation_matches_numpy():
    rng = np.random.default_rng(1)
    target = rng.normal(size=5000)
    prediction = 0.3 * target + rng.normal(size=5000)
    weights = rng.choice(np.log([880, 363, 82, 3]), size=5000)
    assert weighted_correlation(prediction, target, weights) == pytest.approx(
        numpy_weighted_correlation(prediction, target, weights), rel=1e-12)
    assert weighted_correlation(prediction, target, np.ones(5000)) == pytest.approx(
        np.corrcoef(prediction, target)[0, 1], rel=1e-12)
    # Weights matter: a row weighted 0 is ignored.
    spoiled = prediction.copy()
    spoiled[:100] = 1e6
    zero_first = np.where(np.arange(5000) < 100, 0.0, weights)
    assert weighted_correlation(spoiled, target, zero_first) == pytest.approx(
        numpy_weighted_correlation(prediction[100:], target[100:], weights[100:]), rel=1e-9)
    assert weighted_correlation(np.zeros(5000), target, weights) == 0.0


@pytest.fixture(scope="module")
def features_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    data.generate(root, "2021-04-24", "2021-05-04", seed=2)
    load(root, root / "loaded", "2020-01-01")
    build_features(root / "loaded", root / "features.parquet", "2021-05-01")
    return root / "features.parquet"


@pytest.fixture(scope="module")
def trained(features_path):
    model_dir = features_path.parent / "model"
    return model_dir, train(features_path, model_dir, n_estimators=40, early_stopping_rounds=10)


def test_training_writes_one_lightgbm_text_model_with_the_source_features(trained, features_path):
    model_dir, result = trained
    assert [p.name for p in model_dir.iterdir()] == ["model.bst"]
    assert (model_dir / "model.bst").read_text().startswith("tree")
    booster = lgb.Booster(model_file=str(model_dir / "model.bst"))
    assert booster.feature_name() == MODEL_FEATURES
    assert booster.num_trees() == result.best_iteration <= 40
    assert sorted(result.importance.index) == sorted(MODEL_FEATURES)
    table = pd.read_parquet(features_path, columns=["timestamp", "train_flg", "Target"]).dropna()
    validation = table[table["train_flg"] == 0]
    assert validation["timestamp"].min() < result.test_start < validation["timestamp"].max()
    assert result.train_rows == (table["train_flg"] == 1).sum()
    assert result.validation_rows == (validation["timestamp"] < result.test_start).sum()


def test_training_is_deterministic_for_a_seed(trained, features_path, tmp_path):
    model_dir, _ = trained
    train(features_path, tmp_path / "again", n_estimators=40, early_stopping_rounds=10)
    assert (tmp_path / "again" / "model.bst").read_bytes() == (model_dir / "model.bst").read_bytes()


def test_evaluation_scores_the_held_out_rows_beside_the_baselines(trained, features_path, tmp_path):
    model_dir, result = trained
    evaluation = evaluate(features_path, model_dir, result.test_start)
    test = pd.read_parquet(features_path)
    test = test[(test["timestamp"] >= result.test_start) & test["Target"].notna()]
    prediction = lgb.Booster(model_file=str(model_dir / "model.bst")).predict(test[MODEL_FEATURES])
    metrics = evaluation.metrics
    assert metrics["test_rows"] == len(test) == evaluation.rows
    assert metrics["weighted_correlation"] == pytest.approx(
        numpy_weighted_correlation(prediction, test["Target"], test["Weight"]), rel=1e-6)
    assert metrics["rmse_zero_baseline"] == pytest.approx(np.sqrt(np.mean(test["Target"].to_numpy(float) ** 2)))
    assert metrics["weighted_correlation_zero_baseline"] == 0.0
    assert metrics["weighted_correlation_reversal_baseline"] == pytest.approx(numpy_weighted_correlation(
        -test["return_30"].fillna(0), test["Target"], test["Weight"]), rel=1e-6)
    per_asset = evaluation.per_asset
    assert per_asset["Asset_ID"].tolist() == list(range(14)) and per_asset["rows"].sum() == len(test)
    bitcoin = test["Asset_ID"] == 1
    assert per_asset.loc[1, "correlation"] == pytest.approx(
        np.corrcoef(prediction[bitcoin.to_numpy()], test.loc[bitcoin, "Target"])[0, 1], rel=1e-6)
    report = tmp_path / "report.html"
    write_evaluation_report(evaluation, report, "PASS: test")
    assert "data:image/png;base64," in report.read_text() and "Bitcoin" in report.read_text()


@pytest.mark.parametrize("options, message", [
    ({"test_fraction": 1.5}, "test_fraction 1.5 must lie strictly between 0 and 1"),
    ({"learning_rate": 0.0}, "learning_rate > 0"),
], ids=["test-fraction", "learning-rate"])
def test_bad_training_options_are_refused(features_path, tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        train(features_path, tmp_path / "model", **options)
    assert not (tmp_path / "model").exists()


def test_no_validation_rows_is_a_clear_error(features_path, tmp_path):
    features = pd.read_parquet(features_path).assign(train_flg=np.int8(1))
    features.to_parquet(tmp_path / "all-train.parquet", index=False)
    with pytest.raises(InputError, match="fewer than two validation minutes"):
        train(tmp_path / "all-train.parquet", tmp_path / "model")
    assert not (tmp_path / "model").exists()
