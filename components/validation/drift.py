"""Drift per column between this run's data and the champion's: PSI and Jensen-Shannon distance.

Both compare two histograms on the same bins: the champion's stored histogram
and this run's values binned on the champion's edges (its deciles, so each bin
held a tenth of the champion's data); a categorical column compares the share of
each category over the union of both domains.

- PSI, the population stability index: sum over bins of (a - e) * ln(a / e),
  with `EPSILON` for an empty bin. Credit risk's usual reading: below 0.1 stable,
  0.1 to 0.25 worth a look, above 0.25 act. Unbounded, so a total shift scores high.
- Jensen-Shannon distance (scipy, base 2): symmetric and bounded in [0, 1], kept
  as a second view; it saturates where PSI keeps growing.

The gate decides on PSI (docs/validation.md says why).
"""

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from components.validation.statistics import bin_counts

EPSILON = 1e-4
MEASURE = "psi"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift: both scores and the two histograms they compare (as shares)."""

    column: str
    psi: float
    js: float
    bins: list[str]  # the bins' labels: an interval or a category
    champion: list[float]
    current: list[float]


def shares(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total else counts


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e, a = np.maximum(expected, EPSILON), np.maximum(actual, EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected: np.ndarray, actual: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(expected, actual, base=2)) if expected.sum() and actual.sum() else 0.0


def column_drift(column: str, bins: list[str], champion_counts, current_counts) -> ColumnDrift:
    expected, actual = shares(champion_counts), shares(current_counts)
    return ColumnDrift(column, psi(expected, actual), js_distance(expected, actual), bins,
                       expected.tolist(), actual.tolist())


def drift_scores(statistics: dict, samples: dict[str, np.ndarray], champion: dict,
                 skip: frozenset[str] = frozenset()) -> list[ColumnDrift]:
    """The drift of every column that both runs profiled alike (not those in `skip`), worst first.

    `statistics` and `samples` are this run's (`components.validation.statistics.Profile`),
    `champion` the champion's statistics document."""
    drifts = []
    for name, theirs in champion["features"].items():
        ours = statistics["features"].get(name)
        if name in skip or ours is None or ours["type"] != theirs["type"]:
            continue
        if theirs.get("categorical") and ours.get("categorical"):
            values = sorted(set(theirs["domain"]) | set(ours["domain"]))
            drifts.append(column_drift(name, values, [theirs["domain"].get(v, 0) for v in values],
                                       [ours["domain"].get(v, 0) for v in values]))
        elif "histogram" in theirs and name in samples and samples[name].size:
            edges = theirs["histogram"]["edges"]
            labels = [f"{low:.3g}..{high:.3g}" for low, high in pairwise(edges)]
            drifts.append(column_drift(name, labels, theirs["histogram"]["counts"],
                                       bin_counts(samples[name], edges)))
    return sorted(drifts, key=lambda drift: drift.psi, reverse=True)


def drift_metadata(drifts: list[ColumnDrift], champion_version: int | None, reason: str = "") -> dict:
    """The `drift` entry of the statistics artifact's metadata, which the gate reads."""
    return {"measure": MEASURE, "champion_version": champion_version, "reason": reason,
            "scores": {d.column: round(d.psi, 6) for d in drifts},
            "js_distance": {d.column: round(d.js, 6) for d in drifts}}
