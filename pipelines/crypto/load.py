"""train.csv and asset_details.csv to typed Arrow tables, with the dirt counted.

One polars query reads it: the CSV is parsed on every core and each block is
cleaned, counted and written to the table while the next ones are parsed,
with only the finished bytes passing through Python (the file's write); the
step holds a few blocks at a time, never the table. It converts only the
columns a later step uses: timestamp, Asset_ID, the four prices and Target.
Count, Volume and VWAP are not converted, because no feature uses them (the
source's feature step dropped Volume unused too): their long decimals were
0.7 s of the 3.1 s that parsing all ten columns took on 12.7M rows. To build
a feature on one of them, add it to `LOADED_COLUMNS`
(pipelines/crypto/definitions.py) with its type in `TYPES`, and decide how to
clean it in `_write_usable_rows`.

Measured on 12.7M rows, 2 cores: Arrow's multi-threaded reader parsed the same
columns in 2.5 s, polars in 1.9 s, and streaming them to the file took 2.1 s,
where parsing whole and then writing took 2.7 s and 0.5 GB more memory.

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

from components.common.errors import InputError
from components.common.storage import atomic_path
from pipelines.crypto.definitions import (
    ASSET_COLUMNS,
    ASSETS_CSV,
    ASSETS_TABLE,
    LOADED_COLUMNS,
    TRAIN_CSV,
    TRAIN_TABLE,
    to_timestamp,
)
from pipelines.crypto.tables import write_table

PRICE_COLUMNS = ("Open", "High", "Low", "Close")
TYPES = {"timestamp": pl.Int64, "Asset_ID": pl.Int8, "Open": pl.Float64, "High": pl.Float64,
         "Low": pl.Float64, "Close": pl.Float64, "Target": pl.Float32}
LOADED_TYPES = {name: TYPES[name] for name in LOADED_COLUMNS}
KEPT, BEFORE_START, BAD_PRICE = 0, 1, 2  # each row's fate
COUNTS = ("rows", "rows_before_start", "rows_bad_price", "target_missing")  # what load() returns


def load(raw_dir: Path, destination: Path, start_date: str = "2020-01-01") -> dict[str, int]:
    """Write `destination`/train.arrow and assets.arrow; return the row and dirt counts."""
    start = to_timestamp(start_date, "start_date")
    assets = read_asset_details(raw_dir / ASSETS_CSV)
    train_csv = raw_dir / TRAIN_CSV
    _check_header(train_csv)
    with atomic_path(destination) as staging:
        staging.mkdir()
        tally = _write_usable_rows(train_csv, staging / TRAIN_TABLE, start, assets["Asset_ID"].to_list())
        if tally["rows"] == 0:
            raise InputError(f"{TRAIN_CSV} has no usable rows from start_date {start_date} on "
                             f"({tally['rows_before_start']:,} rows before it, "
                             f"{tally['rows_bad_price']:,} without a usable price; "
                             f"{_last_row(tally['last_timestamp'])})")
        # The oldest Arrow types (strings as large_string, not polars' string_view): any reader opens them.
        table = assets.to_arrow(compat_level=pl.CompatLevel.oldest())
        write_table(staging / ASSETS_TABLE, table.schema, table.to_batches())
    counts = {name: tally[name] for name in COUNTS}
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


def _check_header(train_csv: Path) -> None:
    if not train_csv.is_file():
        raise InputError(f"{train_csv.name} not found in {train_csv.parent}")
    with open(train_csv, encoding="utf-8", errors="replace") as f:
        header = [name.strip().strip('"') for name in f.readline().split(",")]
    missing = [c for c in LOADED_TYPES if c not in header]
    if missing:
        raise InputError(f"{train_csv.name} lacks column(s) {', '.join(missing)}")


def _first_line(error: Exception) -> str:
    """polars' own first line names the value and its column; the rest is advice about inference."""
    return str(error).strip().splitlines()[0]


def _write_usable_rows(train_csv: Path, table: Path, start: int, known_ids: list[int]) -> dict[str, int]:
    """Write the usable rows from `start` on to `table`, a missing Target as NaN, in the file's
    order; return what the CSV held (COUNTS, the ids' missing and unknown values, the last timestamp).

    One polars query with two ends, the table and the counts: the CSV is parsed once, on every core,
    and written as it is parsed, with only the encoded bytes passing through Python (the file's write).
    """
    usable = pl.all_horizontal((pl.col(c) > 0) & (pl.col(c) < math.inf) for c in PRICE_COLUMNS).fill_null(False)
    fate = (pl.when(pl.col("timestamp") < start).then(BEFORE_START)
            .when(~usable).then(BAD_PRICE).otherwise(KEPT).cast(pl.Int8).alias("fate"))
    rows = (pl.scan_csv(train_csv, schema_overrides=LOADED_TYPES)
            .select(*LOADED_TYPES, fate).with_columns(pl.col("Target").fill_null(math.nan)))
    kept = pl.col("fate") == KEPT
    tally = rows.select(rows=kept.sum(), rows_before_start=(pl.col("fate") == BEFORE_START).sum(),
                        rows_bad_price=(pl.col("fate") == BAD_PRICE).sum(),
                        target_missing=(kept & pl.col("Target").is_nan()).sum(),
                        missing_timestamp=pl.col("timestamp").null_count(),
                        missing_Asset_ID=pl.col("Asset_ID").null_count(),
                        last_timestamp=pl.col("timestamp").max().fill_null(0),
                        unknown_ids=pl.col("Asset_ID").filter(~pl.col("Asset_ID").is_in(known_ids))
                        .unique().sort().implode())
    # Into a file opened here, once: given the path, polars opens it twice, the second time truncating
    # the file it has just created, and ext4 then writes a truncated file back to disk when it is
    # closed (its auto_da_alloc), 0.2 s of the step on the bench's 0.55 GB, in the step's own time.
    with open(table, "xb") as sink:
        # In the file's order, which the feature step relies on to keep each asset's rows in time
        # order without sorting them. Uncompressed, so that the next step memory-maps it.
        written = rows.filter(kept).drop("fate").sink_ipc(sink, compression="uncompressed", maintain_order=True,
                                                          lazy=True)
        try:
            _, counted = pl.collect_all([written, tally])
        except pl.exceptions.PolarsError as error:  # e.g. a value that does not parse as its column's type
            raise InputError(f"{TRAIN_CSV}: {_first_line(error)}") from error
    found = counted.row(0, named=True)
    for key in ("timestamp", "Asset_ID"):
        if found[f"missing_{key}"]:
            raise InputError(f"{TRAIN_CSV} has rows without {key}")
    if unknown := [i for i in found["unknown_ids"] if i is not None]:
        raise InputError(f"{TRAIN_CSV} has Asset_ID(s) {unknown} that {ASSETS_CSV} does not list")
    return found


def _last_row(timestamp: int) -> str:
    if not timestamp:
        return "it has no rows"
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return f"its last row is at {moment:%Y-%m-%d %H:%M:%S}"
