"""Daily prices for a list of tickers, from the offline default or any URI.

The offline default is the S&P 500, NASDAQ Composite and VIX daily files that
the `arch` package ships (1999-2018; VIX 2014-2019). A real source is a URI
template with `{ticker}` in it, e.g. `gs://bucket/prices/{ticker}.csv` or
`/data/{ticker}.parquet`: CSV or Parquet with at least `Date` and `Close`.
"""

from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from components.errors import InputError
from components.storage import atomic_path, fetch

# ticker -> (package holding the file, file name, name of its close column)
BUNDLED = {
    "sp500": ("arch.data.sp500", "sp500.csv.gz", "Close"),
    "nasdaq": ("arch.data.nasdaq", "nasdaq.csv.gz", "Close"),
    "vix": ("arch.data.vix", "vix.csv.gz", "vix"),
}
PRICE_COLUMNS = ["Open", "High", "Low", "Close", "Volume"]


def parse_tickers(tickers: str) -> list[str]:
    names = [t.strip().lower() for t in tickers.split(",") if t.strip()]
    if not names:
        raise InputError("tickers: give at least one ticker, e.g. 'sp500,nasdaq'")
    if len(set(names)) != len(names):
        raise InputError(f"tickers: '{tickers}' names a ticker twice")
    return names


def read_price_file(path: Path, close_column: str = "Close") -> pd.DataFrame:
    """Read one ticker's CSV/Parquet into Date-indexed OHLCV (Close required)."""
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read prices ({error})") from error
    frame = frame.rename(columns={close_column: "Close"})
    for required in ("Date", "Close"):
        if required not in frame.columns:
            raise InputError(f"{path}: no '{required}' column (found: {', '.join(map(str, frame.columns))})")
    try:
        frame["Date"] = pd.to_datetime(frame["Date"], format="mixed")
    except (ValueError, TypeError) as error:
        raise InputError(f"{path}: column 'Date' has values that are not dates ({error})") from error
    frame["Close"] = pd.to_numeric(frame["Close"], errors="coerce")
    if frame.empty or frame["Close"].isna().all():
        raise InputError(f"{path}: column 'Close' has no numeric values")
    missing = int(frame["Close"].isna().sum())
    if missing:
        # A day without a close is a gap like a holiday: alignment forward-fills it.
        print(f"{path.name}: {missing} days without a Close value skipped", flush=True)
        frame = frame.dropna(subset=["Close"])
    if (frame["Close"] <= 0).any():
        raise InputError(f"{path}: column 'Close' has values <= 0, which have no log return")
    columns = ["Date"] + [c for c in PRICE_COLUMNS if c in frame.columns]
    return frame[columns].sort_values("Date").drop_duplicates("Date", keep="last")


def load_ticker(ticker: str, source: str, download_dir: Path) -> pd.DataFrame:
    if not source:
        if ticker not in BUNDLED:
            raise InputError(f"tickers: '{ticker}' is not in the offline data "
                             f"({', '.join(BUNDLED)}); give a source URI with {{ticker}} for others")
        package, file_name, close_column = BUNDLED[ticker]
        return read_price_file(Path(str(resources.files(package) / file_name)), close_column)
    if "{ticker}" not in source:
        raise InputError(f"source '{source}' must contain {{ticker}}, e.g. gs://bucket/{{ticker}}.csv")
    uri = source.format(ticker=ticker)
    # The URI's path names the file (a signed URL's query string must not).
    local = fetch(uri, download_dir / Path(urlparse(uri).path).name)
    return read_price_file(local)


def download_prices(tickers: str, source: str, output: Path) -> pd.DataFrame:
    """Fetch every ticker and write one long table (Date, Ticker, OHLCV) to `output`."""
    frames = []
    for ticker in parse_tickers(tickers):
        frame = load_ticker(ticker, source, output.parent / "downloads")
        print(f"{ticker}: {len(frame)} days {frame['Date'].min():%Y-%m-%d} .. "
              f"{frame['Date'].max():%Y-%m-%d}", flush=True)
        frames.append(frame.assign(Ticker=ticker))
    prices = pd.concat(frames, ignore_index=True)
    with atomic_path(output) as tmp:
        prices.to_parquet(tmp, index=False)
    return prices
