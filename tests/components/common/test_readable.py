"""Numbers as a person reads them: in reports, and in the run summary and index.html."""

import pytest

from components.common.errors import InputError
from components.common.readable import number, parse_timestamp, readable, readable_output, timestamp


@pytest.mark.parametrize("value, text", [
    (594400.0, "594,400"), (20.0, "20"), (42, "42"), (96990.0, "96,990"), (0.0, "0"), (True, "True"),
    (0.53125, "0.5312"), (0.0060031, "0.006003"), (1234.56, "1,234.6"), (float("nan"), "nan"),
    (1.048e-05, "0.00001048"), (0.92, "0.9200"), (12.345678, "12.35"), (-0.0268, "-0.02680"), (2e-9, "2e-09"),
])
def test_whole_numbers_as_integers_and_others_with_a_few_significant_digits(value, text):
    assert number(value) == text


def test_timestamps_as_dates_and_back():
    assert timestamp(1620258720) == "2021-05-05 23:52 UTC"
    assert timestamp(1620258720.0) == "2021-05-05 23:52 UTC"
    assert parse_timestamp("2021-05-05 23:52 UTC", "test_start") == 1620258720
    with pytest.raises(InputError, match="test_start '1620258720' is not a time like"):
        parse_timestamp("1620258720", "test_start")


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
