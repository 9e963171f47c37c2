"""The crypto pipeline end to end through kfp.local, run as a user runs it
(`python -m pipelines run crypto ...`, what `make run PIPELINE=crypto` calls), on generated data.

One default run deploys version 1 (`deployed`). The tests that need a serving booster start from a
copy of its model store, each in a folder of its own: a recurring run on a later window, whose gate
re-scores the serving booster on its own held-out rows (issue: the gate compares the challenger and
the champion on the same rows, and knows its own noise); and the same data without Cardano, which
stops at the validation step with one line naming it."""

import re
import shutil
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import assert_failed_cleanly, run_cli

from pipelines.crypto import data

pytestmark = pytest.mark.e2e

CHAMPION_LINE = re.compile(
    r"gate: serving champion: version 1 weighted_correlation (?P<score>[+-]?[0-9.]+) on these (?P<rows>[0-9,]+) rows; "
    r"challenger - champion (?P<point>[+-][0-9.]+) \(95% interval (?P<low>[+-][0-9.]+) to (?P<high>[+-][0-9.]+)\)")
LATER_WINDOW = ("generated_start=2021-04-21", "generated_end=2021-05-21", "valid_start=2021-05-11")
# A week of generated data and at most 20 boosting rounds: enough for a gate to refuse.
SMALL_RUN = ("generated_start=2021-04-24", "generated_end=2021-05-01", "valid_start=2021-04-29", "n_estimators=20",
             "early_stopping_rounds=5")


def summary_of(result) -> str:
    assert "pipeline crypto:" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout[result.stdout.rindex("pipeline crypto:"):]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """`run crypto` with its defaults in a folder of its own: (the result, the folder)."""
    workdir = tmp_path_factory.mktemp("deployed")
    return run_cli("run", "crypto", cwd=workdir), workdir


def serving_copy(deployed, tmp_path: Path) -> Path:
    """The deployed run's model store, copied into `tmp_path`: its version 1."""
    shutil.copytree(deployed[1] / "model_store", tmp_path / "model_store")
    return tmp_path / "model_store" / "crypto" / "1"


def test_default_run_scores_beside_the_baseline_and_deploys_through_the_gate(deployed):
    result, workdir = deployed
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = summary_of(result)
    assert "pipeline crypto: SUCCEEDED" in summary
    for step in ("download-data", "load-data", "build-features", "train-model", "evaluate", "deploy-model"):
        assert step in summary
    assert "baseline (weighted_correlation_reversal_baseline)" in summary
    version_1 = workdir / "model_store" / "crypto" / "1"
    assert "gate: DEPLOY: first deploy" in summary and f"model deployed to {version_1}" in summary
    assert sorted(p.name for p in version_1.iterdir()) == [
        "evaluation.json", "model.bst", "schema.json", "statistics.json"]
    run_dir = next((workdir / "runs" / "crypto").iterdir())
    report = next(run_dir.glob("artifacts/*/evaluate/report")).read_text()
    assert "data:image/png;base64," in report and "weighted_correlation_reversal_baseline" in report
    assert "data:image/png;base64," in next(run_dir.glob("artifacts/*/train-model/importance")).read_text()
    assert "Training (per boosting round)" in report and "no training history" not in report
    decided = (run_dir / "reports" / "gate-model-report.html").read_text()
    assert ">DEPLOY<" in decided and "Per asset" in decided
    # Progress every 10 rounds, then where it stopped and its best iteration; the test start as a time.
    assert "train-model" in result.stdout and "round 10/500: validation weighted correlation" in result.stdout
    assert "stopped early at round" in result.stdout and ": best iteration " in result.stdout
    assert "held-out test from 2021-" in result.stdout and " UTC" in result.stdout
    assert not (run_dir / "workspace").exists(), "the bulk data went away with the run's workspace"


def test_a_high_threshold_refuses_and_deploys_nothing(cli, tmp_path):
    result = cli("run", "crypto", *SMALL_RUN, "threshold=0.5")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = summary_of(result)
    assert "gate: REFUSED: weighted_correlation 0.0" in summary and "is below the threshold 0.5" in summary
    assert not (tmp_path / "model_store").exists()


def weighted_correlation(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Pearson's correlation with row weights, written out here rather than taken from the project."""
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    covariance = np.average((x - mx) * (y - my), weights=w)
    return covariance / np.sqrt(np.average((x - mx) ** 2, weights=w) * np.average((y - my) ** 2, weights=w))


def test_the_second_window_rescores_the_serving_booster_on_its_own_rows(deployed, cli, tmp_path):
    """A recurring run, as a schedule runs it: a data window ten days after the deployed run's, on
    its model store."""
    first, _ = deployed
    version_1 = serving_copy(deployed, tmp_path)
    assert "gate: DEPLOY: first deploy" in first.stdout and (version_1 / "model.bst").is_file()

    second = cli("run", "crypto", *LATER_WINDOW)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    line = CHAMPION_LINE.search(second.stdout)
    assert line, second.stdout[-3000:]

    run_dir = sorted((tmp_path / "runs" / "crypto").iterdir())[-1]
    rows = next(run_dir.glob("artifacts/*/evaluate/rows"))
    table = pq.read_table(rows / "rows.parquet").to_pandas()
    predicted = lightgbm.Booster(model_file=str(version_1 / "model.bst")).predict(np.load(rows / "inputs.npy"))
    assert int(line["rows"].replace(",", "")) == len(table)
    assert float(line["score"]) == pytest.approx(
        weighted_correlation(predicted, table["target"].to_numpy(), table["weight"].to_numpy()), abs=5e-5)
    # Its test period lies after the first run's: the stored score is history, not the comparison.
    assert "when deployed; not compared" in second.stdout
    if float(line["low"]) < -0.0:  # below -tolerance (0): the challenger may be worse, so nothing deploys
        assert "model deployed to" not in second.stdout and "gate: REFUSED" in second.stdout


def test_a_run_without_an_asset_is_stopped_naming_the_asset(deployed, tmp_path):
    """The deployed version holds its statistics and schema; the same generated data without
    Cardano (asset 3) then stops at the validation step with one line naming it."""
    version = serving_copy(deployed, tmp_path)
    assert (version / "statistics.json").is_file() and (version / "schema.json").is_file()

    folder = tmp_path / "without-cardano"
    folder.mkdir()
    data.generate(folder, "2021-04-11", "2021-05-11", seed=2022)  # what source=generated makes by default
    train = pd.read_csv(folder / "train.csv")
    train[train["Asset_ID"] != 3].to_csv(folder / "train.csv", index=False)
    before = sorted(p for p in (tmp_path / "model_store").rglob("*"))
    second = run_cli("run", "crypto", f"source={folder}", cwd=tmp_path)
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-3000:]
    last_line = second.stderr.strip().splitlines()[-1]
    assert last_line == ("error: step 'validate-data' failed: data validation: Asset_ID: 3 (Cardano) is missing, "
                         "the serving model's training data had it")
    terminal = re.sub(r"\x1b\[[0-9;]*m", "", second.stdout + second.stderr)
    assert "Traceback" not in terminal and "Executing task 'train-model'" not in terminal
    assert sorted(p for p in (tmp_path / "model_store").rglob("*")) == before


def csv_folder(tmp_path: Path, edit) -> str:
    folder = tmp_path / "data"
    folder.mkdir()
    data.generate(folder, "2021-04-30", "2021-05-02", seed=1)
    edit(pd.read_csv(folder / "train.csv")).to_csv(folder / "train.csv", index=False)
    return str(folder)


@pytest.mark.parametrize("make_params, exit_code, message", [
    (lambda tmp: [f"source={csv_folder(tmp, lambda t: t.drop(columns='Close'))}"], 1,
     "step 'load-data' failed: train.csv lacks column(s) Close"),
    (lambda tmp: [f"source={csv_folder(tmp, lambda t: t.assign(Asset_ID=t['Asset_ID'] + 20))}"], 1,
     "step 'load-data' failed: train.csv has Asset_ID(s) [20,"),
    (lambda tmp: [f"source={csv_folder(tmp, lambda t: t)}", "start_date=2030-01-01", "valid_start=2030-02-01"], 1,
     "step 'load-data' failed: train.csv has no usable rows from start_date 2030-01-01 on"),
    (lambda tmp: ["source=kaggle"], 1,
     "step 'download-data' failed: Kaggle credentials missing: set KAGGLE_USERNAME and KAGGLE_KEY"),
    (lambda tmp: ["valid_start=May"], 2, "valid_start 'May' is not a date"),
    (lambda tmp: ["valid_start=2021-06-01"], 2, "valid_start 2021-06-01 must lie strictly between generated_start"),
], ids=["missing-column", "unknown-asset", "empty-date-range", "no-kaggle-credentials", "bad-date",
        "validation-outside-the-data"])
def test_bad_input_is_one_clear_line_and_writes_nothing(cli, tmp_path, monkeypatch, make_params, exit_code,
                                                        message):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-config"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kaggle/access_token of the machine
    assert_failed_cleanly(cli("run", "crypto", *make_params(tmp_path)), tmp_path, "crypto", exit_code, message)
