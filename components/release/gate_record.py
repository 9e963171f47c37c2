"""The gate step's work as plain functions: compare on the rows, decide, and what is recorded of it
(the verdict's metadata and Markdown, the report's gate section)."""

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from components.release.comparison import BASELINE, CANARY, CHALLENGER, CHAMPION, Comparison, compare_on_rows
from components.release.gate import Drift, Rules, Verdict, decide, verdict_markdown
from components.release.rows import EvaluationRows
from components.store.base import ModelStore
from components.store.serving_labels import ServingLabels


@dataclass(frozen=True)
class GateSettings:
    gate_metric: str
    baseline_metric: str
    confidence: float
    rules: Rules


@dataclass(frozen=True)
class Decided:
    """A verdict with what it was decided on."""

    verdict: Verdict
    comparison: Comparison
    settings: GateSettings
    content_hash: str
    features: list[str]

    def metadata(self, evaluate_metrics: Mapping, run_name: str) -> dict:
        """The verdict artifact's metadata (JSON values only): the decision, every comparison and the
        evaluation the deploy step stores with the version (with the rows' `features`, which the next
        gate checks against its rows)."""
        scores = {k: v for k, v in evaluate_metrics.items() if isinstance(v, (int, float))}
        intervals = {name: asdict(interval) for name, interval in self.comparison.bootstrap.differences.items()}
        evaluation = {"metrics": scores, "gate_metric": self.settings.gate_metric,
                      "test_set": str(evaluate_metrics.get("test_set", "")), "run": run_name,
                      "content_hash": self.content_hash, "features": self.features,
                      "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        verdict = self.verdict
        return {"decision": verdict.decision, "reason": verdict.reason, "comparisons": verdict.comparisons,
                "first_deploy": verdict.first_deploy, "champion_version": verdict.champion_version,
                "scores_on_rows": self.comparison.bootstrap.scores, "intervals": intervals,
                "resamples": self.comparison.bootstrap.resamples,
                "block_length": self.comparison.bootstrap.block_length, "evaluation": evaluation}

    def report_html(self) -> str:
        """The report's gate section: the verdict, the forest plot of the intervals, every model's score."""
        from components.common import reports

        metric, bootstrap = self.settings.gate_metric, self.comparison.bootstrap
        names = {CHAMPION: "champion (stable)", CANARY: "canary",
                 BASELINE: f"naive baseline ({self.settings.baseline_metric})"}
        versions = {name: f", version {v.version}" for name, v in self.comparison.versions.items()}
        intervals = [(f"challenger - {names[name]}{versions.get(name, '')}", i.point, i.low, i.high)
                     for name, i in bootstrap.differences.items()]
        table = [["challenger", "this run", bootstrap.scores[CHALLENGER], ""],
                 [names[BASELINE], "", bootstrap.scores[BASELINE], ""]]
        for name, version in self.comparison.versions.items():
            score = bootstrap.scores.get(name, f"not scored: {version.incomparable}")
            table.append([names[name], version.version, score, version.history(metric)])
        details = reports.intervals_html(metric, self.settings.confidence, self.settings.rules.tolerance, intervals,
                                         table) if intervals else ""
        return reports.verdict_html(self.verdict.decision, self.verdict.reason, self.verdict.comparisons, details)


def judge(rows: EvaluationRows, store: ModelStore, model_name: str, labels: ServingLabels, settings: GateSettings,
          content_hash: str, drift_metadata: Mapping) -> Decided:
    """Score the serving versions on `rows`, bootstrap the differences and decide."""
    comparison = compare_on_rows(rows, store, model_name, labels, settings.confidence)
    metric = settings.gate_metric
    verdict = decide(metric, comparison.challenger, settings.rules, settings.baseline_metric,
                     comparison.bootstrap.differences[BASELINE], comparison.served(CHAMPION, metric),
                     comparison.served(CANARY, metric), content_hash, Drift.from_metadata(drift_metadata), len(rows))
    return Decided(verdict, comparison, settings, content_hash, list(rows.info.features))


def content_hash_of(metadata: Mapping, model: Path) -> str:
    """The hash the train step recorded (it has TensorFlow loaded already); a model from elsewhere is hashed."""
    from components.store.base import content_hash

    return metadata.get("content_hash") or content_hash(model)


def write_verdict(path: str, decided: Decided, model_name: str) -> None:
    from components.common.storage import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(verdict_markdown(decided.verdict, decided.settings.gate_metric, model_name),
                             encoding="utf-8")
