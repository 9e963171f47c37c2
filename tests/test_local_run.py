"""The local runner's bookkeeping: reading kfp.local's log lines and writing the summary."""

import io
from pathlib import Path

from pipelines import registry
from pipelines.local_run import LocalRunResult, TaskRun, _LogCapture, summary


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


def result_with(accuracy: float, baseline: float, deployed: bool) -> LocalRunResult:
    tasks = {"evaluate": TaskRun("evaluate", "SUCCESS", 1.0, accuracy, {"always_up_accuracy": baseline})}
    if deployed:
        tasks["deploy-model"] = TaskRun("deploy-model", "SUCCESS", 0.1, "/store/sp500/3")
    return LocalRunResult("sp500", Path("/runs/x"), {"threshold": 0.5}, tasks, seconds=2.0)


def test_summary_states_the_gate_and_the_baseline():
    entry = registry.get("sp500")
    refused = summary(result_with(0.45, 0.54, deployed=False), entry)
    assert "gate: REFUSED (accuracy 0.4500 < threshold 0.5 and below the naive baseline)" in refused
    passed = summary(result_with(0.52, 0.54, deployed=True), entry)
    assert "model deployed to /store/sp500/3" in passed
    assert "(not better than the baseline)" in passed
    better = summary(result_with(0.60, 0.54, deployed=True), entry)
    assert "not better" not in better and "baseline (always_up_accuracy): 0.5400" in better
