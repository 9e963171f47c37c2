"""KFP's cron grammar (robfig/cron v1, seconds first) and RFC 3339 times, checked before
anything is sent."""


import datetime as dt
import re

from components.common.errors import InputError

CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
# (name, low, high, names) per field, in KFP's order: seconds come first.
CRON_FIELDS = [
    ("seconds", 0, 59, {}),
    ("minutes", 0, 59, {}),
    ("hours", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {m: i for i, m in enumerate(
        "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}),
    ("day-of-week", 0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
]
GO_DURATION = re.compile(r"^(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
GO_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def validate_cron(expression: str) -> str:
    """Check a KFP cron expression; return it normalised (single spaces).

    KFP parses with robfig/cron v1: `second minute hour day-of-month month
    day-of-week`, `*`/`?`, ranges `a-b`, steps `/n`, lists `a,b`, JAN-DEC and
    SUN-SAT (0-6; 7 is refused), or @yearly/@monthly/@weekly/@daily/@hourly/
    @every <duration>. It also takes 5 fields, reading them as second..month:
    a standard crontab line would then fire every hour, so 5 fields are refused
    here. A run more often than once a minute is refused too.
    """
    text = " ".join(expression.split())
    if not text:
        raise InputError("CRON is empty: give 6 fields, e.g. '0 0 6 * * *' (06:00 every day)")
    if text.startswith("@"):
        return _validate_descriptor(text)
    fields = text.split(" ")
    if len(fields) == 5:
        raise InputError(f"CRON '{text}' has 5 fields but KFP's cron has 6, seconds first "
                         f"(KFP would read it as second minute hour day month): "
                         f"did you mean '0 {text}'?")
    if len(fields) != 6:
        raise InputError(f"CRON '{text}' has {len(fields)} fields: KFP expects 6 "
                         "(second minute hour day-of-month month day-of-week)")
    for field, (label, low, high, names) in zip(fields, CRON_FIELDS, strict=True):
        for part in filter(None, field.split(",")):
            problem = _cron_range_problem(part, low, high, names)
            if problem:
                raise InputError(f"CRON '{text}': {label} field '{field}': {problem}")
    if not fields[0].isdigit():
        raise InputError(f"CRON '{text}': seconds field '{fields[0]}' would start a run "
                         "more than once a minute; give a single second such as 0")
    return text


def _cron_range_problem(part: str, low: int, high: int, names: dict[str, int]) -> str | None:
    range_and_step = part.split("/")
    if len(range_and_step) > 2:
        return f"too many '/' in '{part}'"
    bounds = range_and_step[0].split("-")
    if len(bounds) > 2:
        return f"too many '-' in '{part}'"

    def value(text: str) -> int | None:
        if text.lower() in names:
            return names[text.lower()]
        return int(text) if text.isdigit() else None

    if bounds[0] in ("*", "?"):
        if len(bounds) > 1:
            return f"'{part}' mixes '*' with a range"
        start, end = low, high
    else:
        start = value(bounds[0])
        end = value(bounds[-1])
        if start is None or end is None:
            return f"'{part}' is not a number{' or name' if names else ''}"
        if len(range_and_step) == 2 and len(bounds) == 1:
            end = high  # robfig: "N/step" means N-max/step
    if len(range_and_step) == 2 and (not range_and_step[1].isdigit() or int(range_and_step[1]) == 0):
        return f"step in '{part}' must be a positive integer"
    if start < low or end > high:
        return f"'{part}' is outside {low}-{high}"
    if start > end:
        return f"'{part}' starts after it ends"
    return None


def _validate_descriptor(text: str) -> str:
    if text in CRON_DESCRIPTORS:
        return text
    if text.startswith("@every "):
        duration = text[len("@every "):].strip()
        match = GO_DURATION.match(duration)
        if not match:
            raise InputError(f"CRON '{text}': '{duration}' is not a duration such as 1h30m")
        seconds = sum(float(number) * GO_UNIT_S[unit]
                      for number, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)",
                                                     duration))
        if seconds < 60:
            raise InputError(f"CRON '{text}' would start a run more than once a minute")
        return text
    raise InputError(f"CRON '{text}' is not a known descriptor: use one of "
                     f"{', '.join(sorted(CRON_DESCRIPTORS))} or '@every <duration>'")


def rfc3339(value: str, what: str) -> str:
    """An ISO 8601 time as RFC 3339 UTC; a time without a zone is taken as UTC."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise InputError(f"{what} '{value}' is not an ISO 8601 time such as "
                         "2026-01-31T06:00:00Z") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


