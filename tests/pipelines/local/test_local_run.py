"""The local runner's bookkeeping: reading kfp.local's log lines and writing the summary."""

import json
import re
from pathlib import Path

import pytest

from components.common.errors import InputError
from components.release.bootstrap import Interval
from components.release.gate import Rules, Served, Verdict, decide
from components.store import folder as model_store
from pipelines import registry
from pipelines.local.output import TaskRun
from pipelines.local.report import LocalRunResult, link_reports, run_record, summary, write_index
from pipelines.local.run import _read_task_outputs, run_local


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
    noise = Interval(-0.02, -0.05, 0.01, 0.95)
    refused = decide("accuracy", 0.52, Rules(0.5, 0.01), "always_up_accuracy", noise, Served(2, 0.56, noise))
    text = summary(result_with(tmp_path / "a", 0.52, refused), entry)
    assert "accuracy: 0.5200   naive baseline (always_up_accuracy): 0.5400" in text
    for line in refused.comparisons:
        assert f"gate: {line}" in text
    assert f"gate: {refused.reason}" in text and "worse than serving version 2" in text
    assert text.splitlines()[-2] == "nothing deployed"

    version = tmp_path / "store" / "sp500" / "1"
    version.mkdir(parents=True)
    model_store.write_labels(version.parent, model_store.ServingLabels(stable=1))
    first = decide("accuracy", 0.52, Rules(0.5), "always_up_accuracy", noise, None)
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


def test_numbers_are_written_for_people_in_the_summary_record_and_index(tmp_path):
    verdict = Verdict(True, "DEPLOY: first deploy.", ["a comparison"])
    result = result_with(tmp_path, 0.5408388520971302, verdict)
    result.tasks["download-prices"] = TaskRun("download-prices", "SUCCESS", 1.0, 1620258720.0,
                                              {"rows": 594400.0, "test_start": 1620258720.0, "rmse": 0.0060031234})
    result.params.update({"epochs": 20.0, "seed": 42.0, "learning_rate": 0.001})
    record = run_record(result)
    for shown in ("download-prices.rows = 594,400", "download-prices.test_start = 2021-05-05 23:52 UTC",
                  "download-prices.rmse = 0.006003", "epochs = 20", "seed = 42", "learning_rate = 0.001"):
        assert shown in record, shown
    assert "e+0" not in record and "20.0" not in record
    text = summary(result, registry.get("sp500"))
    assert re.search(r"^  download-prices +SUCCESS +1\.0s  1620258720 \(2021-05-05 23:52 UTC as a Unix time\)$",
                     text, re.M), text
    write_index(result, text)
    index = (tmp_path / "index.html").read_text()
    assert "594,400" in index and "2021-05-05 23:52 UTC" in index and "e+05" not in index


def test_the_index_is_styled_and_links_the_gate_verdict(tmp_path):
    verdict = Verdict(False, "REFUSED: below the threshold.", ["threshold: accuracy 0.5 < 0.7 -> fail"])
    result = result_with(tmp_path, 0.5, verdict)
    (tmp_path / "artifacts" / "sp500-run" / "gate-model" / "verdict").write_text("# REFUSED\n")
    write_index(result, summary(result, registry.get("sp500")))
    index = (tmp_path / "index.html").read_text()
    assert "<style>" in index and "class='state SUCCEEDED'" in index
    assert "href='artifacts/sp500-run/gate-model/verdict'>gate verdict</a>" in index


def test_an_interrupted_run_is_marked_so(tmp_path):
    result = result_with(tmp_path, 0.5, Verdict(True, "DEPLOY: first deploy.", []))
    result.interrupted, result.error = "SIGINT", "step 'deploy-model' stopped"
    text = summary(result, registry.get("sp500"))
    assert text.startswith("pipeline sp500: INTERRUPTED in ") and "interrupted: step 'deploy-model' stopped" in text
    write_index(result, text)
    assert "class='state INTERRUPTED'" in (tmp_path / "index.html").read_text()
