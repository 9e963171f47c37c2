"""crypto load: CSV to a typed Arrow table, the start-date filter, dirt counted, bad input refused."""

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from components.common.errors import InputError
from pipelines.crypto import data
from pipelines.crypto.definitions import ASSETS_TABLE, TRAIN_TABLE
from pipelines.crypto.load import load
from pipelines.crypto.tables import open_table


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


def last_row_set(train, column, text):
    train = train.astype({column: str})
    train.loc[train.index[-1], column] = text
    return train


def test_types_are_explicit_and_prices_keep_double_precision(raw, tmp_path):
    load(raw, tmp_path / "loaded", "2020-01-01")
    schema = open_table(tmp_path / "loaded" / TRAIN_TABLE).schema
    assert {name: str(schema.field(name).type) for name in schema.names} == {
        "timestamp": "int64", "Asset_ID": "int8", "Open": "double", "High": "double",
        "Low": "double", "Close": "double", "Target": "float"}  # Count, Volume, VWAP: no step uses them
    assets = pd.read_feather(tmp_path / "loaded" / ASSETS_TABLE)
    assert assets["Asset_ID"].tolist() == list(range(14))
    assert assets["Weight"].round(4).tolist() == pd.read_csv(raw / "asset_details.csv").sort_values(
        "Asset_ID")["Weight"].round(4).tolist()


def test_start_date_filter_and_dirt_counts_match_the_csv(raw, tmp_path):
    csv = pd.read_csv(raw / "train.csv")
    start = pd.Timestamp("2021-04-30", tz="UTC").timestamp()
    kept = csv[csv["timestamp"] >= start]
    counts = load(raw, tmp_path / "loaded", "2021-04-30")
    table = pd.read_feather(tmp_path / "loaded" / TRAIN_TABLE)
    assert counts == {"rows": len(kept), "rows_before_start": len(csv) - len(kept), "rows_bad_price": 0,
                      "target_missing": int(kept["Target"].isna().sum())}
    assert counts["target_missing"] > 0 and len(table) == len(kept) and table["timestamp"].min() >= start
    for column in ("timestamp", "Asset_ID", "Close", "Target"):  # in the file's order
        np.testing.assert_array_equal(table[column].to_numpy(), kept[column].to_numpy(table[column].dtype),
                                      err_msg=column)  # Target as the float32 it is stored in


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
    (lambda t: t.drop(columns="Close"), "2020-01-01", re.escape("train.csv lacks column(s) Close")),
    (lambda t: t.assign(Asset_ID=t["Asset_ID"].replace(13, 14)), "2020-01-01",
     r"train.csv has Asset_ID\(s\) \[14\] that asset_details.csv does not list"),
    (None, "2030-01-01", "train.csv has no usable rows from start_date 2030-01-01 on"),
    (lambda t: t.astype({"Close": str}).assign(Close="abc"), "2020-01-01",
     re.escape("train.csv: could not parse `abc` as dtype `f64` at column 'Close'")),
    (lambda t: last_row_set(t, "Close", "abc"), "2020-01-01",  # after earlier blocks were written
     re.escape("train.csv: could not parse `abc` as dtype `f64` at column 'Close'")),
    (lambda t: last_row_set(t, "Asset_ID", "200"), "2020-01-01",
     re.escape("train.csv: could not parse `200` as dtype `i8` at column 'Asset_ID'")),
    (lambda t: last_row_set(t, "timestamp", ""), "2020-01-01", "train.csv has rows without timestamp"),
    (lambda t: t.head(0), "2020-01-01", r"train.csv has no usable rows .*; it has no rows\)"),
], ids=["missing-column", "unknown-asset", "empty-date-range", "not-a-number", "last-row-not-a-number",
        "asset-id-out-of-range", "missing-timestamp", "header-only"])
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


def test_the_schema_is_stable_for_an_all_missing_target(raw, tmp_path):
    folder = copy_raw(raw, tmp_path / "raw", lambda t: t.assign(Target=np.nan))
    load(folder, tmp_path / "loaded", "2020-01-01")
    target = open_table(tmp_path / "loaded" / TRAIN_TABLE, ["Target"]).column("Target")
    assert target.type == pa.float32() and target.null_count == 0 and np.isnan(target.to_numpy()).all()
