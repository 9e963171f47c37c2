"""components.common.tracking: off without the platform's variables, into the given run with them,
and a tracking server that fails costs one warning line and a bounded wait."""

import os
import subprocess
import sys
import time
import uuid

import pytest
from conftest import REPO, free_port

from components.common import tracking

OFF_SCRIPT = """
import socket, sys
def refuse(*args, **kwargs):
    raise AssertionError("tracking off opened a connection")
socket.socket.connect = refuse
from components.common import tracking
run = tracking.task_run()
assert not run.active
run.log_params({"a": 1}); run.log_metrics({"loss": 0.5}, step=1); run.set_tags({"t": "x"}); run.set_name("n")
run.tag_parent({"t": "x"}); run.log_artifact("/dev/null", "x"); run.flush()
assert run.keras_callbacks() == [] and run.lightgbm_callbacks() == []
from components.release import gate
gate.log_scores(type("M", (), {"log_metric": lambda self, k, v: None})(), {"accuracy": 0.5}, "accuracy")
print(sorted(m for m in sys.modules if m.split(".")[0] == "mlflow"))
"""


@pytest.mark.parametrize("variables", [{}, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
                                       {"MLFLOW_RUN_ID": "0123"}], ids=["none", "uri-only", "run-id-only"])
def test_without_both_variables_nothing_is_imported_or_contacted(variables):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | variables
    done = subprocess.run([sys.executable, "-c", OFF_SCRIPT], cwd=REPO, capture_output=True, text=True,
                          env={**environment, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]" and done.stderr == ""


@pytest.fixture
def bounded_http(monkeypatch):
    """MLflow's HTTP settings as a step sets them, restored afterwards."""
    for name, value in tracking.HTTP_LIMITS.items():
        monkeypatch.setenv(name, value)


class Clock:
    """tracking's clock, moved by the test (`time.time` stays real: it stamps the metrics)."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def time() -> float:
        return time.time()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    stopped = Clock()
    monkeypatch.setattr(tracking, "time", stopped)
    return stopped


@pytest.fixture
def connections(monkeypatch) -> list[tuple[object, float | None]]:
    """Every TCP connection this process opens meanwhile: (address, the socket's timeout)."""
    import socket

    opened, connect = [], socket.socket.connect

    def recording(sock, address):
        opened.append((address, sock.gettimeout()))
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    return opened


def given_run(uri: str) -> tuple[object, str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.create_experiment(f"test-{uuid.uuid4().hex[:8]}")
    return client, experiment, client.create_run(experiment, run_name="given by the platform").info.run_id


def test_logs_buffered_metrics_tags_and_artifacts_into_the_given_run(mlflow_server, tmp_path, bounded_http,
                                                                     clock):
    client, experiment, run_id = given_run(mlflow_server)
    run = tracking.TaskRun(run_id, mlflow_server)
    run.log_params({"batch_size": 64})
    for epoch in (1, 2, 3):
        run.log_metrics({"loss": 1 / epoch}, step=epoch)
    assert client.get_metric_history(run_id, "loss") == []  # buffered: the clock stands still, nothing sent
    run.flush()
    run.set_tags({"model_uri": "gs://b/m", "unset": None})
    (tmp_path / "report").write_text("<html>report</html>")
    run.log_artifact(tmp_path / "report", "report.html")
    assert run.active
    fetched = client.get_run(run_id)
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert fetched.data.params == {"batch_size": "64"}
    assert fetched.data.tags["model_uri"] == "gs://b/m" and "unset" not in fetched.data.tags
    assert [f.path for f in client.list_artifacts(run_id)] == ["report.html"]
    assert fetched.info.status == "RUNNING"  # the platform ends the run, not the step
    assert [r.info.run_id for r in client.search_runs([experiment])] == [run_id]


def test_buffered_metrics_are_sent_once_flush_every_s_has_passed(mlflow_server, bounded_http, clock):
    client, _, run_id = given_run(mlflow_server)
    run = tracking.TaskRun(run_id, mlflow_server)
    run.log_metrics({"loss": 1.0}, step=1)
    clock.now += tracking.FLUSH_EVERY_S - 0.01
    run.log_metrics({"loss": 0.5}, step=2)
    assert client.get_metric_history(run_id, "loss") == []
    clock.now += 0.01
    run.log_metrics({"loss": 0.25}, step=3)
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2, 3]


def test_lightgbm_callback_logs_every_round(mlflow_server, bounded_http):
    import lightgbm as lgb
    import numpy as np

    client, _, run_id = given_run(mlflow_server)
    run = tracking.TaskRun(run_id, mlflow_server)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 3))
    target = features[:, 0] + rng.normal(0, 0.1, 300)
    train = lgb.Dataset(features[:200], target[:200])
    lgb.train({"objective": "regression", "metric": "l2", "verbose": -1, "num_threads": 1}, train,
              num_boost_round=7, valid_sets=[lgb.Dataset(features[200:], target[200:], reference=train)],
              valid_names=["validation"], callbacks=run.lightgbm_callbacks())
    run.flush()
    history = client.get_metric_history(run_id, "validation_l2")
    assert [m.step for m in history] == list(range(1, 8))
    assert history[-1].value < history[0].value


def test_a_server_that_refuses_costs_one_warning_line_then_nothing(capsys, bounded_http, connections):
    port = free_port()
    run = tracking.TaskRun("0123456789abcdef", f"http://127.0.0.1:{port}")
    run.log_params({"a": 1})
    run.log_metrics({"loss": 1.0}, step=1)
    run.flush()
    run.set_tags({"t": "x"})
    # One attempt (MLflow's default would retry 7 times with backoff), on a socket bounded by the
    # step's 10 s, and none after it.
    timeout = float(tracking.HTTP_LIMITS["MLFLOW_HTTP_REQUEST_TIMEOUT"])
    assert [(address, limit) for address, limit in connections if address[1] == port] == \
        [(("127.0.0.1", port), timeout)]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: MLflow tracking to http://127.0.0.1:"), lines
    assert not run.active and run.keras_callbacks() == []


def test_a_server_that_never_answers_is_waited_for_a_bounded_time(stalled_port, capsys, bounded_http,
                                                                  connections, monkeypatch):
    # An operator's timeout is kept (the step sets its own 10 s only where none is set; the refusing
    # server's test above sees those on its socket): a short one here, so this test waits 1 s, not 10.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    run = tracking.TaskRun("0123456789abcdef", f"http://127.0.0.1:{stalled_port}")
    run.set_tags({"t": "x"})
    run.set_tags({"u": "y"})
    # One attempt, on a socket that gives up after that timeout, then tracking is off.
    assert [(address, limit) for address, limit in connections if address[1] == stalled_port] == \
        [(("127.0.0.1", stalled_port), 1.0)]
    assert not run.active
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


STEP_SCRIPT = """
import sys
import numpy as np, pandas as pd
from kfp.dsl import Dataset, Model
from pipelines.sp500.steps import train_model_cpu
folder = sys.argv[1]
rng = np.random.default_rng(0)
table = pd.DataFrame({"Date": pd.date_range("2015-01-01", periods=200), "sp500_lag1": rng.normal(0, 0.01, 200),
                      "nasdaq_lag1": rng.normal(0, 0.01, 200), "target_return": rng.normal(0, 0.01, 200)})
table["label"] = (table["sp500_lag1"] > 0).astype("int64")
table.to_parquet(folder + "/train.parquet")
train_model_cpu.python_func(train_data=Dataset(uri=folder + "/train.parquet"), model_type="flat", epochs=3,
                            learning_rate=0.01, seed=1, version_tag="by-hand", model=Model(uri=folder + "/model"))
"""


def test_a_step_given_the_platforms_variables_logs_into_that_run_and_starts_none(mlflow_server, tmp_path):
    """The plugin's variables set by hand for one step (the sp500 train step, as its container runs it)."""
    client, experiment, run_id = given_run(mlflow_server)
    environment = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": mlflow_server,
                   "MLFLOW_RUN_ID": run_id}
    done = subprocess.run([sys.executable, "-c", STEP_SCRIPT, str(tmp_path)], cwd=tmp_path, capture_output=True,
                          text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warning:" not in done.stdout + done.stderr
    assert [r.info.run_id for r in client.search_runs([experiment])] == [run_id]
    fetched = client.get_run(run_id)
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run_id, "accuracy")] == [1, 2, 3]
    assert fetched.data.params == {"features": "sp500_lag1,nasdaq_lag1", "train_days": "200"}
    assert fetched.data.tags["model_uri"] == str(tmp_path / "model")
    assert fetched.info.status == "RUNNING"
