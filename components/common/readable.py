"""Numbers as a person reads them, in the steps' logs and reports.

KFP hands every number back as a float (a protobuf Struct has no integers), so
a count logged as 594400 comes back as 594400.0: whole numbers are written as
integers, with thousands separators; others with four significant digits,
written out (0.00001048, not 1.048e-05) down to a millionth; Unix timestamps as
UTC dates.
"""

import math
from datetime import datetime, timezone

from components.common.errors import InputError

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M UTC"


def number(value: float | int) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    if abs(value) < 1e-6:
        return f"{value:.4g}"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))  # four significant digits
    return f"{value:.{decimals}f}"


def timestamp(seconds: float | int) -> str:
    """A Unix timestamp (seconds) as `YYYY-MM-DD HH:MM UTC`."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str, what: str) -> int:
    """The Unix timestamp of a `timestamp` string (to the minute)."""
    try:
        return int(datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc).timestamp())
    except (ValueError, TypeError) as error:
        raise InputError(f"{what} '{text}' is not a time like 2021-05-06 12:34 UTC") from error
