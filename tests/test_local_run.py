"""The local runner's bookkeeping: reading kfp.local's log lines and writing the summary."""

import io
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
    _LogCapture,
    _read_task_outputs,
    link_reports,
    run_local,
    summary,
)


def test_log_capture_times_tasks_and_keeps_the_last_error():
    terminal, log = io.StringIO(), io.StringIO()
    capture = _LogCapture(terminal, log, verbose=False)
    capture.write("10:00:00.000 - INFO - Executing task \x1b[96m'download'\x1b[0m\n")
    capture.write('    {"executor": "json echo"}\n    plain step line\n')
    capture.write("    components.errors.InputError: data file not found: /x.csv\n")
    capture.write("10:00:01.000 - ERROR - Task \x1b[96m'download'\x1b[0m finished with status FAILURE\n")
    assert capture.tasks["download"].status == "FAILURE"
    assert capture.tasks["download"].seconds >= 0
    assert capture.last_error() == "data file not found: /x.csv"
    assert "plain step line" in terminal.getvalue() and "json echo" not in terminal.getvalue()
    assert "json echo" in log.getvalue()


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


def test_a_failed_step_shows_no_traceback_on_the_terminal():
    terminal, log = io.StringIO(), io.StringIO()
    capture = _LogCapture(terminal, log, verbose=False)
    capture.write("10:00:00.000 - INFO - Executing task \x1b[96m'download'\x1b[0m\n")
    capture.write("    reading sp500\n    Traceback (most recent call last):\n")
    capture.write('      File "data.py", line 3, in read\n        raise ValueError("x")\n')
    capture.write("    ValueError: x\n    \n    The above exception was the direct cause of the following exception:\n")
    capture.write("    \n    Traceback (most recent call last):\n      File \"data.py\", line 5\n")
    capture.write("    components.errors.TransientError: http://h/x.csv unreachable after 4 attempts\n")
    capture.write("    a line the step printed after handling an error\n\n")
    capture.write("10:00:01.000 - ERROR - Task \x1b[96m'download'\x1b[0m finished with status FAILURE\n")
    shown = terminal.getvalue()
    assert "reading sp500" in shown and "finished with status FAILURE" in shown
    assert "a line the step printed after handling an error" in shown
    assert "Traceback" not in shown and "File " not in shown and "ValueError" not in shown
    assert log.getvalue().count("Traceback") == 2
    assert capture.last_error() == "http://h/x.csv unreachable after 4 attempts"


def test_a_bug_keeps_its_exception_name():
    capture = _LogCapture(io.StringIO(), io.StringIO(), verbose=False)
    capture.write("    KeyError: 'Close'\n")
    assert capture.last_error() == "KeyError: 'Close'"


def test_output_dumps_are_trimmed_to_a_line_per_output():
    terminal = io.StringIO()
    capture = _LogCapture(terminal, io.StringIO(), verbose=False)
    capture.write("10:00:00.000 - INFO - Task \x1b[96m'evaluate'\x1b[0m outputs:\n")
    capture.write("    Output: 0.5408388520971302\n")
    capture.write("    metrics: Metrics( name='metrics',\n                      uri='/runs/x/evaluate/metrics',\n")
    capture.write("                      metadata={'accuracy': 0.5408388520971302, 'test_days': 453.0} )\n")
    capture.write("    confusion: ClassificationMetrics( name='confusion',\n               uri='/runs/x/c',\n")
    capture.write("               metadata={'confusionMatrix': {'rows': [{'row': [11.0, 196.0]}]}} )\n")
    capture.write("--------------------------------------------------------------------------------\n")
    assert terminal.getvalue().splitlines()[1:] == [
        "    Output: 0.5408388520971302", "    metrics: Metrics", "      accuracy 0.5408  test_days 453",
        "    confusion: ClassificationMetrics", "-" * 80]


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
