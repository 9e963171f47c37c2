"""The sp500 pipeline end to end through kfp.local, run as a user runs it
(`python -m pipelines run sp500 ...`, what `make run` calls), on the offline data."""

import hashlib
from pathlib import Path

import pytest
from conftest import assert_failed_cleanly

pytestmark = pytest.mark.e2e


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_default_gate_refuses_on_honest_us_only_data(cli, tmp_path):
    result = cli("run", "sp500")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = result.stdout[result.stdout.rindex("pipeline sp500:"):]
    assert "pipeline sp500: SUCCEEDED" in summary
    for step in ("download-prices", "preprocess", "train", "evaluate"):
        assert step in summary
    assert "baseline (always_up_accuracy)" in summary
    assert "gate: REFUSED: accuracy 0." in summary and "is below the threshold 0.7" in summary
    assert not (tmp_path / "model_store" / "sp500").exists()
    run_dir = next((tmp_path / "runs" / "sp500").iterdir())
    recorded = (run_dir / "summary.txt").read_text()
    assert recorded.startswith(summary.strip() + "\n")
    for line in ("  epochs = 20", "  tickers = 'sp500,nasdaq'", "  download-prices.sp500_skipped_days = 0",
                 "  evaluate.always_up_accuracy = ", f"  {run_dir / 'reports' / 'evaluate-report.html'}"):
        assert line in recorded
    report = (run_dir / "reports" / "evaluate-report.html").read_text()
    assert "data:image/png;base64," in report and "always_up_accuracy" in report
    index = (run_dir / "index.html").read_text()
    assert "href='reports/evaluate-report.html'" in index and "always_up_accuracy" in index
    assert "Traceback" not in result.stdout + result.stderr


def test_passing_gate_deploys_new_versions_and_never_touches_old_ones(cli, tmp_path):
    """deep, then flat (better on this data: deployed), then deep again (worse than the
    serving flat model: refused by the champion/challenger gate)."""
    first = cli("run", "sp500", "threshold=0.5")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    version_1 = tmp_path / "model_store" / "sp500" / "1"
    assert f"model deployed to {version_1}" in first.stdout
    assert (version_1 / "saved_model.pb").is_file()
    before = tree_digest(version_1)

    assert "gate: serving champion: none, nothing is serving yet -> first deploy" in first.stdout

    second = cli("run", "sp500", "threshold=0.5", "model_type=flat")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"model deployed to {version_1.parent / '2'} (labels: stable=2)" in second.stdout
    assert "gate: serving champion: version 1 accuracy 0." in second.stdout
    assert tree_digest(version_1) == before
    assert sorted(p.name for p in version_1.parent.iterdir()) == ["1", "2", "labels.json"]

    third = cli("run", "sp500", "threshold=0.5")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "is worse than serving version 2" in third.stdout and "nothing deployed" in third.stdout
    assert sorted(p.name for p in version_1.parent.iterdir()) == ["1", "2", "labels.json"]

    # The serving model trained again, same data and seed: the same model, not deployed a second time.
    fourth = cli("run", "sp500", "threshold=0.5", "model_type=flat")
    assert fourth.returncode == 0, fourth.stdout[-3000:] + fourth.stderr[-3000:]
    assert "gate: content: identical to serving version 2" in fourth.stdout
    assert "the model is identical to serving version 2" in fourth.stdout
    assert sorted(p.name for p in version_1.parent.iterdir()) == ["1", "2", "labels.json"]
    run_dir = sorted((tmp_path / "runs" / "sp500").iterdir())[-1]
    decided = (run_dir / "reports" / "gate-model-report.html").read_text()
    assert "REFUSED" in decided and "identical to serving version 2" in decided
    assert "Training (loss and accuracy per epoch)" in decided and "Not decided yet" not in decided


def write_csv_without_close(folder: Path) -> str:
    folder.mkdir()
    for ticker in ("sp500", "nasdaq"):
        (folder / f"{ticker}.csv").write_text("Date,Open\n2015-01-02,1\n2015-01-05,2\n")
    return str(folder / "{ticker}.csv")


def write_prices_with(folder: Path, bad_close: str) -> str:
    folder.mkdir()
    for ticker in ("sp500", "nasdaq"):
        (folder / f"{ticker}.csv").write_text(f"Date,Close\n2015-01-02,1\n2015-01-05,{bad_close}\n")
    return str(folder / "{ticker}.csv")


def write_file(path: Path) -> str:
    path.write_text("not a folder")
    return str(path)


@pytest.mark.parametrize("make_params, exit_code, message", [
    (lambda tmp: ["source=/nonexistent/{ticker}.csv"], 1,
     "step 'download-prices' failed: data file not found: /nonexistent/sp500.csv"),
    (lambda tmp: [f"source={write_csv_without_close(tmp / 'data')}"], 1, "no 'Close' column"),
    (lambda tmp: ["threshold=1.5"], 2, "threshold must be between 0 and 1, got 1.5"),
    (lambda tmp: ["model_type=wide"], 2, "model_type 'wide' is unknown: choose one of flat, deep"),
    (lambda tmp: ["start_date=2030-01-01", "end_date=2030-06-30"], 1,
     "step 'preprocess' failed: no trading days with all features between start_date 2030-01-01"),
    (lambda tmp: ["epochs=many"], 2, "parameter epochs='many' is not an integer"),
    (lambda tmp: ["colour=blue"], 2, "unknown parameter 'colour' for sp500"),
    (lambda tmp: ["model_name=my.model"], 2, "model_name 'my.model' cannot name a Kubernetes object"),
    (lambda tmp: ["target=dax"], 2, "target 'dax' is not among tickers sp500,nasdaq"),
    (lambda tmp: [f"source={write_prices_with(tmp / 'data', 'inf')}"], 1,
     "step 'download-prices' failed: {tmp}/data/sp500.csv: column 'Close' on 2015-01-05 is inf, "
     "not a positive finite price"),
    (lambda tmp: ["source=/data/prices.csv"], 2, "source '/data/prices.csv' must contain {ticker}"),
    (lambda tmp: ["tickers=sp500,dax"], 2, "tickers: 'dax' is not in the offline data"),
    (lambda tmp: [f"model_base_path={write_file(tmp / 'store')}"], 2,
     "model_base_path {tmp}/store: {tmp}/store is a file, not a folder"),
], ids=["missing-file", "no-close-column", "threshold-1.5", "unknown-model", "empty-date-range",
        "not-a-number", "unknown-parameter", "bad-model-name", "target-not-downloaded", "infinite-close",
        "source-without-ticker", "ticker-not-offline", "model-store-is-a-file"])
def test_bad_input_is_one_clear_line_and_writes_nothing(cli, tmp_path, make_params, exit_code, message):
    assert_failed_cleanly(cli("run", "sp500", *make_params(tmp_path)), tmp_path, "sp500", exit_code,
                          message.replace("{tmp}", str(tmp_path)))
