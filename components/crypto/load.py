"""train.csv and asset_details.csv to Parquet, with explicit types and the dirt counted.

Arrow parses the CSV on every core into one table of typed columns (about 65
bytes a row: 0.8 GB for 12.7M rows, 1.6 GB for the real file's 24M); the rows
kept are then gathered column by column, grouped by asset in the file's time
order, each Arrow column freed as soon as it is converted, and written with a
row group per asset, so that the feature step reads each asset on its own.

Types: prices float64 — a one-minute return is about 1e-3, and float32's 7
digits would leave only 3-4 of them in it — everything else float32,
Asset_ID int8, timestamp int64.

Dirty values, each counted in the returned summary:
- VWAP ±inf (zero-volume bars in the real data) becomes missing;
- negative Volume becomes missing;
- a missing Target is kept as missing: the row still feeds the indicators of
  the rows after it, and training skips it (the source filled it with 0 and
  trained on those zeros);
- a row whose Open/High/Low/Close is missing or not positive is dropped (no
  indicator is defined on it, and TA-Lib would carry a NaN forward).
"""

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from components.crypto.assets import ASSET_COLUMNS, TRAIN_COLUMNS
from components.crypto.data import ASSETS_CSV, TRAIN_CSV
from components.crypto.definitions import ASSETS_PARQUET, TRAIN_PARQUET, to_timestamp
from components.errors import InputError
from components.storage import atomic_path

PRICE_COLUMNS = ("Open", "High", "Low", "Close")
CSV_TYPES = {"timestamp": pa.int64(), "Asset_ID": pa.int64(), "Count": pa.float32(),
             "Open": pa.float64(), "High": pa.float64(), "Low": pa.float64(),
             "Close": pa.float64(), "Volume": pa.float32(), "VWAP": pa.float32(),
             "Target": pa.float32()}
# Not nullable: a missing value is NaN, and without definition levels Parquet writes 40% faster.
PARQUET_SCHEMA = pa.schema([pa.field(c, pa.int8() if c == "Asset_ID" else CSV_TYPES[c], nullable=False)
                            for c in TRAIN_COLUMNS])
VALUE_COLUMNS = [c for c in TRAIN_COLUMNS if c not in ("timestamp", "Asset_ID")]
BLOCK_BYTES = 4 << 20  # measured on 1.35 GB: 1 MB 3.3 s, 4 MB 2.8 s, 16 MB 6.0 s (too few blocks per thread)
ROWS_PER_GROUP = 1 << 20  # small row groups make every later read slower


def load(raw_dir: Path, destination: Path, start_date: str = "2020-01-01") -> dict[str, int]:
    """Write `destination`/train.parquet and assets.parquet; return the row and dirt counts."""
    start = to_timestamp(start_date, "start_date")
    assets = read_asset_details(raw_dir / ASSETS_CSV)
    train_csv = raw_dir / TRAIN_CSV
    check_header(train_csv)
    with atomic_path(destination) as staging:
        staging.mkdir()
        counts = _convert_train(train_csv, staging / TRAIN_PARQUET, start,
                                set(assets["Asset_ID"].tolist()))
        if counts["rows"] == 0:
            raise InputError(f"{TRAIN_CSV} has no usable rows from start_date {start_date} on "
                             f"({counts['rows_before_start']:,} rows before it, "
                             f"{counts['rows_bad_price']:,} without a usable price; "
                             f"its last row is at {_date(counts['last_timestamp'])})")
        assets.to_parquet(staging / ASSETS_PARQUET, index=False)
    del counts["last_timestamp"]
    print(f"loaded {counts['rows']:,} rows from {start_date} on; dirt: "
          + ", ".join(f"{k}={v:,}" for k, v in counts.items() if k != "rows"),
          flush=True)
    return counts


def read_asset_details(path: Path) -> pd.DataFrame:
    """The asset table, every field read as text and converted here, so a bad value names its column."""
    if not path.is_file():
        raise InputError(f"{path.name} not found in {path.parent}")
    assets = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ASSET_COLUMNS if c not in assets.columns]
    if missing:
        raise InputError(f"{path.name} lacks column(s) {', '.join(missing)}")
    asset_ids, weights = _numbers(assets, "Asset_ID", path), _numbers(assets, "Weight", path)
    fractional = assets["Asset_ID"][asset_ids != np.floor(asset_ids)]
    if len(fractional):
        raise InputError(f"{path.name}: column Asset_ID holds '{fractional.iloc[0]}', not a whole number")
    assets = pd.DataFrame({"Asset_ID": asset_ids, "Weight": weights, "Asset_Name": assets["Asset_Name"]})
    assets = assets.sort_values("Asset_ID", ignore_index=True)
    if assets["Asset_ID"].duplicated().any() or not (assets["Weight"] > 0).all():
        raise InputError(f"{path.name}: Asset_IDs must be unique and weights positive")
    if not assets["Asset_ID"].between(0, 127).all():  # stored as int8
        raise InputError(f"{path.name}: Asset_ID must lie in 0..127")
    return assets.astype({"Asset_ID": "int8", "Weight": "float64", "Asset_Name": "str"})


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce").astype("float64")
    bad = frame[column][~np.isfinite(values)]
    if len(bad):
        raise InputError(f"{path.name}: column {column} holds '{bad.iloc[0]}', not a number")
    return values


def check_header(train_csv: Path) -> None:
    if not train_csv.is_file():
        raise InputError(f"{train_csv.name} not found in {train_csv.parent}")
    missing = [c for c in TRAIN_COLUMNS if c not in _header(train_csv)]
    if missing:
        raise InputError(f"{train_csv.name} lacks column(s) {', '.join(missing)}")


def _header(train_csv: Path) -> list[str]:
    with open(train_csv, encoding="utf-8", errors="replace") as f:
        return [name.strip().strip('"') for name in f.readline().split(",")]


def _convert_train(train_csv: Path, parquet: Path, start: int, known_ids: set[int]) -> dict[str, int]:
    counts = dict.fromkeys(("rows", "rows_before_start", "rows_bad_price", "vwap_inf",
                            "vwap_missing", "volume_negative", "target_missing",
                            "last_timestamp"), 0)
    table = _read_csv(train_csv)
    for key in ("timestamp", "Asset_ID"):
        if table.column(key).null_count:
            raise InputError(f"{TRAIN_CSV} has rows without {key}")
    columns = {name: table.column(name) for name in TRAIN_COLUMNS}  # Arrow's columns, freed one by one below
    del table
    unknown = set(pc.unique(columns["Asset_ID"]).to_pylist()) - known_ids  # hashed: numpy's unique sorts
    timestamps, asset_ids = columns.pop("timestamp").to_numpy(), columns.pop("Asset_ID").to_numpy()
    if len(timestamps):
        counts["last_timestamp"] = int(timestamps.max())
    if unknown:
        raise InputError(f"{TRAIN_CSV} has Asset_ID(s) {sorted(unknown)} that {ASSETS_CSV} does not list")
    after_start = timestamps >= start
    counts["rows_before_start"] = int((~after_start).sum())
    good_price = after_start.copy()
    for name in PRICE_COLUMNS:  # Arrow's kernels, block by block: no float copy of the column
        usable = pc.and_(pc.is_finite(columns[name]), pc.greater(columns[name], 0)).fill_null(False)
        good_price &= usable.to_numpy()
    counts["rows_bad_price"] = int((after_start & ~good_price).sum())
    rows = np.flatnonzero(good_price)
    del after_start, good_price
    # Grouped by asset (a stable radix sort of one-byte keys: each asset keeps the file's time order),
    # so that the feature step reads each asset as one contiguous slice.
    asset_ids = asset_ids.astype(np.int8)
    rows = rows[np.argsort(asset_ids[rows], kind="stable")]
    kept = {"timestamp": timestamps[rows], "Asset_ID": asset_ids[rows]}
    del timestamps, asset_ids

    kept.update(_gathered(columns, rows))
    del rows
    _clean(kept, counts)
    bounds = np.flatnonzero(np.diff(kept["Asset_ID"])) + 1
    grouped = pa.table(kept, schema=PARQUET_SCHEMA)
    del kept
    # Dictionary encoding only for Asset_ID: on prices it costs time and saves nothing. Uncompressed:
    # the table lives for one run on the workspace, and decompressing it tripled the next step's read.
    with pq.ParquetWriter(parquet, PARQUET_SCHEMA, use_dictionary=["Asset_ID"], compression="none",
                          write_statistics=["timestamp", "Asset_ID"]) as writer:
        for begin, end in zip([0, *bounds], [*bounds, len(grouped)], strict=True):
            writer.write_table(grouped.slice(begin, end - begin), row_group_size=ROWS_PER_GROUP)
    return counts


def _gathered(columns: dict[str, pa.ChunkedArray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The value columns' `rows`, each Arrow column freed as soon as it is converted."""
    def gather(name: str) -> np.ndarray:
        return columns.pop(name).to_numpy()[rows]  # a missing float reads as NaN

    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        # numpy's gather and Arrow's conversion release the GIL: one column per core.
        return dict(zip(VALUE_COLUMNS, pool.map(gather, VALUE_COLUMNS), strict=True))


def _read_csv(train_csv: Path) -> pa.Table:
    """The whole CSV, parsed by Arrow on every core (its streaming reader parses on one thread)."""
    try:
        return pacsv.read_csv(
            train_csv, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=True),
            convert_options=pacsv.ConvertOptions(column_types=CSV_TYPES, include_columns=list(TRAIN_COLUMNS)),
            memory_pool=_returning_pool())
    except pa.ArrowInvalid as error:  # a value that does not parse as its column's type
        message = str(error)
        if column := re.search(r"column #(\d+)", message):
            message += f" (column {_header(train_csv)[int(column[1])]})"
        raise InputError(f"{TRAIN_CSV}: {message}") from error


def _returning_pool() -> pa.MemoryPool:
    """Arrow's jemalloc pool, set to give freed memory back at once.

    The default pool (mimalloc) keeps what it frees: each CSV column converted to numpy and dropped
    would still count, and the peak would be the CSV's table plus all of its copy (1.8 GB instead
    of 1.2 GB on 12.7M rows).
    """
    try:
        pa.jemalloc_set_decay_ms(0)
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.default_memory_pool()


def _clean(kept: dict[str, np.ndarray], counts: dict[str, int]) -> None:
    vwap, volume = kept["VWAP"], kept["Volume"]
    counts["vwap_missing"] = int(np.isnan(vwap).sum())
    infinite = np.isinf(vwap)
    counts["vwap_inf"] = int(infinite.sum())
    vwap[infinite] = np.nan
    negative = volume < 0
    counts["volume_negative"] = int(negative.sum())
    volume[negative] = np.nan
    counts["target_missing"] = int(np.isnan(kept["Target"]).sum())
    counts["rows"] = len(kept["timestamp"])


def _date(timestamp: int) -> str:
    return str(pd.Timestamp(timestamp, unit="s")) if timestamp else "none"
