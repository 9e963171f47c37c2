"""The sp500 pipeline end to end through kfp.local, run as a user runs it
(`python -m pipelines run sp500 ...`, what `make run` calls), on the offline data."""

from pathlib import Path

import pytest
from conftest import assert_failed_cleanly

pytestmark = pytest.mark.e2e


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
