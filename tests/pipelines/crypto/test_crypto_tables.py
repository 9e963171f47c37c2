"""crypto tables: Arrow IPC files written whole or not at all, in small writes, opened memory-mapped,
bad files named."""

import os

import pyarrow as pa
import pytest

from components.common.errors import InputError
from pipelines.crypto import tables
from pipelines.crypto.tables import PIECE_BYTES, open_table, write_table

SCHEMA = pa.schema([("timestamp", pa.int64()), ("Close", pa.float64())])


def batches(*sizes):
    start = 0
    for size in sizes:
        yield pa.record_batch([pa.array(range(start, start + size)), pa.array([1.5] * size)], schema=SCHEMA)
        start += size


def test_batches_are_written_in_order_and_read_back(tmp_path):
    write_table(tmp_path / "t.arrow", SCHEMA, batches(3, 2))
    table = open_table(tmp_path / "t.arrow")
    assert table.column("timestamp").to_pylist() == [0, 1, 2, 3, 4]
    assert [len(chunk) for chunk in table.column("Close").chunks] == [3, 2]  # a batch stays a block
    assert open_table(tmp_path / "t.arrow", ["Close"]).column_names == ["Close"]


def test_a_column_larger_than_a_piece_goes_out_in_pieces_and_reads_back_whole(tmp_path, monkeypatch):
    sizes, real_write = [], os.write

    def recorded_write(descriptor, data):
        sizes.append(len(data))
        return real_write(descriptor, data[:len(data) - 1] if len(data) > 1 else data)  # a short write too

    monkeypatch.setattr(tables.os, "write", recorded_write)
    rows = 3 * PIECE_BYTES // 8 + 5  # each column's buffer spans four pieces
    write_table(tmp_path / "t.arrow", SCHEMA, batches(rows))
    assert max(sizes) == PIECE_BYTES
    assert open_table(tmp_path / "t.arrow").column("timestamp").to_pylist() == list(range(rows))


def test_a_failure_while_writing_leaves_no_file(tmp_path):
    def failing():
        yield from batches(3)
        raise InputError("bad block")

    with pytest.raises(InputError, match="bad block"):
        write_table(tmp_path / "t.arrow", SCHEMA, failing())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, columns, message", [
    (None, None, "t.arrow not found in"),
    (b"timestamp,Close\n1,2\n", None, "t.arrow in .* is not an Arrow IPC file"),
    ("table", ["Open"], r"t.arrow in .* lacks column\(s\) Open"),
], ids=["missing", "not-arrow", "missing-column"])
def test_a_bad_table_is_named(tmp_path, content, columns, message):
    if content == "table":
        write_table(tmp_path / "t.arrow", SCHEMA, batches(2))
    elif content is not None:
        (tmp_path / "t.arrow").write_bytes(content)
    with pytest.raises(InputError, match=message):
        open_table(tmp_path / "t.arrow", columns)
