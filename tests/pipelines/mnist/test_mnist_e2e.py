"""The mnist pipeline end to end through kfp.local, run as a user runs it
(`python -m pipelines run mnist ...`, what `make run PIPELINE=mnist` calls),
with a small sweep (2 trials, 1 epoch, each on 2 local workers) to keep it quick.

The sweep's run (`swept`) deploys version 1 with its statistics; the validation test starts from a
copy of its model store: the same digits inverted (255 - pixel) then drift far beyond PSI 0.25 on
the pixel-intensity histogram, and the gate refuses them."""

import json
import re
import shutil

import numpy as np
import pytest
from conftest import run_cli
from standins.mlflow import read_runs

from pipelines.mnist.data import fetch_digits

pytestmark = pytest.mark.e2e


SMALL_SWEEP = "sweep_grid=[[0.003, 0], [0.003, 1]]"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The sweep on two workers, tracked into MLflow as well (TRACKING), in a folder of its own:
    (the result, the folder, the tracking database)."""
    workdir = tmp_path_factory.mktemp("swept")
    database = workdir / "tracking" / "mlflow.db"
    result = run_cli("run", "mnist", SMALL_SWEEP, "epochs=1", "workers=2", "threshold=0.5", cwd=workdir,
                     TRACKING=f"sqlite:///{database}")
    return result, workdir, database


def test_sweep_on_two_workers_selects_evaluates_and_deploys(swept):
    # The sweep's shape in MLflow is checked at the end.
    result, workdir, database = swept
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout[result.stdout.rindex("pipeline mnist:"):]
    assert "pipeline mnist: SUCCEEDED" in summary
    for step in ("download-digits", "preprocess-digits", "train-trial", "select-best-trial", "evaluate",
                 "deploy-model"):
        assert step in summary
    assert "baseline (majority_class_accuracy): 0.1000" in summary
    version_1 = workdir / "model_store" / "mnist" / "1"
    assert f"model deployed to {version_1}" in summary
    assert (version_1 / "saved_model.pb").is_file()

    # The trial table is in the log and in the sweep report, the best trial marked.
    assert "lr0.003-layers0" in result.stdout and "lr0.003-layers1" in result.stdout
    assert "best trial: lr0.003-layers" in result.stdout
    # Both trials trained on two workers joined on loopback; the chiefs exported.
    assert result.stdout.count("trial lr0.003-layers0 on 2 worker(s)") == 1
    assert "worker 1 of 2: CollectiveAllReduceStrategy with 2 replica(s) in sync" in result.stdout
    run_dir = next((workdir / "runs" / "mnist").iterdir())
    sweep_report = next(run_dir.glob("artifacts/*/select-best-trial/sweep_report")).read_text()
    assert "lr0.003-layers0" in sweep_report and "lr0.003-layers1" in sweep_report
    assert "data:image/png;base64," in sweep_report and "Every trial per epoch" in sweep_report
    report = next(run_dir.glob("artifacts/*/evaluate/report")).read_text()
    assert "Misclassified digits" in report and "majority_class_accuracy" in report
    assert "Training of the chosen trial" in report and "no training history" not in report
    decided = (run_dir / "reports" / "gate-model-report.html").read_text()
    assert ">DEPLOY<" in decided and "first deploy" in decided and "Misclassified digits" in decided
    # One TensorBoard log per trial, written by its chief alone.
    trial_logs = run_dir.glob("artifacts/*/for-loop-*/train-trial/tensorboard_logs/train/events.out.tfevents.*")
    assert len(list(trial_logs)) == 2

    # MLflow: the pipeline run > the loop's run > one run per trial, named after its grid point,
    # with its hyperparameters and its validation curves per epoch, as the platform's plugin nests them.
    runs = read_runs(f"sqlite:///{database}")
    by_id = {run["id"]: run for run in runs}
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run["tags"]]
    trials = {run["name"]: run for run in runs if run["tags"].get("trial")}
    assert set(trials) == {"lr0.003-layers0", "lr0.003-layers1"}
    for name, trial in trials.items():
        loop = by_id[trial["tags"]["mlflow.parentRunId"]]
        assert loop is not parent and loop["tags"]["mlflow.parentRunId"] == parent["id"]
        assert trial["params"]["hidden_layers"] == name[-1]
        assert [step for step, _ in trial["histories"]["val_accuracy"]] == [1]
    tasks = {run["name"] for run in runs if run["tags"].get("mlflow.parentRunId") == parent["id"]}
    assert {"download-digits", "preprocess-digits", "select-best-trial", "evaluate", "gate-model",
            "deploy-model"} <= tasks


def test_bayesian_search_trains_its_trials_in_one_step_and_deploys_the_best(tmp_path):
    database = tmp_path / "tracking" / "mlflow.db"
    result = run_cli("run", "mnist", "sweep=bayesian", "trials=3", "parallelism=1", "epochs=1", "hidden_units=32",
                     "threshold=0.5", cwd=tmp_path, TRACKING=f"sqlite:///{database}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout[result.stdout.rindex("pipeline mnist:"):]
    for step in ("search-trials", "take-best-model", "evaluate", "deploy-model"):
        assert step in summary
    assert "train-trial" not in summary and "select-best-trial" not in summary, "the grid branch did not run"
    assert (tmp_path / "model_store" / "mnist" / "1" / "saved_model.pb").is_file()
    assert [f"bayesian search: trial {n}/3" in result.stdout for n in (1, 2, 3)] == [True] * 3
    run_dir = next((tmp_path / "runs" / "mnist").iterdir())
    sweep_report = next(run_dir.glob("artifacts/*/search-trials/sweep_report")).read_text()
    assert all(f"trial0{n}-lr" in sweep_report for n in range(3)) and "Every trial per epoch" in sweep_report
    # The model evaluate scored is the search's best, its training curves with it.
    best = result.stdout.split("best trial: ")[-1].split()[0]
    assert best.startswith("trial0")
    report = next(run_dir.glob("artifacts/*/evaluate/report")).read_text()
    assert "Training of the chosen trial" in report and "no training history" not in report

    # MLflow: one child run per trial under the search step's run.
    runs = read_runs(f"sqlite:///{database}")
    (search_run,) = [run for run in runs if run["name"] == "search-trials"]
    trials = [run for run in runs if run["tags"].get("mlflow.parentRunId") == search_run["id"]]
    assert sorted(run["name"] for run in trials) == sorted(run["tags"]["trial"] for run in trials)
    assert len(trials) == 3 and all(run["status"] == "FINISHED" for run in trials)
    assert all([step for step, _ in run["histories"]["val_accuracy"]] == [1] for run in trials)


def test_a_truncated_download_fails_the_run_naming_the_file(cli, tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 not the real file")
    result = cli("run", "mnist", SMALL_SWEEP, f"source={tmp_path / 'mnist.npz'}")
    assert result.returncode == 1
    assert "step 'download-digits' failed" in result.stderr
    assert "mnist.npz: SHA-256" in result.stderr
    assert not (tmp_path / "model_store").exists()


def test_inverted_digits_drift_far_beyond_the_limit(swept, tmp_path):
    """mnist's validation: the sweep deployed the offline digits with their statistics; the same
    digits inverted then drift on the pixels, and the gate refuses them."""
    shutil.copytree(swept[1] / "model_store", tmp_path / "model_store")
    assert (tmp_path / "model_store" / "mnist" / "1" / "statistics.json").is_file()

    digits = fetch_digits("", tmp_path / "downloads")
    order = np.random.default_rng(0).permutation(len(digits.labels))  # the sample comes sorted by digit
    inverted, labels = (255 - digits.images[order]).astype(np.uint8), digits.labels[order]
    cut = len(inverted) * 4 // 5
    np.savez(tmp_path / "inverted.npz", x_train=inverted[:cut], y_train=labels[:cut],
             x_test=inverted[cut:], y_test=labels[cut:])
    second = run_cli("run", "mnist", "sweep_grid=[[0.003, 0]]", "epochs=1", "threshold=0.5",
                     f"source={tmp_path / 'inverted.npz'}", cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    run_dir = sorted((tmp_path / "runs" / "mnist").iterdir())[-1]
    output = next(run_dir.glob("artifacts/*/validate-data/executor_output.json"))
    drift = json.loads(output.read_text())["artifacts"]["statistics"]["artifacts"][0]["metadata"]["drift"]
    assert drift["champion_version"] == 1 and drift["scores"]["pixel"] > 5 * 0.25, drift
    assert drift["scores"]["label"] < 0.05  # the same digits: only the pixels moved
    # The gate refuses on that drift, naming the feature, and nothing is deployed.
    assert re.search(r"gate: drift: largest psi [0-9.]+ on pixel, this run's training data against version 1's; "
                     r"above max_drift 0.25 -> FAIL", second.stdout), second.stdout[-3000:]
    assert "gate: REFUSED: " in second.stdout and "pixel drifted by psi" in second.stdout
    assert sorted(p.name for p in (tmp_path / "model_store" / "mnist").iterdir()) == ["1", "labels.json"]
