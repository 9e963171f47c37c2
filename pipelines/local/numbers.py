"""Numbers written for people in the run summary, the terminal and index.html.

Steps' metrics travel as floats (KFP's Metrics and metadata hold doubles), so a row
count arrives as 594400.0 and a test period's start as 1620258720.0: shown as they
are, `rows 5.944e+05` and `test_start 1.62e+09` say little. Here whole numbers are
written as integers, Unix times (by their name) as UTC dates, and the rest with a
few significant digits.
"""

import math
import re
from datetime import datetime, timezone

# Metric names that hold a point in time as Unix seconds (`test_start`, `train_end_time`).
TIME_NAME = re.compile(r"(?:^|_)(?:start|end|date|time|timestamp)(?:$|_)")
UNIX_TIMES = (1e8, 1e10)  # 1973 .. 2286: a number outside is not taken for a time
SIGNIFICANT_DIGITS = 4


def readable(value, name: str = "") -> str:
    """`value` for people: 594400.0 -> '594,400', 42.0 -> '42', 0.540838 -> '0.5408',
    1620258720.0 named '*_start' -> '2021-05-05 23:52 UTC'; anything else as str()."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return str(value)
    if TIME_NAME.search(name) and UNIX_TIMES[0] <= value < UNIX_TIMES[1]:
        moment = datetime.fromtimestamp(value, timezone.utc)
        return f"{moment:%Y-%m-%d}" if moment.time() == datetime.min.time() else f"{moment:%Y-%m-%d %H:%M} UTC"
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 10 ** SIGNIFICANT_DIGITS:
        return f"{value:,.0f}"
    return f"{value:.{SIGNIFICANT_DIGITS}g}"


# Unix times of this century's first decades (2001-09 .. 2039): a step's unnamed whole-number
# output in this range is most likely a time (crypto's train step returns its test period's start).
LIKELY_UNIX_TIMES = (1e9, 2.2e9)


def readable_output(value) -> str:
    """A step's single, unnamed output: as `readable`, and a whole number that reads as a recent
    Unix time also as its date, `1620258720 (2021-05-05 23:52 UTC as a Unix time)`."""
    if (isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
            and LIKELY_UNIX_TIMES[0] <= value < LIKELY_UNIX_TIMES[1]):
        return f"{int(value)} ({readable(value, 'time')} as a Unix time)"
    return readable(value)
