"""train.csv and asset_details.csv to typed Arrow tables, with the dirt counted.

polars parses the CSV on every core, converting only the columns a later step
uses: timestamp, Asset_ID, the four prices and Target. Count, Volume and VWAP
are not converted, because no feature uses them (the source's feature step
dropped Volume unused too). Their long decimals were 0.7 s of the 3.1 s that
parsing all ten columns took on 12.7M rows, and 150 MB of memory. polars
parses the same columns 1.3 times faster than Arrow's multi-threaded reader
(1.9 s against 2.5 s). To build a feature on one of them, add it to
`LOADED_TYPES` and clean it in `_cleaned`.

The rows keep the file's order. Grouping them by asset is left to the feature
step, which reads each asset's rows once anyway; doing it here would move every
column through memory once more.

Types: prices float64 — a one-minute return is about 1e-3, and float32's 7
digits would leave only 3-4 of them in it — Target float32, Asset_ID int8,
timestamp int64.

Dirty values, each counted in the returned summary:
- a row whose Open/High/Low/Close is missing or not positive is dropped (no
  indicator is defined on it, and TA-Lib would carry a NaN forward);
- a missing Target is kept as NaN: the row still feeds the indicators of the
  rows after it, and training skips it (the source filled it with 0 and
  trained on those zeros).
"""

import datetime
import math
from pathlib import Path

import polars as pl

from components.crypto.definitions import (
    ASSET_COLUMNS,
    ASSETS_CSV,
    ASSETS_TABLE,
    TRAIN_CSV,
    TRAIN_TABLE,
    to_timestamp,
)
from components.errors import InputError
from components.storage import atomic_path

PRICE_COLUMNS = ("Open", "High", "Low", "Close")
LOADED_TYPES = {"timestamp": pl.Int64, "Asset_ID": pl.Int8, "Open": pl.Float64, "High": pl.Float64,
                "Low": pl.Float64, "Close": pl.Float64, "Target": pl.Float32}
# Record batches of this many rows: few enough for the feature step to gather an asset's rows
# with little overhead per batch, small enough to be written without a second copy of the table.
BATCH_ROWS = 1 << 20


def load(raw_dir: Path, destination: Path, start_date: str = "2020-01-01") -> dict[str, int]:
    """Write `destination`/train.arrow and assets.arrow; return the row and dirt counts."""
    start = to_timestamp(start_date, "start_date")
    assets = read_asset_details(raw_dir / ASSETS_CSV)
    train = _read_train(raw_dir / TRAIN_CSV)
    _check_keys(train, set(assets["Asset_ID"].to_list()))
    kept, counts = _cleaned(train, start)
    del train  # only the kept rows are needed from here on
    last_timestamp = counts.pop("last_timestamp")
    if counts["rows"] == 0:
        raise InputError(f"{TRAIN_CSV} has no usable rows from start_date {start_date} on "
                         f"({counts['rows_before_start']:,} rows before it, "
                         f"{counts['rows_bad_price']:,} without a usable price; "
                         f"its last row is at {_date(last_timestamp)})")
    with atomic_path(destination) as staging:
        staging.mkdir()
        _write(kept, staging / TRAIN_TABLE, BATCH_ROWS)
        _write(assets, staging / ASSETS_TABLE)
    print(f"loaded {counts['rows']:,} rows from {start_date} on; dirt: "
          + ", ".join(f"{k}={v:,}" for k, v in counts.items() if k != "rows"),
          flush=True)
    return counts


def read_asset_details(path: Path) -> pl.DataFrame:
    """The asset table sorted by Asset_ID; every field read as text and converted here, so a bad
    value names its column."""
    if not path.is_file():
        raise InputError(f"{path.name} not found in {path.parent}")
    try:
        table = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.PolarsError as error:
        raise InputError(f"{path.name}: {_first_line(error)}") from error
    missing = [c for c in ASSET_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path.name} lacks column(s) {', '.join(missing)}")
    asset_ids = _numbers(table, "Asset_ID", path)
    fractional = [text for text, number in zip(table["Asset_ID"], asset_ids, strict=True) if number != int(number)]
    if fractional:
        raise InputError(f"{path.name}: column Asset_ID holds '{fractional[0]}', not a whole number")
    assets = pl.DataFrame({"Asset_ID": [int(i) for i in asset_ids], "Weight": _numbers(table, "Weight", path),
                           "Asset_Name": table["Asset_Name"]}).sort("Asset_ID")
    if assets["Asset_ID"].is_duplicated().any() or not (assets["Weight"] > 0).all():
        raise InputError(f"{path.name}: Asset_IDs must be unique and weights positive")
    if not assets["Asset_ID"].is_between(0, 127).all():  # stored as int8
        raise InputError(f"{path.name}: Asset_ID must lie in 0..127")
    return assets.cast({"Asset_ID": pl.Int8, "Weight": pl.Float64})


def _numbers(table: pl.DataFrame, column: str, path: Path) -> list[float]:
    numbers = []
    for text in table[column]:
        text = text or ""  # an empty field reads as missing
        try:
            number = float(text.strip())
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise InputError(f"{path.name}: column {column} holds '{text}', not a number")
        numbers.append(number)
    return numbers


def _read_train(train_csv: Path) -> pl.DataFrame:
    """The columns of train.csv that later steps use, parsed on every core."""
    if not train_csv.is_file():
        raise InputError(f"{train_csv.name} not found in {train_csv.parent}")
    with open(train_csv, encoding="utf-8", errors="replace") as f:
        header = [name.strip().strip('"') for name in f.readline().split(",")]
    missing = [c for c in LOADED_TYPES if c not in header]
    if missing:
        raise InputError(f"{train_csv.name} lacks column(s) {', '.join(missing)}")
    try:
        return pl.read_csv(train_csv, columns=list(LOADED_TYPES), schema_overrides=LOADED_TYPES)
    except pl.exceptions.PolarsError as error:  # e.g. a value that does not parse as its column's type
        raise InputError(f"{TRAIN_CSV}: {_first_line(error)}") from error


def _first_line(error: Exception) -> str:
    """polars' own first line names the value and its column; the rest is advice about inference."""
    return str(error).strip().splitlines()[0]


def _check_keys(train: pl.DataFrame, known_ids: set[int]) -> None:
    for key in ("timestamp", "Asset_ID"):
        if train[key].null_count():
            raise InputError(f"{TRAIN_CSV} has rows without {key}")
    unknown = set(train["Asset_ID"].unique().to_list()) - known_ids
    if unknown:
        raise InputError(f"{TRAIN_CSV} has Asset_ID(s) {sorted(unknown)} that {ASSETS_CSV} does not list")


def _cleaned(train: pl.DataFrame, start: int) -> tuple[pl.DataFrame, dict[str, int]]:
    """The rows from `start` on with a usable price, a missing Target as NaN; and the counts."""
    after_start = pl.col("timestamp") >= start
    usable = pl.all_horizontal((pl.col(c) > 0) & (pl.col(c) < math.inf) for c in PRICE_COLUMNS).fill_null(False)
    target_missing = pl.col("Target").is_null() | pl.col("Target").is_nan()
    counts = train.select(
        rows=(after_start & usable).sum(), rows_before_start=(~after_start).sum(),
        rows_bad_price=(after_start & ~usable).sum(),
        target_missing=(after_start & usable & target_missing).sum(),
        last_timestamp=pl.col("timestamp").max()).row(0, named=True)
    kept = train.filter(after_start & usable).with_columns(pl.col("Target").fill_null(math.nan))
    return kept, {name: int(value or 0) for name, value in counts.items()}


def _write(frame: pl.DataFrame, path: Path, batch_rows: int | None = None) -> None:
    """An Arrow IPC file in the oldest Arrow types (strings as large_string), so any reader opens it."""
    frame.write_ipc(path, compression="uncompressed", compat_level=pl.CompatLevel.oldest(),
                    record_batch_size=batch_rows)


def _date(timestamp: int) -> str:
    if not timestamp:
        return "none"
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
