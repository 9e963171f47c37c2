"""Numbers as a person reads them."""

import pytest

from components.common.errors import InputError
from components.common.readable import number, parse_timestamp, timestamp


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
