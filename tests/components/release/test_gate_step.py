"""The gate step end to end: fabricated rows artifacts, real serving versions (a tiny SavedModel, a tiny
LightGBM model) in a temporary folder store, and the verdict, report and evaluation it records."""

import json

import numpy as np
import pytest
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Model

from components.common import reports
from components.common.errors import InputError
from components.release.gate_step import gate_model
from components.release.rows import RowsInfo, write_rows
from components.store import folder as model_store
from components.store.serving_labels import ServingLabels

FEATURES = ["nasdaq_lag1", "sp500_lag1", "dax_lag1"]
WEIGHTS = np.array([[2.0, -1.0], [-1.0, 1.5], [0.5, 0.5]], np.float32)


def rows_artifact(tmp_path, inputs, target, challenger, baseline, metric="accuracy", weight=None, features=FEATURES,
                  block_length=1):
    folder = tmp_path / f"rows-{len(list(tmp_path.glob('rows-*')))}"
    info = RowsInfo(metric, block_length, "rows", list(features))
    metadata = write_rows(folder, inputs, np.arange(len(target)), target, weight, challenger, baseline, info)
    return Dataset(name="rows", uri=str(folder), metadata=metadata)


def classification_rows(tmp_path, width=3, count=400, seed=0):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(count, width)).astype(np.float32)
    target = rng.integers(0, 2, count).astype(float)
    challenger = np.where(rng.random(count) < 0.7, target, 1 - target)
    return inputs, target, challenger, np.ones(count)


def keras_champion(folder):
    """A SavedModel with the project's serving signature whose class is argmax(inputs @ WEIGHTS)."""
    import keras

    from components.common.saved_model import export_classifier

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.layers[0].set_weights([WEIGHTS, np.zeros(2, np.float32)])
    export_classifier(model, folder, "champion-run", "features", [3])
    return folder


def run_gate_step(tmp_path, rows, store, model_bytes=None, model_metadata=None, statistics=None, **options):
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    metrics.log_metric("accuracy", 0.0)  # recorded as evaluated; the gate scores the rows itself
    metrics.metadata["test_set"] = "2017..2018"
    count = len(list(tmp_path.glob("model-*")))
    model = tmp_path / f"model-{count}"
    model.mkdir()
    (model / "model.bst").write_bytes(model_bytes or f"tree {count}".encode())
    report = tmp_path / "evaluation.html"
    report.write_text("<html><body><h1>Evaluation</h1>" + reports.pending_gate_html("accuracy 0.5")
                      + "<h2>Metrics</h2></body></html>")
    verdict = Markdown(name="verdict", uri=str(tmp_path / f"verdict-{count}.md"))
    decided = HTML(name="report", uri=str(tmp_path / f"report-{count}.html"))
    arguments = dict(metrics=metrics, model=Model(name="model", uri=str(model), metadata=dict(model_metadata or {})),
                     evaluation_report=HTML(name="report", uri=str(report)), rows=rows, gate_metric="accuracy",
                     baseline_metric="always_up_accuracy", threshold=0.5, tolerance=0.0, require_beat_baseline=False,
                     confidence=0.95, max_drift=0.25, deploy_if_champion_incomparable=False, model_name="sp500",
                     model_base_path=str(store), serving_namespace="", run_name="run-7", verdict=verdict,
                     report=decided, statistics=statistics)
    decision = gate_model.python_func(**{**arguments, **options})
    return decision, verdict, decided


def publish(store, folder, evaluation=None, labels=None):
    version = model_store.publish_version(folder, store, "sp500", evaluation or {})
    model_store.write_labels(store / "sp500", labels or ServingLabels(stable=int(version.name)))
    return int(version.name)


def comparison(verdict, check):
    (line,) = [c for c in verdict.metadata["comparisons"] if c.startswith(check + ":")]
    return line


def test_a_first_deploy_scores_the_challenger_on_its_rows_and_records_the_features(tmp_path):
    inputs, target, challenger, baseline = classification_rows(tmp_path)
    decision, verdict, _ = run_gate_step(tmp_path, rows_artifact(tmp_path, inputs, target, challenger, baseline),
                                         tmp_path / "store")
    assert decision == "deploy" and verdict.metadata["first_deploy"] is True
    assert verdict.metadata["scores_on_rows"]["challenger"] == pytest.approx(np.mean(challenger == target))
    evaluation = verdict.metadata["evaluation"]
    assert evaluation["features"] == FEATURES and evaluation["run"] == "run-7"
    assert json.dumps(verdict.metadata)  # the UI stores it as a Struct: JSON values only


def test_a_savedmodel_champion_is_scored_on_the_challengers_rows(tmp_path):
    store = tmp_path / "store"
    publish(store, keras_champion(tmp_path / "champion"),
            {"metrics": {"accuracy": 0.9}, "test_set": "2015..2016", "features": FEATURES})
    inputs, target, challenger, baseline = classification_rows(tmp_path)
    decision, verdict, report = run_gate_step(tmp_path, rows_artifact(tmp_path, inputs, target, challenger,
                                                                      baseline), store)
    independent = np.mean(np.argmax(inputs @ WEIGHTS, axis=1) == target)  # softmax keeps the argmax
    assert verdict.metadata["scores_on_rows"]["champion"] == pytest.approx(independent)
    interval = verdict.metadata["intervals"]["champion"]
    assert interval["point"] == pytest.approx(np.mean(challenger == target) - independent)
    assert interval["low"] < interval["point"] < interval["high"]
    line = comparison(verdict, "serving champion")
    assert line.startswith(f"serving champion: version 1 accuracy {independent:.4f} on these 400 rows")
    assert "stored: scored 0.9000 on its own test set (2015..2016) when deployed; not compared" in line
    assert decision == ("deploy" if interval["low"] >= 0 else "refuse")
    page = report.path and open(report.path).read()
    assert "data:image/png;base64" in page and "Every model on the same rows" in page
    assert "Not decided yet" not in page and "<h2>Metrics</h2>" in page  # the rest of the page is kept


def test_a_champion_of_another_input_width_is_refused_unless_allowed(tmp_path):
    store = tmp_path / "store"
    publish(store, keras_champion(tmp_path / "champion"), {"features": FEATURES})
    rows = rows_artifact(tmp_path, *classification_rows(tmp_path, width=4), features=FEATURES + ["vix_lag1"])
    decision, verdict, _ = run_gate_step(tmp_path, rows, store)
    assert decision == "refuse"
    assert comparison(verdict, "serving champion") == (
        "serving champion: version 1 cannot be scored on these rows: other features: it lacks vix_lag1 "
        "-> FAIL (deploy_if_champion_incomparable=false)")
    rows = rows_artifact(tmp_path, *classification_rows(tmp_path, width=4), features=[])  # width checked anyway
    decision, verdict, _ = run_gate_step(tmp_path, rows, store)
    assert decision == "refuse" and "another input width: its input 'features' is [batch, 3], these rows are " \
        "[batch, 4]" in comparison(verdict, "serving champion")
    assert run_gate_step(tmp_path, rows, store, deploy_if_champion_incomparable=True)[0] == "deploy"


@pytest.mark.parametrize("make_version, words", [
    (lambda folder: (folder / "saved_model.pb").write_bytes(b"not a graph"), "unreadable: "),
    (lambda folder: (folder / "README").write_text("nothing to serve"), "no stored model: its folder holds no"),
])
def test_an_unreadable_or_missing_model_is_one_line(tmp_path, make_version, words):
    store = tmp_path / "store"
    folder = tmp_path / "broken"
    folder.mkdir()
    make_version(folder)
    publish(store, folder)
    decision, verdict, _ = run_gate_step(tmp_path, rows_artifact(tmp_path, *classification_rows(tmp_path)), store)
    line = comparison(verdict, "serving champion")
    assert decision == "refuse" and words in line and "\n" not in line


def test_a_labelled_version_without_files_has_no_stored_model(tmp_path):
    store = tmp_path / "store"
    (store / "sp500").mkdir(parents=True)
    model_store.write_labels(store / "sp500", ServingLabels(stable=5))
    _, verdict, _ = run_gate_step(tmp_path, rows_artifact(tmp_path, *classification_rows(tmp_path)), store)
    assert "version 5 cannot be scored on these rows: no stored model (" in comparison(verdict, "serving champion")


def test_a_lightgbm_champion_and_canary_are_scored_by_weighted_correlation(tmp_path):
    import lightgbm

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(3000, 3)).astype(np.float32)
    target = inputs[:, 0] * 0.01 + rng.normal(0, 0.01, 3000)
    weight = rng.uniform(0.5, 2, 3000)
    store = tmp_path / "store"
    boosters = []
    for seed, rounds in ((1, 5), (2, 40)):  # the champion, then the canary
        folder = tmp_path / f"lgb-{seed}"
        folder.mkdir()
        booster = lightgbm.train({"verbose": -1, "seed": seed, "num_leaves": 7}, lightgbm.Dataset(inputs, target),
                                 rounds)
        booster.save_model(str(folder / "model.bst"))
        boosters.append(booster)
        publish(store, folder, {"features": FEATURES})
    model_store.write_labels(store / "sp500", ServingLabels(stable=1, canary=2, canary_percent=10))
    challenger = target + rng.normal(0, 0.01, 3000)
    rows = rows_artifact(tmp_path, inputs, target, challenger, -inputs[:, 1], "weighted_correlation", weight,
                         block_length=10)
    _, verdict, _ = run_gate_step(tmp_path, rows, store, gate_metric="weighted_correlation")

    def correlation(x):
        x, y = x - np.average(x, weights=weight), target - np.average(target, weights=weight)
        return np.average(x * y, weights=weight) / np.sqrt(np.average(x * x, weights=weight)
                                                           * np.average(y * y, weights=weight))
    scores = verdict.metadata["scores_on_rows"]
    assert scores["champion"] == pytest.approx(correlation(boosters[0].predict(inputs)), rel=1e-6)
    assert scores["canary"] == pytest.approx(correlation(boosters[1].predict(inputs)), rel=1e-6)
    assert comparison(verdict, "canary").endswith("-> reported (the stable version decides)")
    assert verdict.metadata["block_length"] == 10 and verdict.metadata["resamples"] == 2000

    narrow = rows_artifact(tmp_path, inputs[:, :2], target, challenger, -inputs[:, 1], "weighted_correlation",
                           weight, features=[])
    _, verdict, _ = run_gate_step(tmp_path, narrow, store, gate_metric="weighted_correlation")
    assert "another input width: it takes 3 features, these rows have 2" in comparison(verdict, "serving champion")


def test_drift_from_the_statistics_artifact_decides(tmp_path):
    statistics = Artifact(name="statistics", uri=str(tmp_path / "statistics"), metadata={"drift": {
        "measure": "psi", "champion_version": 1, "reason": "", "scores": {"nasdaq_lag1": 0.6, "dax_lag1": 0.1}}})
    decision, verdict, _ = run_gate_step(tmp_path, rows_artifact(tmp_path, *classification_rows(tmp_path)),
                                         tmp_path / "store", statistics=statistics)
    assert decision == "refuse" and "largest psi 0.6000 on nasdaq_lag1" in comparison(verdict, "drift")


@pytest.mark.parametrize("option, message", [
    (dict(confidence=1.0), "confidence must be strictly between 0 and 1, got 1"),
    (dict(max_drift=-0.1), "max_drift must be at least 0, got -0.1"),
    (dict(tolerance=1.5), "tolerance must be between 0 and 1, got 1.5"),
])
def test_a_setting_out_of_range_is_refused_at_run_time(tmp_path, option, message):
    with pytest.raises(InputError, match=message):
        run_gate_step(tmp_path, rows_artifact(tmp_path, *classification_rows(tmp_path)), tmp_path / "store",
                      **option)
    assert not list(tmp_path.glob("verdict-*"))


def test_the_step_refuses_to_deploy_the_serving_model_again(tmp_path):
    store = tmp_path / "store"
    rows = rows_artifact(tmp_path, *classification_rows(tmp_path))
    _, verdict, _ = run_gate_step(tmp_path, rows, store, model_bytes=b"tree\nsame trees")
    recorded_hash = verdict.metadata["evaluation"]["content_hash"]
    assert len(recorded_hash) == 64
    model = tmp_path / "deployed"
    model.mkdir()
    (model / "model.bst").write_bytes(b"tree\nsame trees")
    publish(store, model, verdict.metadata["evaluation"])
    again, verdict, report = run_gate_step(tmp_path, rows, store, model_bytes=b"tree\nsame trees",
                                           deploy_if_champion_incomparable=True)
    assert again == "refuse" and "identical to serving version 1" in verdict.metadata["reason"]
    decided = open(report.path).read()
    for line in verdict.metadata["comparisons"]:
        assert line.partition(": ")[2].partition(" -> ")[0].replace(">", "&gt;").replace("<", "&lt;") \
            .replace("'", "&#x27;") in decided


def test_the_step_takes_the_content_hash_the_train_step_recorded(tmp_path):
    _, verdict, _ = run_gate_step(tmp_path, rows_artifact(tmp_path, *classification_rows(tmp_path)),
                                  tmp_path / "store", model_metadata={"content_hash": "f" * 64})
    assert verdict.metadata["evaluation"]["content_hash"] == "f" * 64  # not the hash of the file's bytes


def test_the_rows_are_a_required_input_and_the_statistics_an_optional_one():
    """A pipeline cannot leave the gate without the rows it re-scores the champion on (the compiler
    refuses); a pipeline without a validation step compares no drift."""
    from components.release.gate_step import gate_model

    inputs = gate_model.component_spec.inputs
    assert inputs["rows"].optional is False and inputs["statistics"].optional is True


def test_the_intervals_go_to_the_steps_mlflow_run(tmp_path, monkeypatch):
    from components.common import tracking

    logged = {}

    class Recorded(tracking.TaskRun):
        def log_metrics(self, metrics, step=0):
            logged.update(metrics)

    monkeypatch.setattr(tracking, "task_run", lambda: Recorded(None, None))
    _, verdict, _ = run_gate_step(tmp_path, rows_artifact(tmp_path, *classification_rows(tmp_path)),
                                  tmp_path / "store")
    baseline = verdict.metadata["intervals"]["baseline"]
    assert logged["gate.challenger_minus_baseline.low"] == baseline["low"]
    assert logged["gate.challenger_minus_baseline.high"] == baseline["high"]
    assert logged["gate.challenger.score"] == verdict.metadata["scores_on_rows"]["challenger"]
