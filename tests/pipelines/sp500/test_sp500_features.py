"""Feature, label and split logic of the sp500 pipeline, and its input checks."""

import re

import numpy as np
import pandas as pd
import pytest

from components.common.errors import InputError
from pipelines.sp500 import data, features


def synthetic_prices(days: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=days)
    frames = []
    for ticker in ("sp500", "nasdaq", "nikkei"):
        closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
        frames.append(pd.DataFrame({"Date": dates, "Ticker": ticker, "Close": closes}))
    return pd.concat(frames, ignore_index=True)


def test_label_is_the_sign_of_the_targets_same_day_return():
    table = features.build_features(synthetic_prices(), "sp500", 3, set())
    prices = synthetic_prices().query("Ticker == 'sp500'").set_index("Date")["Close"]
    expected = (np.log(prices / prices.shift(1)) > 0).astype(int)
    assert (table.set_index("Date")["label"] == expected.loc[table["Date"]]).all()


def test_lagged_features_are_earlier_returns():
    table = features.build_features(synthetic_prices(), "sp500", 3, set()).set_index("Date")
    returns = features.log_returns(
        synthetic_prices().pivot(index="Date", columns="Ticker", values="Close"))
    day = table.index[10]
    position = returns.index.get_loc(day)
    assert table.loc[day, "nasdaq_lag2"] == pytest.approx(returns["nasdaq"].iloc[position - 2], rel=1e-6)
    assert table.loc[day, "sp500_lag1"] == pytest.approx(returns["sp500"].iloc[position - 1], rel=1e-6)
    assert {"sp500_lag1", "sp500_lag2", "sp500_lag3"} <= set(table.columns)
    assert "sp500_lag0" not in table.columns


def test_same_day_tickers_get_lags_zero_to_two():
    table = features.build_features(synthetic_prices(), "sp500", 3, {"nikkei"})
    assert {"nikkei_lag0", "nikkei_lag1", "nikkei_lag2"} <= set(table.columns)
    assert "nikkei_lag3" not in table.columns and "nasdaq_lag0" not in table.columns


def test_the_target_cannot_be_a_same_day_feature():
    with pytest.raises(InputError, match="target 'sp500'"):
        features.build_features(synthetic_prices(), "sp500", 3, {"sp500"})


def test_changing_prices_after_day_t_changes_no_feature_of_day_t():
    prices = synthetic_prices()
    # A ticker that trades on days the target does not (a holiday in New
    # York) exercises the forward fill over the union of calendars.
    holidays = prices["Date"].unique()[[12, 25, 40]]
    prices = prices[~((prices["Ticker"] == "sp500") & prices["Date"].isin(holidays))]
    before = features.build_features(prices, "sp500", 3, {"nikkei"}).set_index("Date")
    day_t = before.index[30]
    changed = prices.copy()
    later = changed["Date"] > day_t
    changed.loc[later, "Close"] *= np.random.default_rng(1).uniform(0.5, 1.5, later.sum())
    after = features.build_features(changed, "sp500", 3, {"nikkei"}).set_index("Date")
    feature_names = features.feature_columns(before.reset_index())
    pd.testing.assert_frame_equal(before.loc[:day_t, feature_names], after.loc[:day_t, feature_names])
    assert not before.loc[day_t:, feature_names].iloc[2:].equals(after.loc[day_t:, feature_names].iloc[2:])


def test_holidays_abroad_are_forward_filled_never_back_filled():
    prices = synthetic_prices()
    gap_day = prices["Date"].unique()[20]
    prices = prices[~((prices["Ticker"] == "nasdaq") & (prices["Date"] == gap_day))]
    closes = features.aligned_closes(prices, "sp500")
    previous = closes.index[closes.index.get_loc(gap_day) - 1]
    assert closes.loc[gap_day, "nasdaq"] == closes.loc[previous, "nasdaq"]


def test_split_is_chronological_and_complete():
    table = features.build_features(synthetic_prices(days=100), "sp500", 3, set())
    train, test = features.chronological_split(table.sample(frac=1, random_state=0), 0.2)
    assert train["Date"].max() < test["Date"].min()
    assert len(train) + len(test) == len(table)
    assert len(test) == round(len(table) * 0.2)


def test_empty_date_range_names_the_dates():
    table = features.build_features(synthetic_prices(), "sp500", 3, set())
    with pytest.raises(InputError, match="start_date 2030-01-01 and end_date 2030-12-31"):
        features.select_dates(table, "2030-01-01", "2030-12-31")


def test_bundled_prices_load_with_close_columns(tmp_path):
    prices = data.download_prices("sp500,nasdaq,vix", "", tmp_path / "prices.parquet")
    assert set(prices["Ticker"]) == {"sp500", "nasdaq", "vix"}
    assert prices["Close"].notna().all()
    assert pd.read_parquet(tmp_path / "prices.parquet").shape == prices.shape


def test_a_source_template_reads_csv_and_parquet_files(tmp_path):
    prices = synthetic_prices()
    prices.query("Ticker == 'sp500'").drop(columns="Ticker").to_csv(tmp_path / "sp500.csv", index=False)
    prices.query("Ticker == 'nasdaq'").drop(columns="Ticker").to_csv(tmp_path / "nasdaq.csv", index=False)
    prices.query("Ticker == 'sp500'").drop(columns="Ticker").to_parquet(tmp_path / "sp500.parquet")
    prices.query("Ticker == 'nasdaq'").drop(columns="Ticker").to_parquet(tmp_path / "nasdaq.parquet")
    from_csv = data.download_prices("sp500,nasdaq", f"file://{tmp_path}/{{ticker}}.csv", tmp_path / "a" / "p")
    from_parquet = data.download_prices("sp500,nasdaq", str(tmp_path / "{ticker}.parquet"), tmp_path / "b" / "p")
    assert len(from_csv) == len(from_parquet) == 120
    pd.testing.assert_series_equal(from_csv["Close"], from_parquet["Close"])


@pytest.mark.parametrize("content, message", [
    ("Date,Open\n2020-01-01,1\n", "no 'Close' column"),
    ("Date,Close\nnot-a-date,1\n", "'Date' has values that are not dates"),
    ("Date,Close\n2020-01-01,-3\n", "column 'Close' on 2020-01-01 is -3, not a positive finite price$"),
])
def test_bad_price_files_name_the_file_and_column(tmp_path, content, message):
    (tmp_path / "sp500.csv").write_text(content)
    output = tmp_path / "out" / "prices.parquet"
    with pytest.raises(InputError, match=message) as error:
        data.download_prices("sp500", str(tmp_path / "{ticker}.csv"), output)
    assert str(tmp_path / "sp500.csv") in str(error.value)
    assert not output.exists()


def test_missing_file_and_unknown_ticker_are_clear(tmp_path):
    with pytest.raises(InputError, match="data file not found: .*/nope.csv"):
        data.download_prices("nope", str(tmp_path / "{ticker}.csv"), tmp_path / "p.parquet")
    with pytest.raises(InputError, match="'dax' is not in the offline data"):
        data.download_prices("dax", "", tmp_path / "p.parquet")
    assert not (tmp_path / "p.parquet").exists()


@pytest.mark.parametrize("bad_close, shown", [("inf", "inf"), ("-inf", "-inf"), ("0", "0"), ("abc", "abc"),
                                               ("1e400", "inf")])
def test_a_bad_close_names_the_file_the_column_and_the_first_bad_date(tmp_path, bad_close, shown):
    first_bad = "2020-01-03"
    rows = ["2020-01-02,10", f"2020-01-03,{bad_close}", "2020-01-06,11", f"2020-01-07,{bad_close}"]
    (tmp_path / "sp500.csv").write_text("Date,Close\n" + "\n".join(rows) + "\n")
    output = tmp_path / "out" / "prices.parquet"
    with pytest.raises(InputError) as error:
        data.download_prices("sp500", f"file://{tmp_path}/{{ticker}}.csv", output)
    message = str(error.value)
    assert message == (f"file://{tmp_path}/sp500.csv: column 'Close' on {first_bad} is {shown}, "
                       "not a positive finite price (and on 1 more day)")
    assert "downloads" not in message  # the user's URI, not the run's copy
    assert not output.exists()


def test_days_without_a_close_are_skipped_and_counted(tmp_path):
    rows = ["2020-01-02,10", "2020-01-03,", "2020-01-06,NaN", "2020-01-07,.", "2020-01-08,12"]
    (tmp_path / "sp500.csv").write_text("Date,Close\n" + "\n".join(rows) + "\n")
    prices = data.download_prices("sp500", str(tmp_path / "{ticker}.csv"), tmp_path / "p.parquet")
    assert list(prices["Close"]) == [10.0, 12.0]
    assert prices.attrs["skipped_days"] == {"sp500": 3}


def test_a_non_finite_close_in_parquet_is_refused_too(tmp_path):
    pd.DataFrame({"Date": pd.to_datetime(["2021-03-01", "2021-03-02"]), "Close": [5.0, float("inf")]}).to_parquet(
        tmp_path / "sp500.parquet")
    with pytest.raises(InputError, match=r"sp500.parquet: column 'Close' on 2021-03-02 is inf, not a positive"):
        data.download_prices("sp500", str(tmp_path / "{ticker}.parquet"), tmp_path / "p.parquet")


def test_errors_about_a_downloaded_file_name_the_url(tmp_path):
    import functools
    import http.server
    import threading

    (tmp_path / "sp500.csv").write_text("Date,Open\n2020-01-02,1\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{{ticker}}.csv?token=secret"
        with pytest.raises(InputError) as error:
            data.download_prices("sp500", url, tmp_path / "run" / "prices.parquet")
    finally:
        server.shutdown()
    assert str(error.value) == (f"http://127.0.0.1:{server.server_port}/sp500.csv: no 'Close' column "
                                "(found: Date, Open)")


@pytest.mark.parametrize("source, message", [
    ("/data/prices.csv", "source '/data/prices.csv' must contain {ticker}"),
    ("/data/{ticker}/{date}.csv", "only {ticker} may be in braces"),
])
def test_source_template_checks(source, message):
    with pytest.raises(InputError, match=re.escape(message)):
        data.check_source_template(source)
