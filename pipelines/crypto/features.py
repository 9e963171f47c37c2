"""The source's feature set, per asset in time order, with the asset weights joined.

Columns (the source's names; the lists are in `pipelines.crypto.definitions`):
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

How it stays fast and lean: the load step's table is memory-mapped, and each
worker gathers one asset's rows of the columns it needs straight from it, in
the file's (time) order; no per-asset DataFrame filtering, no concat, no copy
of the whole table. The assets are computed on all CPUs at once (TA-Lib,
pandas' rolling windows and numpy release the GIL), each asset's features go
out as float32 in one record batch while the next ones are computed, and only
one more asset than CPUs is held at a time.
(bench/bench_crypto.py measures it against the source's approach.)
"""

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import talib

from components.common.errors import InputError
from pipelines.crypto.definitions import (
    ASSETS_TABLE,
    CALENDAR,
    DAY,
    LOADED_COLUMNS,
    PRICE_FEATURES,
    TRAIN_TABLE,
    WINDOWS,
    to_timestamp,
)
from pipelines.crypto.tables import open_table, write_table

INPUT_COLUMNS = list(LOADED_COLUMNS)
# Not nullable: a missing value is NaN.
SCHEMA = pa.schema(
    [pa.field(name, kind, nullable=False) for name, kind in
     [("timestamp", pa.int64()), ("Asset_ID", pa.int8())]
     + [(c, pa.float32()) for c in PRICE_FEATURES]
     + [(c, pa.int16()) for c in CALENDAR]
     + [("Target", pa.float32()), ("Weight", pa.float32()), ("train_flg", pa.int8())]])


def price_features(open_: np.ndarray, high: np.ndarray, low: np.ndarray,
                   close: np.ndarray) -> dict[str, np.ndarray]:
    """The price-derived features of one asset, its rows in time order (float64 arrays in).

    Each is computed in float64 and kept as float32 at once, so that few float64 results are
    alive at a time (the candle features share four logarithms).
    """
    out: dict[str, np.ndarray] = {}

    def keep(name: str, values: np.ndarray) -> None:
        out[name] = values.astype(np.float32)

    for n in WINDOWS:
        keep(f"RSI_{n}", talib.RSI(close, n))
        keep(f"ATR_{n}", talib.ATR(high, low, close, n))
        keep(f"DEMA_{n}", _dema(close, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        closes = pd.Series(close, copy=False)
        for n in WINDOWS:
            # pandas' compensated rolling sum, as the source: a running sum (TA-Lib's SMA, 7 times
            # faster) is off by 1e-16, and where the mean equals the close, sma_n would read 1e-16, not 0.
            keep(f"sma_{n}", closes.rolling(n).mean().to_numpy() / close - 1)
            keep(f"return_{n}", _ratio_to_lag(close, n) - 1)
    # Logs of ratios as differences of logs: four logarithms instead of four divisions and four
    # logarithms (log is monotonic, so the min and max commute with it).
    log_open, log_high, log_low, log_close = (np.log(p) for p in (open_, high, low, close))
    keep("HL", log_high - log_low)
    keep("OC", log_close - log_open)
    keep("lower_shadow", np.minimum(log_close, log_open) - log_low)
    keep("upper_shadow", log_high - np.maximum(log_close, log_open))
    return out


def _ratio_to_lag(close: np.ndarray, n: int) -> np.ndarray:
    """close[t] / close[t - n], missing for the first n rows."""
    ratio = np.full(len(close), np.nan)
    ratio[n:] = close[n:] / close[:-n]
    return ratio


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """pandas' ewm(span=span, adjust=False).mean() of a series without gaps, computed by TA-Lib.

    pandas starts the recursion y[t] = a x[t] + (1 - a) y[t-1], a = 2 / (span + 1), at y[0] = x[0];
    TA-Lib's EMA starts it at index span - 1 from the mean of the first span values. With span - 1
    copies of x[0] in front, that mean is x[0], and from there both run the same recursion, in C:
    equal to pandas within 1e-14, and many times faster than its ewm.
    """
    if not len(values):
        return np.empty(0)
    padded = np.empty(len(values) + span - 1)
    padded[:span - 1] = values[0]
    padded[span - 1:] = values
    return talib.EMA(padded, span)[span - 1:]


def _dema(close: np.ndarray, span: int) -> np.ndarray:
    """Double EMA as the source computes it: 2 EMA - EMA of the EMA."""
    first = ema(close, span)
    return 2 * first - ema(first, span)


def calendar_table(first_day: int, last_day: int) -> dict[str, np.ndarray]:
    """Calendar features of every day number (days since the epoch) from first_day to last_day."""
    dates = pd.to_datetime(np.arange(first_day, last_day + 1) * DAY, unit="s")
    return {"Day": dates.day_of_week.to_numpy(np.int16),
            "dayofyear": dates.day_of_year.to_numpy(np.int16),
            "weekofyear": dates.isocalendar().week.to_numpy(np.int16),
            "season": ((dates.month.to_numpy() % 12 + 3) // 3).astype(np.int16)}


def build_features(loaded_dir: Path, destination: Path, valid_start: str = "2021-05-01") -> dict[str, int]:
    """Write the feature table to `destination` (a record batch per asset); return row counts."""
    valid_from = to_timestamp(valid_start, "valid_start")
    assets = open_table(loaded_dir / ASSETS_TABLE, ["Asset_ID", "Weight"]).to_pydict()
    weights = dict(zip(assets["Asset_ID"], assets["Weight"], strict=True))
    train = open_table(loaded_dir / TRAIN_TABLE, INPUT_COLUMNS)
    present = sorted(pc.unique(train.column("Asset_ID")).to_pylist())
    if not present:
        raise InputError(f"{TRAIN_TABLE} in {loaded_dir} has no rows")
    if unknown := set(present) - weights.keys():
        raise InputError(f"{TRAIN_TABLE} has Asset_ID(s) {sorted(unknown)} that {ASSETS_TABLE} does not list")
    asset_ids = train.column("Asset_ID").to_numpy()  # one byte a row
    blocks = _Blocks(train)

    def one_asset(asset_id: int) -> pa.RecordBatch:
        rows = _time_ordered(blocks.gather(np.flatnonzero(asset_ids == asset_id)), asset_id)
        return _asset_features(rows, asset_id, weights[asset_id], valid_from)

    counts = {"rows": 0, "train_rows": 0, "valid_rows": 0}
    workers = len(os.sched_getaffinity(0))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # One more asset in flight than workers: both stay busy while the main thread writes.
        computed = _in_order(pool, one_asset, present, ahead=workers + 1)
        write_table(destination, SCHEMA, _counted(computed, counts))
    return counts


class _Blocks:
    """The columns of a memory-mapped table as numpy views of its record batches."""

    def __init__(self, table: pa.Table) -> None:
        self.names = table.column_names
        self.views = [[c.to_numpy(zero_copy_only=False) for c in batch.columns] for batch in table.to_batches()]
        self.starts = np.cumsum([0] + [len(views[0]) for views in self.views])
        self.dtypes = [kind.to_pandas_dtype() for kind in table.schema.types]

    def gather(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The rows at ascending positions `rows`, batch by batch, each column into one array."""
        out = [np.empty(len(rows), dtype) for dtype in self.dtypes]
        cuts = np.searchsorted(rows, self.starts)
        for views, first, begin, end in zip(self.views, self.starts, cuts, cuts[1:], strict=False):
            if end > begin:
                local = rows[begin:end] - first
                for target, view in zip(out, views, strict=True):
                    target[begin:end] = view[local]
        return dict(zip(self.names, out, strict=True))


def _in_order(pool: ThreadPoolExecutor, compute: Callable[[int], pa.RecordBatch], asset_ids: list[int],
              ahead: int) -> Iterator[pa.RecordBatch]:
    """compute(asset_id) for each asset in order, `ahead` of them submitted at a time."""
    pending: deque = deque()
    for asset_id in asset_ids:
        pending.append(pool.submit(compute, asset_id))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _counted(batches: Iterator[pa.RecordBatch], counts: dict[str, int]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        train_rows = int(np.count_nonzero(batch.column("train_flg").to_numpy()))
        counts["rows"] += batch.num_rows
        counts["train_rows"] += train_rows
        counts["valid_rows"] += batch.num_rows - train_rows
        print(f"features: asset {batch.column('Asset_ID')[0].as_py()} {batch.num_rows:,} rows", flush=True)
        yield batch


def _asset_features(rows: dict[str, np.ndarray], asset_id: int, weight: float,
                    valid_from: int) -> pa.RecordBatch:
    """The feature rows of one asset, its rows in time order."""
    timestamps = rows["timestamp"]
    out = {"timestamp": timestamps, "Asset_ID": rows["Asset_ID"]}
    out.update(price_features(rows["Open"], rows["High"], rows["Low"], rows["Close"]))
    first_day = int(timestamps[0]) // DAY
    day_index = timestamps // DAY - first_day
    out.update({k: v[day_index] for k, v in calendar_table(first_day, int(timestamps[-1]) // DAY).items()})
    out["Target"] = rows["Target"]
    out["Weight"] = np.full(len(timestamps), weight, dtype=np.float32)
    out["train_flg"] = (timestamps < valid_from).astype(np.int8)
    return pa.record_batch([out[name] for name in SCHEMA.names], schema=SCHEMA)


def _time_ordered(rows: dict[str, np.ndarray], asset_id: int) -> dict[str, np.ndarray]:
    """One asset's rows in time order; a repeated minute is bad input."""
    step = np.diff(rows["timestamp"])
    if (step < 0).any():  # the input was not in time order: sort this asset
        order = np.argsort(rows["timestamp"], kind="stable")
        rows = {name: values[order] for name, values in rows.items()}
        step = np.diff(rows["timestamp"])
    if (step == 0).any():
        repeated = int(rows["timestamp"][1:][step == 0][0])
        raise InputError(f"{TRAIN_TABLE}: Asset_ID {asset_id} has two rows at timestamp {repeated}")
    return rows
