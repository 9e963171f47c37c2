"""The source's feature set, per asset in time order, with the asset weights joined.

Columns (the source's names; the lists are in `components.crypto.definitions`):
RSI_n, ATR_n (TA-Lib), DEMA_n (2 EMA - EMA of EMA,
pandas ewm with adjust=False as in the source), sma_n = mean of the last n
closes / Close - 1, return_n = Close / Close n rows back - 1, for n in 30, 120,
240; HL, OC, lower_shadow, upper_shadow; Day (weekday), dayofyear, weekofyear
(ISO week), season (1 winter ... 4 autumn); train_flg (1 before valid_start,
UTC). Every value at a row uses only that row and earlier rows of the same
asset; windows count rows, as in the source (a missing minute is skipped).

Where the source is unsound, the name is kept and the definition changed:
- HL, OC, lower_shadow, upper_shadow were logs of price differences:
  log(Close - Open) is undefined whenever a bar falls (half of all bars),
  log(0) = -inf for every flat bar, and the value depends on the asset's price
  level (Bitcoin's differences are 10^7 times Dogecoin's). After the source's
  fillna(0) all of those rows read "a difference of exactly 1 price unit".
  Here they are logs of price ratios, defined for every bar, signed and
  comparable across assets: HL = log(High/Low), OC = log(Close/Open),
  upper_shadow = log(High/max(Close, Open)), lower_shadow = log(min(Close, Open)/Low).
- The source filled every missing value with 0, Target included: a warm-up
  RSI of 0 reads "extremely oversold" and a missing Target became a real
  zero. Here a missing value stays missing (LightGBM routes it natively) and
  rows without a Target are left out of training and evaluation.
- The source's train/validation split converted the date in the machine's
  local time zone; here it is UTC.
- pandas removed `dt.weekofyear`; `dt.isocalendar().week` is the same ISO week.

How it stays fast and lean: only the needed columns are read, one at a time;
rows are grouped by asset with one stable sort (Asset_ID is one byte, so numpy
sorts it by radix); each asset's features are computed on contiguous float64
arrays and handed as float32 to a writer thread that stores them as one
Parquet row group while the next asset is computed — no per-asset DataFrame
filtering, no concat, no copy of the whole table. (bench/bench_crypto.py
measures it against the source's approach.)
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import talib

from components.crypto.definitions import (
    ASSETS_PARQUET,
    CALENDAR,
    DAY,
    PRICE_FEATURES,
    TRAIN_PARQUET,
    WINDOWS,
    to_timestamp,
)
from components.errors import InputError
from components.storage import atomic_path

FEATURES_PARQUET = "features.parquet"
# Dictionary encoding only where values repeat: on measured floats it costs most of the
# write time and saves nothing. Statistics only where readers filter (by time).
WRITE_OPTIONS = {"use_dictionary": ["Asset_ID", "Weight", "train_flg", "Day", "dayofyear", "weekofyear",
                                    "season"],
                 "write_statistics": ["timestamp", "Asset_ID", "Target"],
                 "compression": "none"}  # float noise does not compress (snappy: -5% size, +30% time)
INPUT_COLUMNS = ["timestamp", "Asset_ID", "Open", "High", "Low", "Close", "Target"]
SCHEMA = pa.schema(
    [("timestamp", pa.int64()), ("Asset_ID", pa.int8())]
    + [(c, pa.float32()) for c in PRICE_FEATURES]
    + [(c, pa.int16()) for c in CALENDAR]
    + [("Target", pa.float32()), ("Weight", pa.float32()), ("train_flg", pa.int8())])


def price_features(open_: np.ndarray, high: np.ndarray, low: np.ndarray,
                   close: np.ndarray) -> dict[str, np.ndarray]:
    """The price-derived features of one asset, its rows in time order (float64 arrays)."""
    out: dict[str, np.ndarray] = {}
    for n in WINDOWS:
        out[f"RSI_{n}"] = talib.RSI(close, n)
        out[f"ATR_{n}"] = talib.ATR(high, low, close, n)
        out[f"DEMA_{n}"] = _dema(close, n)
    closes = pd.Series(close, copy=False)
    for n in WINDOWS:
        out[f"sma_{n}"] = closes.rolling(n).mean().to_numpy() / close - 1
        out[f"return_{n}"] = close / closes.shift(n).to_numpy() - 1
    body_top, body_bottom = np.maximum(close, open_), np.minimum(close, open_)
    out["HL"] = np.log(high / low)
    out["OC"] = np.log(close / open_)
    out["lower_shadow"] = np.log(body_bottom / low)
    out["upper_shadow"] = np.log(high / body_top)
    return out


def _dema(close: np.ndarray, span: int) -> np.ndarray:
    ema = pd.Series(close, copy=False).ewm(span=span, adjust=False).mean()
    return (2 * ema - ema.ewm(span=span, adjust=False).mean()).to_numpy()


def calendar_table(first_day: int, last_day: int) -> dict[str, np.ndarray]:
    """Calendar features of every day number (days since the epoch) from first_day to last_day."""
    dates = pd.to_datetime(np.arange(first_day, last_day + 1) * DAY, unit="s")
    return {"Day": dates.day_of_week.to_numpy(np.int16),
            "dayofyear": dates.day_of_year.to_numpy(np.int16),
            "weekofyear": dates.isocalendar().week.to_numpy(np.int16),
            "season": ((dates.month.to_numpy() % 12 + 3) // 3).astype(np.int16)}


def build_features(loaded_dir: Path, destination: Path, valid_start: str = "2021-05-01") -> dict[str, int]:
    """Write the feature table to `destination` (one row group per asset); return row counts."""
    valid_from = to_timestamp(valid_start, "valid_start")
    columns = _read_columns(loaded_dir / TRAIN_PARQUET)
    weights = pd.read_parquet(loaded_dir / ASSETS_PARQUET).set_index("Asset_ID")["Weight"]
    days = columns["timestamp"] // DAY
    calendar = calendar_table(int(days.min()), int(days.max()))
    # numpy sorts one-byte keys by radix: a single O(n) pass groups the rows by asset.
    order = np.argsort(columns["Asset_ID"], kind="stable")
    bounds = np.flatnonzero(np.diff(columns["Asset_ID"][order])) + 1
    counts = {"rows": 0, "train_rows": 0, "valid_rows": 0}
    # One thread writes asset k (Arrow encodes without the GIL) while this one computes asset k+1.
    with atomic_path(destination) as tmp, pq.ParquetWriter(tmp, SCHEMA, **WRITE_OPTIONS) as writer, \
            ThreadPoolExecutor(max_workers=1) as background:
        writing = None
        for rows in np.split(order, bounds):
            asset = _time_ordered(columns, rows)
            asset_id = int(asset["Asset_ID"][0])
            out = {"timestamp": asset["timestamp"], "Asset_ID": asset["Asset_ID"]}
            out.update({k: v.astype(np.float32) for k, v in price_features(
                asset["Open"], asset["High"], asset["Low"], asset["Close"]).items()})
            day_index = asset["timestamp"] // DAY - int(days.min())
            out.update({k: v[day_index] for k, v in calendar.items()})
            out["Target"] = asset["Target"]
            out["Weight"] = np.full(len(rows), weights[asset_id], dtype=np.float32)
            out["train_flg"] = (asset["timestamp"] < valid_from).astype(np.int8)
            if writing:
                writing.result()
            writing = background.submit(writer.write_table, pa.table(out, schema=SCHEMA))
            train_rows = int(out["train_flg"].sum())
            counts["rows"] += len(rows)
            counts["train_rows"] += train_rows
            counts["valid_rows"] += len(rows) - train_rows
            print(f"features: asset {asset_id} {len(rows):,} rows", flush=True)
        if writing:
            writing.result()
    return counts


def _read_columns(path: Path) -> dict[str, np.ndarray]:
    """The input columns as numpy arrays, read one at a time: only one column is ever held twice."""
    parquet = pq.ParquetFile(path)
    return {c: parquet.read(columns=[c]).column(0).to_numpy() for c in INPUT_COLUMNS}


def _time_ordered(columns: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """One asset's columns in time order; a repeated minute is bad input."""
    timestamps = columns["timestamp"][rows]
    step = np.diff(timestamps)
    if (step < 0).any():  # the input was not in time order: sort this asset
        rows = rows[np.argsort(timestamps, kind="stable")]
        timestamps = columns["timestamp"][rows]
        step = np.diff(timestamps)
    if (step == 0).any():
        repeated = int(timestamps[1:][step == 0][0])
        raise InputError(f"{TRAIN_PARQUET}: Asset_ID {int(columns['Asset_ID'][rows[0]])} has "
                         f"two rows at timestamp {repeated}")
    return {c: np.ascontiguousarray(v[rows]) if c != "timestamp" else timestamps
            for c, v in columns.items()}
