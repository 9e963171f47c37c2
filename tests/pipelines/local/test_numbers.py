"""Numbers for people in the run summary and index.html."""

import pytest

from pipelines.local.numbers import readable, readable_output


@pytest.mark.parametrize(("value", "name", "shown"), [
    (594400.0, "rows", "594,400"),
    (96990.0, "test_rows", "96,990"),
    (20.0, "epochs", "20"),
    (42.0, "seed", "42"),
    (1620258720.0, "test_start", "2021-05-05 23:52 UTC"),
    (1609459200.0, "train_end", "2021-01-01"),
    (1620258720.0, "examples", "1,620,258,720"),  # a count, not a time: its name says so
    (0.5408388520971302, "accuracy", "0.5408"),
    (0.006003, "rmse", "0.006003"),
    (123456.78, "loss", "123,457"),
    (True, "flag", "True"),
    (float("nan"), "x", "nan"),
])
def test_readable(value, name, shown):
    assert readable(value, name) == shown


def test_an_unnamed_output_that_reads_as_a_time_also_says_its_date():
    assert readable_output(1620258720.0) == "1620258720 (2021-05-05 23:52 UTC as a Unix time)"
    assert readable_output(96990.0) == "96,990" and readable_output(0.896) == "0.896"
