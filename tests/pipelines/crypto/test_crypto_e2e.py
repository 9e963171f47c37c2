"""The crypto pipeline end to end through kfp.local, run as a user runs it
(`python -m pipelines run crypto ...`, what `make run PIPELINE=crypto` calls), on generated data."""

from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_failed_cleanly

from pipelines.crypto import data

pytestmark = pytest.mark.e2e


def summary_of(result) -> str:
    assert "pipeline crypto:" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout[result.stdout.rindex("pipeline crypto:"):]


def test_default_run_scores_beside_the_baseline_and_deploys_through_the_gate(cli, tmp_path):
    result = cli("run", "crypto")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = summary_of(result)
    assert "pipeline crypto: SUCCEEDED" in summary
    for step in ("download-data", "load-data", "build-features", "train-model", "evaluate", "deploy-model"):
        assert step in summary
    assert "baseline (weighted_correlation_reversal_baseline)" in summary
    version_1 = tmp_path / "model_store" / "crypto" / "1"
    assert "gate: DEPLOY: first deploy" in summary and f"model deployed to {version_1}" in summary
    assert sorted(p.name for p in version_1.iterdir()) == [
        "evaluation.json", "model.bst", "schema.json", "statistics.json"]
    run_dir = next((tmp_path / "runs" / "crypto").iterdir())
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
    result = cli("run", "crypto", "threshold=0.5")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = summary_of(result)
    assert "gate: REFUSED: weighted_correlation 0.0" in summary and "is below the threshold 0.5" in summary
    assert not (tmp_path / "model_store").exists()


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
