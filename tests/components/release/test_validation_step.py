"""The validation step around a model store: the first run infers, the deploy stores the statistics
and schema with the version, a later run checks against the serving champion's, or says why not."""

import html
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Model

from components.cluster import api as kube_api
from components.common.errors import InputError
from components.release.deploy import deploy_model
from components.release.validation_step import validate_data
from components.validation.validate import champion_baseline


def table(path, scale=1.0, assets=(0, 1, 2, 3), rows=2000):
    rng = np.random.default_rng(5)
    asset = np.resize(np.array(assets), rows)
    pq.write_table(pa.table({"r": rng.normal(0, 0.01 * scale, rows), "Asset_ID": asset}), path)
    return Dataset(name="data", uri=str(path))


def validate(tmp_path, data, base, run, skip=False, **options):
    statistics = Artifact(name="statistics", uri=str(tmp_path / run / "statistics"))
    report = HTML(name="report", uri=str(tmp_path / run / "report.html"))
    validate_data.python_func(model_name="m", model_base_path=str(base), serving_namespace="", skip_validation=skip,
                              statistics=statistics, report=report, data=data, categorical_columns="Asset_ID",
                              **options)
    return statistics, report


def deploy(tmp_path, base, statistics):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "saved_model.pb").write_text("graph")
    verdict = Markdown(name="verdict", uri="/unused")
    verdict.metadata.update(decision="deploy", reason="", comparisons=[], evaluation={})
    return deploy_model.python_func(model=Model(name="model", uri=str(model)), verdict=verdict, model_name="m",
                                    model_base_path=str(base), model_store_pvc="model-store", statistics=statistics)


@pytest.fixture
def store_with_champion(tmp_path, monkeypatch):
    """A folder store whose serving version 1 was deployed with its validation's statistics."""
    monkeypatch.setattr(kube_api, "in_cluster", lambda: False)
    base = tmp_path / "store"
    first, report = validate(tmp_path, table(tmp_path / "one"), base, "first")
    reason = "no serving champion yet; this run's schema is inferred from its own data"
    assert first.metadata["drift"] == {"measure": "psi", "champion_version": None, "scores": {}, "js_distance": {},
                                       "reason": reason}
    assert "Validated against nothing: no serving champion yet" in (tmp_path / "first" / "report.html").read_text()
    deploy(tmp_path, base, first)
    assert json.loads((base / "m" / "1" / "schema.json").read_text())["columns"]["Asset_ID"]["domain"] == \
        ["0", "1", "2", "3"]
    return base


def test_a_later_run_is_scored_against_the_champion_and_reported_worst_first(tmp_path, store_with_champion):
    statistics, report = validate(tmp_path, table(tmp_path / "two", scale=5), store_with_champion, "second")
    drift = statistics.metadata["drift"]
    assert drift["champion_version"] == 1 and drift["reason"] == "" and drift["scores"]["r"] > 1
    assert drift["scores"]["Asset_ID"] == 0 and list(drift["scores"]) == ["r", "Asset_ID"]
    page = (tmp_path / "second" / "report.html").read_text()
    assert page.index("Anomalies") < page.index("Drift, worst first") < page.index("This run over the champion")
    assert html.escape("Compared with serving version 1's training data.") in page and "above 0.25" in page
    assert "r: values" in page and "(warning)" in page  # beyond the range: reported, not fatal


def test_an_anomaly_stops_the_step_before_any_output_unless_skipped(tmp_path, store_with_champion):
    without_asset_2 = table(tmp_path / "gone", assets=(0, 1, 3))
    with pytest.raises(InputError, match="^data validation: Asset_ID: 2 is missing, the serving model's training "
                                         "data had it$"):
        validate(tmp_path, without_asset_2, store_with_champion, "stopped")
    assert not (tmp_path / "stopped").exists()
    statistics, _ = validate(tmp_path, without_asset_2, store_with_champion, "skipped", skip=True)
    assert statistics.metadata["anomalies"] == ["Asset_ID: 2 is missing, the serving model's training data had it"]
    assert "skip_validation is set: these did not stop the run." in (tmp_path / "skipped" / "report.html").read_text()


def test_source_counts_are_checked_like_missing_values(tmp_path, store_with_champion):
    quality = Metrics(name="quality", uri="/unused")
    quality.metadata.update(nasdaq_days=800, nasdaq_skipped_days=200)
    with pytest.raises(InputError, match="a new column"):  # the champion's data had no such series
        validate(tmp_path, table(tmp_path / "q"), store_with_champion, "q", source_quality=quality)


def test_a_champion_without_stored_statistics_is_said_in_one_line():
    stored = {"statistics.json": None, "schema.json": None}
    baseline = champion_baseline(stored.get, 4)
    assert (baseline.version, baseline.statistics) == (4, None)
    assert baseline.reason == ("serving version 4 was deployed without statistics and schema (before validation "
                               "existed): validated against nothing")
    with pytest.raises(InputError, match="serving version 4's statistics.json is not valid JSON"):
        champion_baseline({"statistics.json": b"{", "schema.json": b"{}"}.get, 4)


def test_the_data_is_given_once(tmp_path):
    with pytest.raises(InputError, match="give the data to validate as data or as data_path, one of them"):
        validate(tmp_path, None, tmp_path / "store", "none")

