"""components.common.tracking's child runs: the trials a search step trains in-process, each an
MLflow run nested under the step's run, named, with its points and curves, and finished."""

import uuid

from components.common import tracking
from pipelines.mnist import sweep
from pipelines.mnist.trials import track_trial


def test_each_trial_is_a_finished_child_of_the_steps_run(mlflow_server, monkeypatch):
    from mlflow.tracking import MlflowClient

    for name, value in tracking.HTTP_LIMITS.items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(mlflow_server)
    experiment = client.create_experiment(f"test-{uuid.uuid4().hex[:8]}")
    step_run = client.create_run(experiment, run_name="search-trials").info.run_id
    run = tracking.TaskRun(step_run, mlflow_server)
    history = {"loss": [0.9, 0.5], "val_accuracy": [0.8, 0.9]}
    for name in ("trial00-lr0.01-layers1", "trial01-lr0.003-layers2"):
        child = run.child_run(name)
        track_trial(child, sweep.TrialResult(name, 0.01, 1, 8, 2, 0.9, 0.3, 1.0), history, None)
        child.end()
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{step_run}'")
    assert sorted(child.info.run_name for child in children) == ["trial00-lr0.01-layers1", "trial01-lr0.003-layers2"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.params == {"learning_rate": "0.01", "hidden_layers": "1"}
        assert [(m.step, m.value) for m in client.get_metric_history(child.info.run_id, "val_accuracy")] == \
            [(1, 0.8), (2, 0.9)]
        assert "model_uri" not in child.data.tags and child.data.tags["trial"] == child.info.run_name
    assert client.get_run(step_run).info.status == "RUNNING", "the step's own run is the platform's to end"


def test_without_tracking_a_child_run_is_inactive_and_contacts_nothing():
    child = tracking.TaskRun(None, None).child_run("trial00")
    assert not child.active
    child.log_params({"learning_rate": 0.1})
    child.end()
