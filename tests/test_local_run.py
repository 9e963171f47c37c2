"""The local runner's bookkeeping: reading kfp.local's log lines and writing the summary."""

import json
from pathlib import Path

import pytest

from components import model_store
from components.errors import InputError
from components.gate import Champion, Verdict, decide
from pipelines import registry
from pipelines.local_run import (
    LocalRunResult,
    TaskRun,
    _read_task_outputs,
    link_reports,
    run_local,
    summary,
)


def result_with(run_dir: Path, accuracy: float, verdict, deployed: str | None = None) -> LocalRunResult:
    """A finished run whose gate step wrote `verdict` as kfp.local writes outputs."""
    tasks = {"evaluate": TaskRun("evaluate", "SUCCESS", 1.0, accuracy, {"always_up_accuracy": 0.54}),
             "gate-model": TaskRun("gate-model", "SUCCESS", 0.1, verdict.decision)}
    output = run_dir / "artifacts" / "sp500-run" / "gate-model" / "executor_output.json"
    output.parent.mkdir(parents=True)
    metadata = {"decision": verdict.decision, "reason": verdict.reason, "comparisons": verdict.comparisons}
    output.write_text(json.dumps({"parameterValues": {"Output": verdict.decision},
                                  "artifacts": {"verdict": {"artifacts": [{"metadata": metadata}]}}}))
    if deployed:
        tasks["deploy-model"] = TaskRun("deploy-model", "SUCCESS", 0.1, deployed)
    _read_task_outputs(run_dir / "artifacts", tasks)  # as run_local reads what the steps wrote
    return LocalRunResult("sp500", run_dir, {"threshold": 0.5}, tasks, seconds=2.0)


def test_summary_states_every_comparison_and_the_reason_from_the_verdict(tmp_path):
    entry = registry.get("sp500")
    refused = decide("accuracy", 0.52, 0.5, "always_up_accuracy", 0.54, Champion(2, 0.56), 0.01, False)
    text = summary(result_with(tmp_path / "a", 0.52, refused), entry)
    assert "accuracy: 0.5200   naive baseline (always_up_accuracy): 0.5400" in text
    for line in refused.comparisons:
        assert f"gate: {line}" in text
    assert f"gate: {refused.reason}" in text and "worse than serving version 2" in text
    assert text.splitlines()[-2] == "nothing deployed"

    version = tmp_path / "store" / "sp500" / "1"
    version.mkdir(parents=True)
    model_store.write_labels(version.parent, model_store.ServingLabels(stable=1))
    first = decide("accuracy", 0.52, 0.5, "always_up_accuracy", 0.54, None, 0.0, False)
    text = summary(result_with(tmp_path / "b", 0.52, first, str(version)), entry)
    assert "gate: serving champion: none, nothing is serving yet -> first deploy" in text
    assert f"model deployed to {version} (labels: stable=1)" in text


def test_the_summary_repeats_the_verdict_and_decides_nothing_itself(tmp_path):
    verdict = Verdict(False, "REFUSED: a reason only the gate knows. Nothing is deployed.", ["a comparison"])
    text = summary(result_with(tmp_path, 0.99, verdict), registry.get("sp500"))
    assert "gate: a comparison" in text and "gate: REFUSED: a reason only the gate knows." in text


def test_html_reports_get_an_html_name_and_other_files_do_not(tmp_path):
    step = tmp_path / "artifacts" / "pipeline-run" / "evaluate"
    step.mkdir(parents=True)
    (step / "report").write_text("<!doctype html><html><body>scores</body></html>")
    (step / "metrics").write_text("{}")
    (step / "executor_output.json").write_text("{}")
    reports = link_reports(tmp_path / "artifacts", tmp_path / "reports")
    assert reports == [tmp_path / "reports" / "evaluate-report.html"]
    assert reports[0].read_text().endswith("scores</body></html>")


def test_summary_leaves_the_error_to_the_terminal_when_asked():
    result = LocalRunResult("sp500", Path("/runs/x"), {}, {"download": TaskRun("download", "FAILURE")},
                            error="step 'download' failed: data file not found: /x.csv")
    entry = registry.get("sp500")
    assert "error: step 'download' failed" in summary(result, entry)
    assert "error:" not in summary(result, entry, with_error=False)


def test_a_model_store_that_is_a_file_is_refused_before_any_step(tmp_path):
    store = tmp_path / "store"
    store.write_text("")
    with pytest.raises(InputError, match=f"model_base_path {store}/models: {store} is a file, not a folder"):
        run_local("sp500", {"model_base_path": str(store / "models")}, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_bad_retry_budget_is_refused_before_any_step(tmp_path, monkeypatch):
    monkeypatch.setenv("FETCH_RETRY_BUDGET_S", "-1")
    with pytest.raises(InputError, match="FETCH_RETRY_BUDGET_S='-1' should be a positive number of seconds"):
        run_local("sp500", {}, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
