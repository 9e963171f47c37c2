"""A recurring crypto run, as a schedule runs it: two data windows ten days apart on one model store;
the second run's gate re-scores the serving booster on its own held-out rows (issue: the gate compares
the challenger and the champion on the same rows, and knows its own noise)."""

import re

import lightgbm
import numpy as np
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.e2e

CHAMPION_LINE = re.compile(
    r"gate: serving champion: version 1 weighted_correlation (?P<score>[+-]?[0-9.]+) on these (?P<rows>[0-9,]+) rows; "
    r"challenger - champion (?P<point>[+-][0-9.]+) \(95% interval (?P<low>[+-][0-9.]+) to (?P<high>[+-][0-9.]+)\)")
LATER_WINDOW = ("generated_start=2021-04-21", "generated_end=2021-05-21", "valid_start=2021-05-11")


def weighted_correlation(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Pearson's correlation with row weights, written out here rather than taken from the project."""
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    covariance = np.average((x - mx) * (y - my), weights=w)
    return covariance / np.sqrt(np.average((x - mx) ** 2, weights=w) * np.average((y - my) ** 2, weights=w))


def test_the_second_window_rescores_the_serving_booster_on_its_own_rows(cli, tmp_path):
    first = cli("run", "crypto")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    version_1 = tmp_path / "model_store" / "crypto" / "1"
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
