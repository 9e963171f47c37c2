"""The schema of a model's training data, and the anomalies of a run's data against it.

A schema (`SCHEMA_FORMAT`, `format_version` 1) lists each column with its type,
its missing rate, for a numeric column its value range widened by
`RANGE_MARGIN` of its width on each side, and for a categorical column its
domain. The first run infers it from its statistics; the deploy step stores it
with the version; later runs are checked against the serving champion's.

What fails a run (`Anomaly.fatal`): a missing or an extra column, a changed
type, a category the champion's data never had or one it had that is now gone,
and a missing rate above the recorded one by more than `MISSING_TOLERANCE`
(absolute: warm-up rows make a rate move a little between data windows).
A value outside the recorded range is reported, never fatal: how far a
distribution moved is drift's question, which the gate answers with a
graded limit (a range check would refuse the first new high of a price series).
"""

from dataclasses import dataclass

from components.validation.statistics import FLOAT, INT

SCHEMA_FORMAT, SCHEMA_VERSION = "kfp-ml-schema", 1
SCHEMA_FILE = "schema.json"
RANGE_MARGIN = 0.1
MISSING_TOLERANCE = 0.05
THEIRS = "the serving model's training data"


@dataclass(frozen=True)
class Anomaly:
    """One way this run's data differs from the schema: the column, what changed, and whether
    it stops the run."""

    column: str
    change: str
    fatal: bool = True

    def __str__(self) -> str:
        return f"{self.column}: {self.change}"


def infer_schema(statistics: dict) -> dict:
    """The schema of the data `statistics` describes."""
    columns = {}
    for name, stats in statistics["features"].items():
        total = stats["count"] + stats["missing"]
        column = {"type": stats["type"], "missing_rate": stats["missing"] / total if total else 0.0}
        if stats.get("categorical"):
            column["domain"] = sorted(stats["domain"])
        elif "min" in stats and stats["type"] in (FLOAT, INT):
            margin = RANGE_MARGIN * (stats["max"] - stats["min"])
            column |= {"min": stats["min"] - margin, "max": stats["max"] + margin}
        columns[name] = column
    return {"format": SCHEMA_FORMAT, "format_version": SCHEMA_VERSION, "columns": columns}


def find_anomalies(schema: dict, statistics: dict,
                   category_names: dict[str, dict[str, str]] | None = None) -> list[Anomaly]:
    """How the data of `statistics` breaks `schema`, fatal anomalies first. `category_names`
    gives, per column, a category's name where one is known (crypto's asset names), for the message."""
    names = category_names or {}
    expected, found = schema["columns"], statistics["features"]
    anomalies = [Anomaly(name, f"missing, {THEIRS} had it") for name in expected if name not in found]
    anomalies += [Anomaly(name, f"a new column, {THEIRS} had none") for name in found if name not in expected]
    for name in (n for n in expected if n in found):
        anomalies += column_anomalies(name, expected[name], found[name], names.get(name, {}))
    return sorted(anomalies, key=lambda anomaly: not anomaly.fatal)


def column_anomalies(name: str, expected: dict, stats: dict, names: dict[str, str]) -> list[Anomaly]:
    if stats["type"] != expected["type"]:
        return [Anomaly(name, f"type {stats['type']}, {THEIRS} had {expected['type']}")]
    anomalies = []
    total = stats["count"] + stats["missing"]
    rate = stats["missing"] / total if total else 0.0
    if rate > expected["missing_rate"] + MISSING_TOLERANCE:
        anomalies.append(Anomaly(name, f"{percent(rate)} missing, {THEIRS} had {percent(expected['missing_rate'])}"))
    if "domain" in expected:
        domain = set(stats.get("domain", {}))
        anomalies += [Anomaly(name, f"{named(value, names)} is missing, {THEIRS} had it")
                      for value in expected["domain"] if value not in domain]
        anomalies += [Anomaly(name, f"{named(value, names)} is new, {THEIRS} never had it")
                      for value in sorted(domain - set(expected["domain"]))]
    elif "min" in expected and "min" in stats and (stats["min"] < expected["min"] or stats["max"] > expected["max"]):
        anomalies.append(Anomaly(name, f"values {stats['min']:.4g}..{stats['max']:.4g} beyond {THEIRS}'s range "
                                       f"{expected['min']:.4g}..{expected['max']:.4g} (with margin)", fatal=False))
    return anomalies


def named(value: str, names: dict[str, str]) -> str:
    return f"{value} ({names[value]})" if value in names else value


def percent(rate: float) -> str:
    return f"{rate:.0%}" if rate == 0 or rate >= 0.01 else f"{rate:.2%}"
