"""crypto load: CSV to typed Parquet, the start-date filter, dirt counted, bad input refused."""

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.crypto import data
from components.crypto.load import load
from components.errors import InputError


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    data.generate(folder, "2021-04-29", "2021-05-02", seed=5)
    return folder


def copy_raw(raw, folder, edit=None):
    """A copy of the generated CSVs, train.csv changed by `edit` (a DataFrame -> DataFrame function)."""
    folder.mkdir()
    (folder / "asset_details.csv").write_bytes((raw / "asset_details.csv").read_bytes())
    train = pd.read_csv(raw / "train.csv")
    (edit(train) if edit else train).to_csv(folder / "train.csv", index=False)
    return folder


def test_types_are_explicit_and_prices_keep_double_precision(raw, tmp_path):
    load(raw, tmp_path / "loaded", "2020-01-01")
    schema = pq.read_schema(tmp_path / "loaded" / "train.parquet")
    assert {name: str(schema.field(name).type) for name in schema.names} == {
        "timestamp": "int64", "Asset_ID": "int8", "Count": "float", "Open": "double", "High": "double",
        "Low": "double", "Close": "double", "Volume": "float", "VWAP": "float", "Target": "float"}
    assets = pd.read_parquet(tmp_path / "loaded" / "assets.parquet")
    assert assets["Asset_ID"].tolist() == list(range(14))


def test_start_date_filter_and_dirt_counts_match_the_csv(raw, tmp_path):
    csv = pd.read_csv(raw / "train.csv")
    start = pd.Timestamp("2021-04-30", tz="UTC").timestamp()
    kept = csv[csv["timestamp"] >= start]
    counts = load(raw, tmp_path / "loaded", "2021-04-30")
    table = pd.read_parquet(tmp_path / "loaded" / "train.parquet")
    assert counts == {
        "rows": len(kept), "rows_before_start": len(csv) - len(kept), "rows_bad_price": 0,
        "vwap_inf": int(np.isinf(kept["VWAP"]).sum()), "vwap_missing": int(kept["VWAP"].isna().sum()),
        "volume_negative": int((kept["Volume"] < 0).sum()), "target_missing": int(kept["Target"].isna().sum())}
    assert len(table) == len(kept) and table["timestamp"].min() >= start
    assert not np.isinf(table["VWAP"]).any() and not (table["Volume"] < 0).any()
    assert table["VWAP"].isna().sum() == counts["vwap_inf"] + counts["vwap_missing"]
    grouped = kept.sort_values("Asset_ID", kind="stable")  # by asset, each in the file's order
    for column in ("timestamp", "Asset_ID", "Close", "Target"):
        np.testing.assert_array_equal(table[column].to_numpy(), grouped[column].to_numpy(table[column].dtype),
                                      err_msg=column)  # Target as the float32 it is stored in


def test_rows_are_grouped_by_asset_in_time_order_a_row_group_each(raw, tmp_path):
    load(raw, tmp_path / "loaded", "2020-01-01")
    parquet = pq.ParquetFile(tmp_path / "loaded" / "train.parquet")
    groups = [parquet.read_row_group(i, columns=["Asset_ID", "timestamp"]).to_pandas()
              for i in range(parquet.num_row_groups)]
    assert [g["Asset_ID"].unique().tolist() for g in groups] == [[i] for i in range(14)]
    assert all(g["timestamp"].is_monotonic_increasing for g in groups)


def test_rows_without_a_usable_price_are_dropped_and_counted(raw, tmp_path):
    def spoil(train):
        train.loc[5, "Close"] = 0.0
        train.loc[9, "Open"] = np.nan
        return train
    folder = copy_raw(raw, tmp_path / "raw", spoil)
    counts = load(folder, tmp_path / "loaded", "2020-01-01")
    assert counts["rows_bad_price"] == 2
    assert counts["rows"] == len(pd.read_csv(folder / "train.csv")) - 2


@pytest.mark.parametrize("edit, start_date, message", [
    (lambda t: t.drop(columns="VWAP"), "2020-01-01", re.escape("train.csv lacks column(s) VWAP")),
    (lambda t: t.assign(Asset_ID=t["Asset_ID"].replace(13, 14)), "2020-01-01",
     r"train.csv has Asset_ID\(s\) \[14\] that asset_details.csv does not list"),
    (None, "2030-01-01", "train.csv has no usable rows from start_date 2030-01-01 on"),
    (lambda t: t.astype({"Close": str}).assign(Close="abc"), "2020-01-01",
     r"train.csv: .*invalid value 'abc' \(column Close\)"),
], ids=["missing-column", "unknown-asset", "empty-date-range", "not-a-number"])
def test_bad_input_is_a_clear_error_and_writes_nothing(raw, tmp_path, edit, start_date, message):
    folder = copy_raw(raw, tmp_path / "raw", edit)
    with pytest.raises(InputError, match=message):
        load(folder, tmp_path / "loaded", start_date)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_asset_details_without_weights_is_refused(raw, tmp_path):
    folder = copy_raw(raw, tmp_path / "raw")
    pd.read_csv(folder / "asset_details.csv").drop(columns="Weight").to_csv(folder / "asset_details.csv")
    with pytest.raises(InputError, match="asset_details.csv lacks column\\(s\\) Weight"):
        load(folder, tmp_path / "loaded")


@pytest.mark.parametrize("column, value, message", [
    ("Weight", "heavy", "asset_details.csv: column Weight holds 'heavy', not a number"),
    ("Asset_ID", "2.5", "asset_details.csv: column Asset_ID holds '2.5', not a whole number"),
    ("Asset_ID", "", "asset_details.csv: column Asset_ID holds '', not a number"),
], ids=["text-weight", "fractional-id", "empty-id"])
def test_asset_details_values_are_checked_by_column(raw, tmp_path, column, value, message):
    folder = copy_raw(raw, tmp_path / "raw")
    assets = pd.read_csv(folder / "asset_details.csv", dtype=str)
    assets.loc[assets["Asset_ID"] == "2", column] = value
    assets.to_csv(folder / "asset_details.csv", index=False)
    with pytest.raises(InputError, match=re.escape(message)):
        load(folder, tmp_path / "loaded")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_parquet_schema_is_stable_for_an_all_missing_target(raw, tmp_path):
    folder = copy_raw(raw, tmp_path / "raw", lambda t: t.assign(Target=np.nan))
    load(folder, tmp_path / "loaded", "2020-01-01")
    assert pq.read_schema(tmp_path / "loaded" / "train.parquet").field("Target").type == pa.float32()
