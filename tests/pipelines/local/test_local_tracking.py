"""pipelines.local.tracking: a local run tracked into MLflow in the platform plugin's shape, read back
through MLflow's client; a tracking server that goes away mid-run; bad TRACKING values."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_failed_cleanly, run_cli
from standins.mlflow import mlflow_server, read_runs

from components.common.errors import InputError
from pipelines.local import tracking as local_tracking
from pipelines.local.attach import Exited, TaskCall
from pipelines.local.mlflow_server import Store, parse_store, stop_server

SP500_TASKS = {"download-prices", "preprocess", "validate-data", "train", "evaluate", "gate-model"}


def test_tracking_values_name_a_server_a_sqlite_store_or_a_folder(tmp_path):
    assert parse_store("http://mlflow:5000") == Store("http://mlflow:5000")
    database = parse_store(f"sqlite:///{tmp_path}/t.db")
    assert database.backend == f"sqlite:///{tmp_path}/t.db" and database.artifacts == tmp_path / "mlartifacts"
    folder = parse_store(str(tmp_path / "store"))
    assert folder.backend == f"sqlite:///{tmp_path}/store/mlflow.db"
    assert folder.artifacts == tmp_path / "store" / "artifacts"
    (tmp_path / "file").write_text("x")
    for bad, message in ((str(tmp_path / "file"), "is a file, not a folder"), ("ftp://host/x", "give a folder"),
                         (f"sqlite:///{tmp_path}", "is a folder, not a SQLite file")):
        with pytest.raises(InputError, match=message):
            parse_store(bad)


def command_for(output_folder: str, parameters: dict, artifacts: dict) -> list[str]:
    executor_input = {"inputs": {"parameterValues": parameters},
                      "outputs": {"artifacts": artifacts, "outputFile": f"{output_folder}/executor_output.json"}}
    return ["sh", "-c", "…", "--executor_input", json.dumps(executor_input), "--function_to_execute", "f"]


def test_a_tasks_place_inputs_and_metrics_outputs_come_from_its_executor_input():
    metrics = {"artifacts": [{"type": {"schemaTitle": "system.Metrics"}}]}
    model = {"artifacts": [{"type": {"schemaTitle": "system.Model"}}]}
    plain = TaskCall.from_command(command_for("/root/sp500-1/train", {"epochs": 2}, {"model": model}), "/root")
    assert plain == TaskCall("sp500-1", "train", None, None, {"epochs": 2}, ())
    trial = TaskCall.from_command(command_for("/root/mnist-1/for-loop-2-iteration-3/train-trial", {},
                                              {"model": model, "metrics": metrics}), "/root")
    assert (trial.loop, trial.iteration, trial.metrics_outputs) == ("for-loop-2", 3, ("metrics",))
    assert trial.output_file == Path("mnist-1/for-loop-2-iteration-3/train-trial/executor_output.json")


@pytest.mark.parametrize("tracking, message", [
    ("ftp://host/store", "TRACKING ftp://host/store: give a folder, sqlite:///path/mlflow.db or an http(s):// server"),
    ("sqlite:///{tmp}", "TRACKING sqlite:///{tmp}: {tmp} is a folder, not a SQLite file"),
], ids=["unknown-scheme", "sqlite-folder"])
def test_a_bad_tracking_value_is_refused_before_the_run(tmp_path, tracking, message):
    result = run_cli("run", "sp500", cwd=tmp_path, TRACKING=tracking.replace("{tmp}", str(tmp_path)))
    assert_failed_cleanly(result, tmp_path, "sp500", 2, message.replace("{tmp}", str(tmp_path)))


def test_the_ui_command_refuses_a_server_uri(capsys):
    assert local_tracking.ui_main(["http://mlflow:5000"]) == 2
    assert capsys.readouterr().err.strip() == ("error: TRACKING http://mlflow:5000 is a server already: "
                                               "open it in a browser")


@pytest.mark.e2e
def test_a_run_tracked_into_sqlite_has_the_platforms_shape(tmp_path):
    """One parent run (the pipeline's parameters), one finished nested run per task with the inputs
    as parameters, per-epoch curves, the evaluation's scores and baseline, the report and the verdict."""
    database = tmp_path / "tracking" / "mlflow.db"
    result = run_cli("run", "sp500", "epochs=2", cwd=tmp_path, TRACKING=f"sqlite:///{database}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "warning" not in result.stdout + result.stderr
    runs = read_runs(f"sqlite:///{database}")
    parents = [run for run in runs if "mlflow.parentRunId" not in run["tags"]]
    assert len(parents) == 1
    parent = parents[0]
    assert re.fullmatch(r"sp500-\d{4}(-\d+)+", parent["name"]) and parent["status"] == "FINISHED"
    assert parent["experiment"] == "sp500"
    assert parent["params"]["epochs"] == "2" and parent["params"]["tickers"] == "sp500,nasdaq"
    assert (f"MLflow: run {parent['id']} in experiment 'sp500' of sqlite:///{database} "
            f"(artifacts: {database.parent / 'mlartifacts'}); browse: make tracking-ui "
            f"TRACKING=sqlite:///{database}") in result.stdout

    tasks = {run["name"]: run for run in runs if run is not parent}
    assert set(tasks) == SP500_TASKS
    assert {run["tags"]["mlflow.parentRunId"] for run in tasks.values()} == {parent["id"]}
    assert {run["status"] for run in tasks.values()} == {"FINISHED"}

    train = tasks["train"]
    assert [step for step, _ in train["histories"]["loss"]] == [1, 2]
    assert [step for step, _ in train["histories"]["accuracy"]] == [1, 2]
    assert train["params"]["epochs"] == "2" and train["params"]["model_type"] == "deep"  # the inputs
    assert train["params"]["features"] == "nasdaq_lag1,nasdaq_lag2,nasdaq_lag3,sp500_lag1,sp500_lag2,sp500_lag3"
    assert train["tags"]["model_uri"].endswith("/train/model")

    evaluate = tasks["evaluate"]
    assert {"accuracy", "always_up_accuracy", "f1"} <= set(evaluate["metrics"])
    assert len(evaluate["histories"]["accuracy"]) == 1  # the step's own, not repeated by the launcher's part
    gate = tasks["gate-model"]
    assert gate["tags"]["gate.decision"] == "refuse" and gate["tags"]["gate.reason"].startswith("REFUSED")
    artifacts = database.parent / "mlartifacts"
    for run, name in ((evaluate, "report.html"), (gate, "verdict.md")):
        stored = artifacts / run["artifact_uri"].removeprefix("mlflow-artifacts:/") / name
        assert stored.is_file(), stored
    assert "always_up_accuracy" in (artifacts / evaluate["artifact_uri"].removeprefix("mlflow-artifacts:/")
                                    / "report.html").read_text()


@pytest.mark.e2e
def test_a_server_that_goes_away_mid_run_costs_one_warning_and_no_failure(tmp_path):
    with mlflow_server(tmp_path / "mlflow") as (uri, server):
        run = subprocess.Popen([sys.executable, "-m", "pipelines", "run", "sp500", "epochs=2"], cwd=tmp_path,
                               env={**os.environ, "TRACKING": uri}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in run.stdout:
            lines.append(re.sub(r"\x1b\[[0-9;]*m", "", line))
            if "Executing task 'train'" in lines[-1]:
                stop_server(server)
        assert run.wait(timeout=600) == 0, "".join(lines)[-3000:]
    output = "".join(lines)
    assert "pipeline sp500: SUCCEEDED" in output
    warnings = [line.strip() for line in lines if "warning: MLflow tracking" in line]
    runner = [line for line in warnings if "the run goes on untracked" in line]
    steps = [line for line in warnings if "this step logs no more there" in line]
    # The runner warns once and tracks no more tasks; at most the task running then warns (once).
    assert len(runner) == 1 and len(steps) <= 1 and len(warnings) == len(runner) + len(steps), output[-6000:]



def test_tasks_side_by_side_each_close_their_own_run(tmp_path, monkeypatch):
    """Loop iterations run in threads at once: each task's hook ends the run its own start created."""
    import threading

    tracking = local_tracking.LocalTracking(Store("http://127.0.0.1:9"), "http://127.0.0.1:9", "mnist", {},
                                            tmp_path, {})
    monkeypatch.setattr(tracking, "start_task", lambda call: f"run-of-{call.iteration}")
    closed = []
    monkeypatch.setattr(tracking, "end_task", lambda run_id, call, succeeded: closed.append((run_id, call.iteration)))
    both_started = threading.Barrier(2)

    def task(iteration: int) -> None:
        call = TaskCall("mnist-1", "train-trial", "for-loop-1", iteration, {}, ())
        environment = tracking.started(call)
        assert environment["MLFLOW_RUN_ID"] == f"run-of-{iteration}"
        both_started.wait()
        tracking.ended(call, Exited(0))

    threads = [threading.Thread(target=task, args=(iteration,)) for iteration in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(closed) == [("run-of-0", 0), ("run-of-1", 1)]
