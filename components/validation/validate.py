"""One run's validation: statistics, the anomalies against the champion's schema, drift, the report.

`validate` is what the validation step does (`components.release.validation_step`),
without KFP or a model store: the champion's stored files come in as a `Baseline`.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from components.common.errors import InputError
from components.common.storage import atomic_path
from components.validation.drift import ColumnDrift, drift_metadata, drift_scores
from components.validation.report import write_validation_report
from components.validation.schema import SCHEMA_FILE, Anomaly, find_anomalies, infer_schema
from components.validation.statistics import STATISTICS_FILE, check_statistics, profile, read_columns


@dataclass(frozen=True)
class Baseline:
    """What this run is checked against: the serving champion's stored statistics and schema.
    Without them (no champion, or one deployed before versions stored them) `reason` says why."""

    version: int | None
    statistics: dict | None = None
    schema: dict | None = None
    reason: str = ""


@dataclass(frozen=True)
class Validation:
    """A run's validation: its statistics and schema, what broke the baseline's schema, the drift."""

    statistics: dict
    schema: dict
    anomalies: list[Anomaly]
    drifts: list[ColumnDrift]
    baseline: Baseline

    def metadata(self) -> dict:
        """The statistics artifact's metadata: the `drift` entry the gate reads, and the anomalies."""
        reason = "" if self.baseline.statistics else self.baseline.reason
        return {"drift": drift_metadata(self.drifts, self.baseline.version if not reason else None, reason),
                "anomalies": [str(a) for a in self.anomalies],
                "format_version": self.statistics["format_version"], "rows": self.statistics["rows"]}

    def summary(self) -> str:
        """One line: what this run was compared with, and its largest drift."""
        if not self.baseline.statistics:
            return f"drift not computed: {self.baseline.reason}"
        if not self.drifts:
            return f"drift: no column to compare with version {self.baseline.version}'s"
        worst = self.drifts[0]
        return (f"drift against serving version {self.baseline.version}: largest {worst.column} "
                f"PSI {worst.psi:.3f} (Jensen-Shannon {worst.js:.3f}) over {len(self.drifts)} columns")

    def error(self) -> str | None:
        """The one line that stops the run: the first fatal anomaly, and how many more there are."""
        fatal = [a for a in self.anomalies if a.fatal]
        if not fatal:
            return None
        more = f" (and {len(fatal) - 1} more: see the validation report)" if len(fatal) > 1 else ""
        return f"data validation: {fatal[0]}{more}"


def parse_names(text: str) -> frozenset[str]:
    return frozenset(name.strip() for name in text.split(",") if name.strip())


def parse_category_names(text: str) -> dict[str, dict[str, str]]:
    """`category_names` as the step takes it: JSON, a column -> {value: name}; empty for none."""
    try:
        names = json.loads(text) if text.strip() else {}
    except ValueError as error:
        raise InputError(f"category_names is not JSON: {error}") from error
    if not isinstance(names, dict) or not all(isinstance(v, dict) for v in names.values()):
        raise InputError('category_names must map a column to {value: name}, e.g. {"Asset_ID": {"3": "Cardano"}}')
    return {column: {str(k): str(v) for k, v in values.items()} for column, values in names.items()}


def validate(data: Path, baseline: Baseline, categorical: frozenset[str] = frozenset(),
             time_columns: frozenset[str] = frozenset(), category_names: dict[str, dict[str, str]] | None = None,
             source_counts: dict[str, float] | None = None) -> Validation:
    """Profile the data at `data` (with the `source_counts` of values its source lacked:
    `components.validation.statistics.source_statistics`) and check it against `baseline`.
    `time_columns` (timestamps, calendar features) are profiled and checked but never scored
    for drift: they move with every new data window by design."""
    run = profile(read_columns(data), set(categorical), source_counts=source_counts)
    anomalies = find_anomalies(baseline.schema, run.statistics, category_names) if baseline.schema else []
    drifts = drift_scores(run.statistics, run.samples, baseline.statistics, time_columns) \
        if baseline.statistics else []
    # Each version stores the schema of its own training data: what "the serving model's training data
    # had" in an anomaly's message means, also after a deliberate change let through by skip_validation.
    return Validation(run.statistics, infer_schema(run.statistics), anomalies, drifts, baseline)


def write_outputs(validation: Validation, folder: Path, report: Path, skipped: bool) -> None:
    """The statistics artifact's folder (statistics and schema, written whole or not at all) and the report."""
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for name, document in ((STATISTICS_FILE, validation.statistics), (SCHEMA_FILE, validation.schema)):
            (tmp / name).write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
    baseline = validation.baseline
    compared = (f"Compared with serving version {baseline.version}'s training data."
                if baseline.statistics else f"Validated against nothing: {baseline.reason}.")
    write_validation_report(report, validation.anomalies, skipped, validation.drifts, compared, validation.summary())


def read_stored(text: bytes | None, where: str) -> dict | None:
    """A stored JSON document, or None when the file is absent."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise InputError(f"{where} is not valid JSON: {error}") from error


def champion_baseline(stored_file: Callable[[str], bytes | None], stable: int | None) -> Baseline:
    """The serving champion's (version `stable`) statistics and schema, read with `stored_file`
    (a file name -> its bytes in that version, or None); or the reason there are none."""
    if stable is None:
        return Baseline(None, reason="no serving champion yet; this run's schema is inferred from its own data")
    where = f"serving version {stable}"
    statistics = read_stored(stored_file(STATISTICS_FILE), f"{where}'s {STATISTICS_FILE}")
    schema = read_stored(stored_file(SCHEMA_FILE), f"{where}'s {SCHEMA_FILE}")
    if statistics is None or schema is None:
        return Baseline(stable, reason=f"{where} was deployed without statistics and schema (before validation "
                                       "existed): validated against nothing")
    return Baseline(stable, check_statistics(statistics, f"{where}'s {STATISTICS_FILE}"), schema)
