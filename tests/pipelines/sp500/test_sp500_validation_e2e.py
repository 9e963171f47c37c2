"""Validation and drift, end to end on one model store: sp500 from a CSV `source=` folder made
from the shipped prices deploys; nasdaq's returns scaled x5 drift far beyond PSI 0.25 on a
nasdaq feature; 20% of nasdaq's closes missing stops the run at the validation step, in one line.

The runs share one working folder (runs/ and model_store/), in this order, because each
compares with the model the earlier ones deployed. Two epochs: the gate's threshold is 0.5."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from pipelines.sp500.data import load_ticker

pytestmark = pytest.mark.e2e
RUN = ("run", "sp500", "threshold=0.5", "epochs=2")


def write_source(folder: Path, nasdaq_return_scale: float = 1.0, nasdaq_missing: float = 0.0) -> str:
    """The shipped sp500 and nasdaq closes as CSV files in `folder`, nasdaq's daily log returns
    scaled, or a share of its closes left empty (well-formed CSV either way)."""
    folder.mkdir()
    for ticker in ("sp500", "nasdaq"):
        closes = load_ticker(ticker, "", folder)[["Date", "Close"]].reset_index(drop=True)
        if ticker == "nasdaq" and nasdaq_return_scale != 1.0:
            returns = np.diff(np.log(closes["Close"].to_numpy()))
            closes["Close"] = closes["Close"].iloc[0] * np.exp(np.concatenate([[0.0], np.cumsum(
                nasdaq_return_scale * returns)]))
        if ticker == "nasdaq" and nasdaq_missing:
            closes["Close"] = closes["Close"].mask(np.random.default_rng(7).random(len(closes)) < nasdaq_missing)
        closes.to_csv(folder / f"{ticker}.csv", index=False, date_format="%Y-%m-%d")
    return str(folder / "{ticker}.csv")


def validation_metadata(workdir: Path) -> dict:
    run_dir = sorted((workdir / "runs" / "sp500").iterdir())[-1]
    output = next(run_dir.glob("artifacts/*/validate-data/executor_output.json"))
    return json.loads(output.read_text())["artifacts"]["statistics"]["artifacts"][0]["metadata"]


def store_files(workdir: Path) -> list[str]:
    return sorted(str(p.relative_to(workdir)) for p in (workdir / "model_store").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("validation")


@pytest.fixture(scope="module")
def first(workdir):
    result = run_cli(*RUN, f"source={write_source(workdir / 'prices')}", cwd=workdir)
    return result, store_files(workdir)


@pytest.fixture(scope="module")
def scaled(workdir, first):
    result = run_cli(*RUN, f"source={write_source(workdir / 'scaled', nasdaq_return_scale=5)}", cwd=workdir)
    return result, first[1], store_files(workdir)


def test_a_csv_source_deploys_with_its_statistics_and_schema(workdir, first):
    result, _ = first
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version = workdir / "model_store" / "sp500" / "1"
    assert f"model deployed to {version}" in result.stdout
    assert "validation: drift not computed: no serving champion yet" in result.stdout
    statistics = json.loads((version / "statistics.json").read_text())
    schema = json.loads((version / "schema.json").read_text())
    assert statistics["format_version"] == 1 and statistics["features"]["nasdaq_lag1"]["missing"] == 0
    assert schema["columns"]["nasdaq (source)"]["missing_rate"] == 0.0
    assert validation_metadata(workdir)["drift"]["champion_version"] is None
    index = next((workdir / "runs" / "sp500").iterdir()) / "index.html"
    assert "href='reports/validate-data-report.html'" in index.read_text()


def test_nasdaq_returns_scaled_five_times_drift_beyond_the_limit_on_a_nasdaq_feature(workdir, scaled):
    result, _, _ = scaled
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    drift = validation_metadata(workdir)["drift"]
    assert drift["measure"] == "psi" and drift["champion_version"] == 1
    worst = max(drift["scores"], key=drift["scores"].get)
    assert worst.startswith("nasdaq_lag") and drift["scores"][worst] > 0.25, drift
    assert drift["scores"]["sp500_lag1"] < 0.1
    assert "validation: drift against serving version 1: largest nasdaq_lag" in result.stdout


def test_the_gate_refuses_the_drifted_run_naming_the_feature_and_the_store_is_unchanged(scaled):
    result, before, after = scaled
    assert re.search(r"gate: drift: largest psi [0-9.]+ on nasdaq_lag\d, this run's training data against "
                     r"version 1's.*above max_drift 0.25 -> FAIL", result.stdout), result.stdout[-3000:]
    assert "gate: REFUSED: " in result.stdout and "drifted by psi" in result.stdout
    assert after == before


def test_twenty_percent_missing_nasdaq_closes_stop_the_run_in_one_line(workdir, scaled):
    before = store_files(workdir)
    result = run_cli(*RUN, f"source={write_source(workdir / 'gaps', nasdaq_missing=0.2)}", cwd=workdir)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: step 'validate-data' failed: ") and \
        "data validation: nasdaq (source): 20% missing, the serving model's training data had 0%" in last_line
    terminal = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert "Traceback" not in terminal and terminal.count("error: ") == 1
    assert "Executing task 'train'" not in terminal  # stopped before training
    step_dirs = sorted(workdir.glob("runs/sp500/*/artifacts/*/validate-data"))
    assert not [f for step in step_dirs[-1:] for f in step.rglob("*") if f.is_file()]
    assert store_files(workdir) == before
