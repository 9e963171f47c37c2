"""The server's Prometheus metrics: requests by version and serving label, and model load attempts."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.serving.loaded_models import ModelRegistry
from components.serving.metrics import ServingMetrics
from components.store.folder import publish_version


def samples(metrics: ServingMetrics, name: str) -> dict[frozenset, float]:
    return {frozenset(sample.labels.items()): sample.value
            for family in text_string_to_metric_families(metrics.exposition().decode())
            for sample in family.samples if sample.name == name}


def test_a_request_is_counted_and_timed_with_the_label_of_the_version_that_answered():
    labels = {("sp500", 1): "stable", ("sp500", 2): "canary"}
    metrics = ServingMetrics(label_of=lambda name, version: labels.get((name, version), ""))
    for version in (2, 2, 1, 3):
        with metrics.request("sp500", "predict", "REST") as outcome:
            outcome.version = version
    with metrics.request("sp500", "predict", "GRPC") as outcome:
        outcome.status = "NOT_FOUND"  # refused before any version answered

    counts = {(dict(k)["version"], dict(k)["label"], dict(k)["status"]): v
              for k, v in samples(metrics, ":tensorflow:serving:request_count_total").items()}
    assert counts == {("2", "canary", "OK"): 2, ("1", "stable", "OK"): 1, ("3", "", "OK"): 1,
                      ("", "", "NOT_FOUND"): 1}
    timed = {dict(k)["label"]: v for k, v in samples(metrics, ":tensorflow:serving:request_latency_count").items()
             if dict(k)["version"] == "2"}
    assert timed == {"canary": 2}


def test_a_failure_inside_a_request_is_counted_as_internal():
    metrics = ServingMetrics()
    with pytest.raises(RuntimeError), metrics.request("sp500", "predict", "REST") as outcome:
        outcome.version = 1
        raise RuntimeError("bug")
    (labels,) = samples(metrics, ":tensorflow:serving:request_count_total")
    assert dict(labels)["status"] == "INTERNAL" and dict(labels)["label"] == ""


def test_the_registry_counts_each_load_attempt_and_names_the_labels_of_its_versions(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "notes.txt").write_text("not a model")
    publish_version(broken, tmp_path / "store", "sp500")
    registry = ModelRegistry(tmp_path / "store")
    registry.poll()
    registry.poll()

    attempts = samples(registry.metrics, ":tensorflow:cc:saved_model:load_attempt_count_total")
    assert attempts == {frozenset({"model_path": str(tmp_path / "store" / "sp500" / "1"), "status": "fail",
                                   "model_name": "sp500", "version": "1"}.items()): 2}

    registry.labels["sp500"] = {"stable": 1, "canary": 2}  # as poll_model sets them from labels.json
    assert [registry.metrics.label_of("sp500", v) for v in (1, 2, 3)] == ["stable", "canary", ""]
