"""Daily prices for a list of tickers, from the offline default or any URI.

The offline default is the S&P 500, NASDAQ Composite and VIX daily files that
the `arch` package ships (1999-2018; VIX 2014-2019). A real source is a URI
template with `{ticker}` in it, e.g. `gs://bucket/prices/{ticker}.csv` or
`/data/{ticker}.parquet`: CSV or Parquet with at least `Date` and `Close`.
"""

import importlib.util
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from components.common.errors import InputError
from components.common.storage import atomic_path, display_uri, fetch, shared_retry_budget

# ticker -> (the file in the `arch` package's data folder, the name of its close column)
BUNDLED = {
    "sp500": ("sp500/sp500.csv.gz", "Close"),
    "nasdaq": ("nasdaq/nasdaq.csv.gz", "Close"),
    "vix": ("vix/vix.csv.gz", "vix"),
}
PRICE_COLUMNS = ["Open", "High", "Low", "Close", "Volume"]
# Cells that mean "no value that day" besides pandas' own NA spellings ("", "NA", "NaN"...):
# FRED's files, the VIX among them, write '.' on holidays.
MISSING_MARKERS = (".",)


def parse_tickers(tickers: str) -> list[str]:
    names = [t.strip().lower() for t in tickers.split(",") if t.strip()]
    if not names:
        raise InputError("tickers: give at least one ticker, e.g. 'sp500,nasdaq'")
    if len(set(names)) != len(names):
        raise InputError(f"tickers: '{tickers}' names a ticker twice")
    return names


def read_price_file(path: Path, close_column: str = "Close", shown_as: str | None = None) -> pd.DataFrame:
    """Read one ticker's CSV/Parquet into Date-indexed OHLCV (Close required).

    Errors name `shown_as` (the path or URI the user gave), not the downloaded copy.
    A day without a Close (an empty cell, NA/NaN, or FRED's '.') is a gap like a
    holiday: it is skipped and counted in `frame.attrs["skipped_days"]`. A Close
    that is not a number, infinite or not positive is an error naming its first date.
    """
    shown = shown_as or str(path)
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, na_values=list(MISSING_MARKERS), keep_default_na=True)
    except (OSError, ValueError) as error:
        raise InputError(f"{shown}: cannot read prices ({error})") from error
    frame = frame.rename(columns={close_column: "Close"})
    for required in ("Date", "Close"):
        if required not in frame.columns:
            raise InputError(f"{shown}: no '{required}' column (found: {', '.join(map(str, frame.columns))})")
    try:
        frame["Date"] = pd.to_datetime(frame["Date"], format="mixed")
    except (ValueError, TypeError) as error:
        raise InputError(f"{shown}: column 'Date' has values that are not dates ({error})") from error
    missing = frame["Close"].isna()
    close = pd.to_numeric(frame["Close"], errors="coerce")
    bad = (close.isna() & ~missing) | ~np.isfinite(close.fillna(1.0)) | (close <= 0)
    if bad.any():
        first, more = bad.idxmax(), int(bad.sum()) - 1
        raise InputError(f"{shown}: column '{close_column}' on {frame['Date'][first]:%Y-%m-%d} is "
                         f"{frame['Close'][first]}, not a positive finite price"
                         + (f" (and on {more} more day{'s' if more > 1 else ''})" if more else ""))
    frame["Close"] = close
    if frame.empty or close.isna().all():
        raise InputError(f"{shown}: column '{close_column}' has no numeric values")
    frame = frame[~missing]
    columns = ["Date"] + [c for c in PRICE_COLUMNS if c in frame.columns]
    frame = frame[columns].sort_values("Date").drop_duplicates("Date", keep="last")
    frame.attrs["skipped_days"] = int(missing.sum())
    return frame


def load_ticker(ticker: str, source: str, download_dir: Path) -> pd.DataFrame:
    if not source:
        check_offline_ticker(ticker)
        file_name, close_column = BUNDLED[ticker]
        return read_price_file(bundled_path(file_name), close_column)
    check_source_template(source)
    uri = source.format(ticker=ticker)
    # The URI's path names the file (a signed URL's query string must not).
    local = fetch(uri, download_dir / Path(urlparse(uri).path).name)
    return read_price_file(local, shown_as=display_uri(uri))


def bundled_path(file_name: str) -> Path:
    """A file of the `arch` package's data folder, found without importing arch (its import loads
    its models: 1.5 s of every offline download)."""
    return Path(importlib.util.find_spec("arch").origin).parent / "data" / file_name


def check_offline_ticker(ticker: str) -> None:
    if ticker not in BUNDLED:
        raise InputError(f"tickers: '{ticker}' is not in the offline data "
                         f"({', '.join(BUNDLED)}); give a source URI with {{ticker}} for others")


def check_source_template(source: str) -> None:
    if "{ticker}" not in source:
        raise InputError(f"source '{display_uri(source)}' must contain {{ticker}}, "
                         "e.g. gs://bucket/{ticker}.csv")
    try:
        source.format(ticker="x")
    except (KeyError, IndexError, ValueError) as error:
        raise InputError(f"source '{display_uri(source)}': only {{ticker}} may be in braces ({error})") from error


@shared_retry_budget()
def download_prices(tickers: str, source: str, output: Path) -> pd.DataFrame:
    """Fetch every ticker and write one long table (Date, Ticker, OHLCV) to `output`.

    `prices.attrs["skipped_days"]` counts, per ticker, the days skipped for want of a Close.
    """
    frames, skipped = [], {}
    for ticker in parse_tickers(tickers):
        frame = load_ticker(ticker, source, output.parent / "downloads")
        skipped[ticker] = frame.attrs.get("skipped_days", 0)
        print(f"{ticker}: {len(frame)} days {frame['Date'].min():%Y-%m-%d} .. "
              f"{frame['Date'].max():%Y-%m-%d}"
              + (f", {skipped[ticker]} days without a Close skipped" if skipped[ticker] else ""), flush=True)
        frames.append(frame.assign(Ticker=ticker))
    prices = pd.concat(frames, ignore_index=True)
    with atomic_path(output) as tmp:
        prices.to_parquet(tmp, index=False)
    prices.attrs["skipped_days"] = skipped
    return prices
