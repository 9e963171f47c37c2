"""From daily closes to a labelled feature table, without looking ahead.

- Calendar: the target's trading days. Other tickers are forward-filled onto
  it (a holiday abroad repeats the last close), never back-filled.
- Returns: daily log returns, r(t) = ln(Close(t) / Close(t-1)).
- Features of day t: each ticker's return at lags 1..n (it closes with or
  after New York, so day t's own return is not known before the close), or
  lags 0..n-1 for a ticker listed as closing before New York opens.
- Label of day t: 1 if the target closes up that day (r(t) > 0), else 0.
- Split: chronological; the test set is the last `test_fraction` of the days.
"""

import pandas as pd

from components.common.errors import InputError

LABEL = "label"
TARGET_RETURN = "target_return"  # kept beside the features for the report's P&L plot only
DATE = "Date"


def aligned_closes(prices: pd.DataFrame, target: str) -> pd.DataFrame:
    """Wide table of closes on the target's calendar (Date index, one column per ticker)."""
    closes = prices.pivot_table(index=DATE, columns="Ticker", values="Close", aggfunc="last")
    if target not in closes.columns:
        raise InputError(f"target '{target}' is not among the tickers ({', '.join(closes.columns)})")
    calendar = closes.index[closes[target].notna()]
    # Forward fill over the full union of dates first, so a ticker's last close
    # before a target trading day is carried even when it traded on other days.
    return closes.ffill().loc[calendar]


def log_returns(closes: pd.DataFrame) -> pd.DataFrame:
    import numpy as np

    return np.log(closes / closes.shift(1))


def lags_for(ticker: str, num_lags: int, same_day_tickers: set[str]) -> range:
    return range(0, num_lags) if ticker in same_day_tickers else range(1, num_lags + 1)


def build_features(prices: pd.DataFrame, target: str, num_lags: int,
                   same_day_tickers: set[str]) -> pd.DataFrame:
    """One row per target trading day: lagged returns, the label and the target's return."""
    if num_lags < 1:
        raise InputError(f"num_lags must be at least 1, got {num_lags}")
    if target in same_day_tickers:
        raise InputError(f"same_day_tickers: the target '{target}' cannot be a same-day feature "
                         "(that would give away the label)")
    returns = log_returns(aligned_closes(prices, target))
    unknown = same_day_tickers - set(returns.columns)
    if unknown:
        raise InputError(f"same_day_tickers: {', '.join(sorted(unknown))} not among the tickers")
    columns = {}
    for ticker in returns.columns:
        for lag in lags_for(ticker, num_lags, same_day_tickers):
            columns[f"{ticker}_lag{lag}"] = returns[ticker].shift(lag)
    table = pd.DataFrame(columns, index=returns.index)
    table[TARGET_RETURN] = returns[target]
    table[LABEL] = (returns[target] > 0).astype("int64")
    # Rows before every ticker has enough history have missing lags: drop them.
    return table.dropna().astype({c: "float32" for c in columns}).reset_index()


def feature_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in (DATE, LABEL, TARGET_RETURN)]


def parse_same_day_tickers(text: str) -> set[str]:
    return {ticker.strip().lower() for ticker in text.split(",") if ticker.strip()}


def parse_date_range(start_date: str, end_date: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    dates = []
    for name, text in (("start_date", start_date), ("end_date", end_date)):
        try:
            date = pd.Timestamp(text)
        except ValueError as error:
            raise InputError(f"{name} '{text}' is not a date ({error})") from error
        if pd.isna(date):  # pd.Timestamp("") is NaT, not an error
            raise InputError(f"{name} is empty: give a date like 2015-01-31")
        dates.append(date)
    if dates[0] > dates[1]:
        raise InputError(f"start_date {start_date} is after end_date {end_date}")
    return dates[0], dates[1]


def check_test_fraction(test_fraction: float) -> None:
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be between 0 and 1, got {test_fraction}")


def select_dates(table: pd.DataFrame, start_date: str, end_date: str) -> pd.DataFrame:
    start, end = parse_date_range(start_date, end_date)
    selected = table[(table[DATE] >= start) & (table[DATE] <= end)]
    if selected.empty:
        available = f"{table[DATE].min():%Y-%m-%d} .. {table[DATE].max():%Y-%m-%d}" if len(table) else "none"
        raise InputError(f"no trading days with all features between start_date {start_date} and "
                         f"end_date {end_date} (available: {available})")
    return selected.reset_index(drop=True)


def chronological_split(table: pd.DataFrame, test_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    check_test_fraction(test_fraction)
    cut = int(round(len(table) * (1 - test_fraction)))
    if cut < 1 or cut >= len(table):
        raise InputError(f"{len(table)} days are too few to split with test_fraction {test_fraction}")
    ordered = table.sort_values(DATE)
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)
