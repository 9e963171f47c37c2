"""A recurring sp500 run, as a schedule runs it: one model store, the data window advancing, and
every gate re-scoring the serving champion on that run's own test rows (issue: the gate compares
the challenger and the champion on the same rows, and knows its own noise).

The sequence shares one model store, so its runs are one test. A decisive difference needs a
signal stronger than US lags alone give (about 0.52 against 0.54 always-up, well inside the noise of
a 250-day test period): every run here takes NASDAQ's same-day return (`same_day_tickers=nasdaq`),
which moves with the S&P 500's own day, the contemporaneous signal of the seed documents. An
untrained champion (one epoch at a learning rate of 1e-5) against a trained challenger is then a
difference the interval cannot miss, and two trainings that differ only in their seed are not.
"""

import hashlib
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.e2e

SAME_DAY = ("same_day_tickers=nasdaq", "threshold=0.3", "tolerance=0")
CHAMPION_LINE = re.compile(
    r"gate: serving champion: version (?P<version>\d+) accuracy (?P<score>[0-9.]+) on these (?P<rows>\d+) rows; "
    r"challenger - champion (?P<point>[+-][0-9.]+) \(95% interval (?P<low>[+-][0-9.]+) to (?P<high>[+-][0-9.]+)\)")


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(cli, end_date: str, *params: str):
    result = cli("run", "sp500", f"end_date={end_date}", *SAME_DAY, *params)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def newest_run(workdir: Path) -> Path:
    return sorted((workdir / "runs" / "sp500").iterdir())[-1]


def independent_accuracy(version_dir: Path, run_dir: Path) -> tuple[float, int]:
    """The served version's accuracy on the rows this run's evaluate step scored, computed here
    from the version's files and the rows' files alone (not through the gate's code)."""
    from components.common.saved_model import load_predictor

    rows = next(run_dir.glob("artifacts/*/evaluate/rows"))
    inputs = np.load(rows / "inputs.npy")
    target = pq.read_table(rows / "rows.parquet", columns=["target"]).column("target").to_numpy()
    predicted = load_predictor(version_dir)(features=inputs)["predicted_class"].numpy()
    return float(np.mean(predicted == target)), len(target)


def champion_line(stdout: str) -> re.Match:
    match = CHAMPION_LINE.search(stdout)
    assert match, stdout[-3000:]
    return match


def whole_line(stdout: str, match: re.Match) -> str:
    return stdout[match.start():stdout.index("\n", match.start())]


def assert_rescored(result, store: Path, workdir: Path, version: int) -> re.Match:
    line = champion_line(result.stdout)
    assert int(line["version"]) == version
    accuracy, rows = independent_accuracy(store / str(version), newest_run(workdir))
    assert int(line["rows"]) == rows
    assert float(line["score"]) == pytest.approx(accuracy, abs=5e-5)
    return line


def test_each_run_rescores_the_champion_on_its_rows_and_deploys_only_a_difference_beyond_the_noise(cli, tmp_path):
    store = tmp_path / "model_store" / "sp500"

    first = run(cli, "2016-12-31", "epochs=1", "learning_rate=0.00001")
    assert "gate: serving champion: none, nothing is serving yet -> first deploy" in first.stdout
    assert (store / "1" / "saved_model.pb").is_file()
    version_1 = tree_digest(store / "1")

    # A year later, a trained challenger: the untrained champion is scored on 2017's rows, and the
    # whole interval of the difference lies above zero.
    second = run(cli, "2017-12-31", "epochs=30")
    line = assert_rescored(second, store, tmp_path, 1)
    assert float(line["low"]) > 0 and ", significant" in whole_line(second.stdout, line)
    assert f"model deployed to {store / '2'} (labels: stable=2)" in second.stdout
    assert "stored: scored" in whole_line(second.stdout, line) and "when deployed; not compared" in second.stdout

    # The serving model trained again on the same data and seed: the same model, not deployed twice.
    third = run(cli, "2017-12-31", "epochs=30")
    assert "gate: content: identical to serving version 2" in third.stdout and "nothing deployed" in third.stdout

    # The same data, another seed: a difference inside the noise, refused under tolerance=0.
    fourth = run(cli, "2017-12-31", "epochs=30", "seed=7")
    line = assert_rescored(fourth, store, tmp_path, 2)
    assert float(line["low"]) < 0 and "not significant" in whole_line(fourth.stdout, line)
    assert "gate: REFUSED: the challenger may be worse than serving version 2" in fourth.stdout
    assert sorted(p.name for p in store.iterdir()) == ["1", "2", "labels.json"]

    # Another year on: version 2 is scored on 2018's rows, and the verdict follows its interval.
    fifth = run(cli, "2018-12-31", "epochs=30")
    line = assert_rescored(fifth, store, tmp_path, 2)
    if float(line["low"]) < 0:  # below -tolerance (0): the challenger may be worse, so nothing deploys
        assert "gate: REFUSED" in fifth.stdout and not (store / "3").exists()

    assert tree_digest(store / "1") == version_1, "a deployed version is never rewritten"
    decided = (newest_run(tmp_path) / "reports" / "gate-model-report.html").read_text()
    assert "data:image/png;base64," in decided and "Not decided yet" not in decided
