"""Numbers as a person reads them: in the steps' logs and reports (`number`), and in the
run summary, the terminal and index.html (`readable`, `readable_output`).

KFP hands every number back as a float (a protobuf Struct has no integers), so
a count logged as 594400 comes back as 594400.0 and a test period's start as
1620258720.0: shown as they are, `rows 5.944e+05` and `test_start 1.62e+09` say
little. Both writers show whole numbers as integers, with thousands separators,
and Unix times as UTC dates. They differ on the rest, on purpose:

- `number` (a report's table column): four significant digits written out, with
  trailing zeros so a column lines up (0.9200, 0.00001048), down to a millionth;
- `readable` (a metric by its name, in a summary line): at most four significant
  digits, no trailing zeros (0.92), and a Unix time only where the name says so.
"""

import math
import re
from datetime import datetime, timezone

from components.common.errors import InputError

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M UTC"
# Metric names that hold a point in time as Unix seconds (`test_start`, `train_end_time`).
TIME_NAME = re.compile(r"(?:^|_)(?:start|end|date|time|timestamp)(?:$|_)")
UNIX_TIMES = (1e8, 1e10)  # 1973 .. 2286: a number outside is not taken for a time
# Unix times of this century's first decades (2001-09 .. 2039): a step's unnamed whole-number
# output in this range is most likely a time (crypto's train step returns its test period's start).
LIKELY_UNIX_TIMES = (1e9, 2.2e9)
SIGNIFICANT_DIGITS = 4


def _whole(value: float | int) -> str:
    return f"{int(value):,}"


def number(value: float | int) -> str:
    """`value` for a report: 594400.0 -> '594,400', 0.92 -> '0.9200', 1.048e-05 -> '0.00001048'."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return _whole(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    if abs(value) < 1e-6:
        return f"{value:.4g}"
    decimals = max(0, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))
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


def readable(value, name: str = "") -> str:
    """`value` for people: 594400.0 -> '594,400', 42.0 -> '42', 0.540838 -> '0.5408',
    1620258720.0 named '*_start' -> '2021-05-05 23:52 UTC'; anything else as str()."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return str(value)
    if TIME_NAME.search(name) and UNIX_TIMES[0] <= value < UNIX_TIMES[1]:
        moment = datetime.fromtimestamp(value, timezone.utc)
        return f"{moment:%Y-%m-%d}" if moment.time() == datetime.min.time() else timestamp(value)
    if float(value).is_integer():
        return _whole(value)
    if abs(value) >= 10 ** SIGNIFICANT_DIGITS:
        return f"{value:,.0f}"
    return f"{value:.{SIGNIFICANT_DIGITS}g}"


def readable_output(value) -> str:
    """A step's single, unnamed output: as `readable`, and a whole number that reads as a recent
    Unix time also as its date, `1620258720 (2021-05-05 23:52 UTC as a Unix time)`."""
    if (isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
            and LIKELY_UNIX_TIMES[0] <= value < LIKELY_UNIX_TIMES[1]):
        return f"{int(value)} ({readable(value, 'time')} as a Unix time)"
    return readable(value)
