"""Everything the gate compares, on the challenger's rows: the serving versions scored on them and the
paired bootstrap intervals of every difference (the work of the `gate_model` step, as plain functions).
"""

from dataclasses import dataclass

from components.release.bootstrap import PairedBootstrap, paired_bootstrap
from components.release.champion import ServedVersion, score_version
from components.release.gate import Served
from components.release.rows import EvaluationRows
from components.store.base import ModelStore
from components.store.serving_labels import ServingLabels

CHALLENGER, BASELINE, CHAMPION, CANARY = "challenger", "baseline", "champion", "canary"


@dataclass(frozen=True)
class Comparison:
    """The serving versions as scored, and the paired intervals of (challenger - each other model)."""

    bootstrap: PairedBootstrap
    versions: dict[str, ServedVersion]  # CHAMPION (stable) and CANARY, when serving

    @property
    def challenger(self) -> float:
        return self.bootstrap.scores[CHALLENGER]

    def served(self, name: str, metric: str) -> Served | None:
        """The serving version `name` (CHAMPION or CANARY) as `decide` takes it; None when none serves."""
        version = self.versions.get(name)
        if version is None:
            return None
        return Served(version.version, self.bootstrap.scores.get(name), self.bootstrap.differences.get(name),
                      version.incomparable, version.history(metric), version.content_hash)

    def metrics(self) -> dict[str, float]:
        """Scores on the rows, and every difference's point and bounds, named for MLflow."""
        named = {f"gate.{name}.score": value for name, value in self.bootstrap.scores.items()}
        for name, interval in self.bootstrap.differences.items():
            named |= {f"gate.challenger_minus_{name}.point": interval.point,
                      f"gate.challenger_minus_{name}.low": interval.low,
                      f"gate.challenger_minus_{name}.high": interval.high}
        return named


def compare_on_rows(rows: EvaluationRows, store: ModelStore, model_name: str, labels: ServingLabels,
                    confidence: float) -> Comparison:
    """Score the `stable` and `canary` versions of `labels` on `rows`, then bootstrap every difference
    from the challenger on the same resampled blocks."""
    serving = {CHAMPION: labels.stable, CANARY: labels.canary}
    versions = {name: score_version(store, model_name, "stable" if name == CHAMPION else "canary", number, rows)
                for name, number in serving.items() if number is not None}
    predictions = {CHALLENGER: rows.challenger, BASELINE: rows.baseline}
    predictions |= {name: version.predictions for name, version in versions.items()
                    if version.predictions is not None}
    bootstrap = paired_bootstrap(rows.info.metric, rows.block, rows.target, rows.weight, predictions, CHALLENGER,
                                 rows.info.block_length, confidence)
    return Comparison(bootstrap, versions)
