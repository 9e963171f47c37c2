import json

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from components.common.errors import InputError
from components.validation import statistics as st


def test_a_numeric_column_has_every_figure_and_decile_edges():
    values = np.arange(1000, dtype=np.float64)
    values[:100] = np.nan
    stats = st.profile({"x": values}).statistics
    x = stats["features"]["x"]
    assert (x["count"], x["missing"], x["min"], x["max"]) == (900, 100, 100.0, 999.0)
    assert x["mean"] == pytest.approx(549.5) and x["std"] == pytest.approx(np.std(np.arange(100, 1000)))
    assert x["quantiles"]["0.5"] == pytest.approx(549.5)
    edges, counts = x["histogram"]["edges"], x["histogram"]["counts"]
    assert len(edges) == 11 and edges[0] == 100 and edges[-1] == 999
    assert sum(counts) == 900 and max(counts) - min(counts) <= 1
    assert stats["format_version"] == st.FORMAT_VERSION and json.loads(json.dumps(stats)) == stats


def test_categories_have_their_domain_and_a_constant_column_one_bin():
    stats = st.profile({"asset": np.array([1, 1, 3, 3, 3]), "flag": np.array([True, False, True, True, True]),
                        "c": np.full(5, 2.0)}, categorical={"asset"}).statistics["features"]
    assert stats["asset"]["domain"] == {"1": 2, "3": 3} and stats["flag"]["domain"] == {"False": 1, "True": 4}
    assert stats["c"]["histogram"] == {"edges": [2.0, 2.0], "counts": [5], "sampled": 5}


def test_large_columns_are_sampled_for_quantiles_only(monkeypatch):
    monkeypatch.setattr(st, "SAMPLE_ROWS", 1000)
    values = np.random.default_rng(1).normal(size=50_000)
    stats = st.profile({"x": values}).statistics["features"]["x"]
    assert stats["count"] == 50_000 and stats["max"] == values.max()
    assert stats["histogram"]["sampled"] == 1000 and abs(stats["quantiles"]["0.5"]) < 0.15


def test_binning_puts_values_beyond_the_edges_in_the_outer_bins():
    assert st.bin_counts(np.array([-5.0, 0.5, 1.5, 2.5, 99.0]), [0.0, 1.0, 2.0, 3.0]).tolist() == [2, 1, 2]


def test_quantiles_and_counts_of_sorted_values_are_numpys_and_bin_counts():
    values = np.sort(np.random.default_rng(3).integers(0, 20, 1001)).astype(np.int16)
    assert st.sorted_quantiles(values, st.QUANTILES) == pytest.approx(np.quantile(values, st.QUANTILES))
    edges = [0.0, 2.5, 5.0, 5.0 + 1e-9, 19.0]  # an edge on a value, and fractional edges of an int column
    assert st.sorted_bin_counts(values, edges).tolist() == st.bin_counts(values, edges).tolist()


def test_tables_and_images_are_read_whatever_their_file_name(tmp_path):
    table = pa.table({"a": [1.0, None, 3.0], "Asset_ID": [1, 2, 1]})
    pq.write_table(table, tmp_path / "train_data")
    with pa.OSFile(str(tmp_path / "features.arrow"), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    for name in ("train_data", "features.arrow"):
        columns = st.read_columns(tmp_path / name)
        assert np.isnan(columns["a"][1]) and columns["Asset_ID"].tolist() == [1, 2, 1]
    np.savez(tmp_path / "splits", train_images=np.ones((4, 2, 2), np.float32), train_labels=np.array([0, 1, 1, 2]))
    images = st.read_columns(tmp_path / "splits.npz")
    stats = st.profile(images).statistics
    assert stats["images"] == 4 and stats["features"]["label"]["domain"] == {"0": 1, "1": 2, "2": 1}
    assert stats["features"]["pixel"]["count"] == 16 and stats["features"]["pixel"]["mean"] == 1.0


def test_unreadable_data_and_foreign_documents_are_input_errors(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="x.csv: neither Parquet nor an Arrow IPC file"):
        st.read_columns(tmp_path / "x.csv")
    with pytest.raises(InputError, match="not found"):
        st.read_columns(tmp_path / "nope")
    with pytest.raises(InputError, match="version 3's statistics.json: not a kfp-ml-statistics document"):
        st.check_statistics({"format": st.FORMAT, "format_version": 99}, "version 3's statistics.json")
