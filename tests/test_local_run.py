"""The local runner's bookkeeping: reading kfp.local's log lines and writing the summary."""

import io
import json
from pathlib import Path

from components import model_store
from components.gate import Champion, Verdict, decide
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
