"""crypto model and evaluation: the competition metric, training, the held-out test, the report."""

import subprocess
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from components.common.errors import InputError
from pipelines.crypto import data, models
from pipelines.crypto.definitions import MODEL_FEATURES
from pipelines.crypto.evaluation import evaluate, read_asset_names, weighted_correlation, write_evaluation_report
from pipelines.crypto.features import build_features
from pipelines.crypto.load import load
from pipelines.crypto.models import train


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


def test_the_early_stopping_metric_is_the_weighted_correlation():
    rng = np.random.default_rng(3)
    target = rng.normal(0.0, 0.005, 20000)
    prediction = 1e-4 + 0.1 * target + rng.normal(0.0, 0.001, 20000)
    weights = rng.choice(np.log([880, 363, 82, 3]), size=20000).astype(np.float32)
    validation, sample = lgb.Dataset(np.zeros((1, 1))), lgb.Dataset(np.zeros((1, 1)))
    scores = models._RoundScores({validation: models._Scores(target, weights),
                                  sample: models._Scores(target[:1000], weights[:1000])})
    name, value, higher_is_better = scores.correlation(prediction, validation)
    assert (name, higher_is_better) == ("weighted_correlation", True)
    assert value == pytest.approx(weighted_correlation(prediction, target, weights), rel=1e-9)
    assert scores.correlation(np.zeros(20000), validation)[1] == 0.0
    # Each evaluation set is scored against its own rows.
    assert scores.correlation(prediction[:1000], sample)[1] == pytest.approx(
        weighted_correlation(prediction[:1000], target[:1000], weights[:1000]), rel=1e-9)
    assert scores.rmse(prediction[:1000], sample) == ("rmse", pytest.approx(
        np.sqrt(np.mean((prediction[:1000] - target[:1000]) ** 2))), False)


@pytest.fixture(scope="module")
def features_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    data.generate(root, "2021-04-24", "2021-05-04", seed=2)
    load(root, root / "loaded", "2020-01-01")
    build_features(root / "loaded", root / "features.arrow", "2021-05-01")
    return root / "features.arrow"


PROGRESS: list[str] = []


@pytest.fixture(scope="module")
def trained(features_path):
    model_dir = features_path.parent / "model"
    return model_dir, train(features_path, model_dir, n_estimators=40, early_stopping_rounds=10,
                            progress=PROGRESS.append)


def test_training_says_its_progress_every_few_rounds_and_its_best_iteration(trained):
    _, result = trained
    rounds = [line for line in PROGRESS if line.startswith("round ")]
    every = list(range(models.LOG_EVERY, result.rounds + 1, models.LOG_EVERY))
    expected = every + ([40] if result.rounds == 40 and every[-1] != 40 else [])  # and the last round
    assert [line.split()[1] for line in rounds] == [f"{n}/40:" for n in expected]
    assert "validation weighted correlation" in rounds[0] and "(best " in rounds[0]
    assert not any(line.startswith("[") for line in PROGRESS)  # LightGBM's own lines, which kfp's runner hides
    stopped = "stopped early at round" if result.rounds < 40 else "trained all 40 rounds"
    assert PROGRESS[-1].startswith(f"{stopped}{'' if result.rounds == 40 else f' {result.rounds}'}: "
                                   f"best iteration {result.best_iteration} (validation weighted correlation "
                                   f"{result.validation_correlation:.4f}")


def test_training_records_every_rounds_metrics_on_validation_and_a_training_sample(trained):
    _, result = trained
    assert set(result.history) == {"validation", "training"}
    for name in ("validation", "training"):
        assert {metric: len(values) for metric, values in result.history[name].items()} == {
            "weighted_correlation": result.rounds, "rmse": result.rounds}
    best = result.best_iteration
    assert result.history["validation"]["weighted_correlation"][best - 1] == pytest.approx(
        result.validation_correlation)
    assert max(result.history["validation"]["weighted_correlation"]) == pytest.approx(result.validation_correlation)
    # The training sample fits better and better; the validation rows stop improving.
    assert result.history["training"]["rmse"][-1] < result.history["training"]["rmse"][0]


def test_training_writes_one_lightgbm_text_model_with_the_source_features(trained, features_path):
    model_dir, result = trained
    assert [p.name for p in model_dir.iterdir()] == ["model.bst"]
    assert (model_dir / "model.bst").read_text().startswith("tree")
    booster = lgb.Booster(model_file=str(model_dir / "model.bst"))
    assert booster.feature_name() == MODEL_FEATURES
    assert booster.num_trees() == result.best_iteration <= 40
    assert sorted(result.importance.index) == sorted(MODEL_FEATURES)
    table = pd.read_feather(features_path, columns=["timestamp", "train_flg", "Target"]).dropna()
    validation = table[table["train_flg"] == 0]
    assert validation["timestamp"].min() < result.test_start < validation["timestamp"].max()
    # Purged: the 16 minutes before each boundary, whose Target holds the next period's prices.
    valid_from = pd.Timestamp("2021-05-01", tz="UTC").timestamp()
    assert result.train_rows == (table["timestamp"] < valid_from - 16 * 60).sum()
    assert result.validation_rows == table["timestamp"].between(valid_from, result.test_start - 16 * 60 - 1).sum()
    assert result.purged_rows == (table["timestamp"].between(valid_from - 16 * 60, valid_from - 1).sum()
                                  + table["timestamp"].between(result.test_start - 16 * 60,
                                                               result.test_start - 1).sum())
    assert result.purged_rows > 0


def test_labels_next_to_a_boundary_never_reach_training(trained, features_path, tmp_path):
    model_dir, result = trained
    features = pd.read_feather(features_path)
    valid_from = pd.Timestamp("2021-05-01", tz="UTC").timestamp()
    near = ((features["timestamp"].between(valid_from - 16 * 60, valid_from - 1))
            | features["timestamp"].between(result.test_start - 16 * 60, result.test_start - 1))
    features.loc[near & features["Target"].notna(), "Target"] = np.float32(1.0)  # a 100% return: absurd
    features.to_feather(tmp_path / "poisoned.arrow")
    train(tmp_path / "poisoned.arrow", tmp_path / "model", n_estimators=40, early_stopping_rounds=10)
    assert (tmp_path / "model" / "model.bst").read_bytes() == (model_dir / "model.bst").read_bytes()


def test_lightgbm_uses_the_cpus_the_container_may_run_on_and_the_given_bins_and_rows(features_path, tmp_path,
                                                                                     monkeypatch):
    seen = {}

    def record(params, *args, **kwargs):
        seen.update(params)
        return real_train(params, *args, **kwargs)

    real_train = lgb.train
    monkeypatch.setattr(models.os, "sched_getaffinity", lambda pid: {0, 3, 5})
    monkeypatch.setattr(models.lgb, "train", record)
    train(features_path, tmp_path / "model", n_estimators=2, early_stopping_rounds=1, max_bin=15, row_fraction=0.5)
    assert seen["num_threads"] == 3
    assert (seen["max_bin"], seen["bagging_fraction"], seen["bagging_freq"]) == (15, 0.5, 1)


def test_training_is_deterministic_for_a_seed(trained, features_path, tmp_path):
    model_dir, _ = trained
    train(features_path, tmp_path / "again", n_estimators=40, early_stopping_rounds=10)
    assert (tmp_path / "again" / "model.bst").read_bytes() == (model_dir / "model.bst").read_bytes()


def test_evaluation_scores_the_held_out_rows_beside_the_baselines(trained, features_path, tmp_path):
    model_dir, result = trained
    evaluation = evaluate(features_path, model_dir, result.test_start,
                          read_asset_names(features_path.parent / "loaded"))
    test = pd.read_feather(features_path)
    test = test[(test["timestamp"] >= result.test_start) & test["Target"].notna()]
    prediction = lgb.Booster(model_file=str(model_dir / "model.bst")).predict(test[MODEL_FEATURES])
    metrics = evaluation.metrics
    assert metrics["test_rows"] == len(test)
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
    per_asset_metrics = evaluation.per_asset_metrics()
    assert per_asset_metrics["correlation_asset_1_Bitcoin"] == per_asset.loc[1, "correlation"]
    assert per_asset_metrics["reversal_correlation_asset_5_EOS_IO"] == per_asset.loc[5, "reversal_correlation"]
    assert len(per_asset_metrics) == 28
    report = tmp_path / "report.html"
    write_evaluation_report(evaluation, report, "weighted_correlation 0.01", result.history, result.best_iteration)
    text = report.read_text()
    assert "data:image/png;base64," in text and "Bitcoin" in text
    assert text.count("data:image/png;base64,") == 2  # the training curves and the per-asset bars
    assert "Training (per boosting round)" in text and "no training history" not in text
    for baseline in ("predicting zero", "reversal (-return_30)"):
        assert baseline in text
    rmse_row = text[text.index("<td>RMSE (lower is better)"):].split("</tr>")[0]
    worse = metrics["rmse"] > metrics["rmse_zero_baseline"]
    assert ("WORSE by" in rmse_row) == worse
    assert ("The model is worse than predicting zero on RMSE" in text) == worse


@pytest.mark.parametrize("options, message", [
    ({"test_fraction": 1.5}, "test_fraction must lie strictly between 0 and 1, got 1.5"),
    ({"learning_rate": 0.0}, "learning_rate must be positive, got 0.0"),
], ids=["test-fraction", "learning-rate"])
def test_bad_training_options_are_refused(features_path, tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        train(features_path, tmp_path / "model", **options)
    assert not (tmp_path / "model").exists()


def test_no_validation_rows_is_a_clear_error(features_path, tmp_path):
    features = pd.read_feather(features_path).assign(train_flg=np.int8(1))
    features.to_feather(tmp_path / "all-train.arrow")
    with pytest.raises(InputError, match="fewer than two validation minutes"):
        train(tmp_path / "all-train.arrow", tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_the_train_and_evaluate_modules_import_only_what_they_use():
    code = ("import sys, pipelines.crypto.models, pipelines.crypto.evaluation; "
            "print(sorted(m for m in ('talib', 'pipelines.crypto.features', 'pipelines.crypto.data') "
            "if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
    code = "import sys, pipelines.crypto.evaluation; print('lightgbm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
