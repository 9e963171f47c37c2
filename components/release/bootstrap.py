"""Paired moving-block bootstrap of score differences: how sure the gate can be that one model beats another.

Every model is scored on the same rows (`components.release.rows`), so the
gate compares them pairwise: each resample draws one set of rows and scores
every model on it, and the interval is that of the difference. A paired
interval is much tighter than two separate ones, because both models meet the
same easy and hard rows.

**Blocks.** Rows are resampled by their `block` key, never one by one unless a
key is one row: all rows of a key stay together (crypto: all assets of a
minute, which move together), and `block_length` consecutive keys form one
block (Künsch's moving-block bootstrap), so that autocorrelation within a block
is kept rather than mistaken for independent evidence. A resample is
ceil(K / L) blocks drawn uniformly from the K - L + 1 windows of L consecutive
keys (K keys in all); with L = 1 it is the plain bootstrap of keys (mnist: of
rows).

**Speed.** Nothing loops over rows or resamples in Python. Each metric is a
function of per-key sums (accuracy: sums of w and w*correct per model;
weighted Pearson correlation: sums of w, wy, wy² and, per model, wx, wx², wxy),
so the rows are reduced to a (keys x statistics) matrix once (`np.bincount`).
Prefix sums over keys give every window's sums, and a resample is the sum of
its drawn windows: a gather of (resamples x blocks) indices per statistic,
done for the resamples in chunks that bound the memory.

**Resamples.** `RESAMPLES` = 2000. The interval's bounds are the 2.5% and 97.5%
quantiles (at 95%) of the resampled differences; the Monte Carlo standard error
of an estimated p-quantile is sqrt(p(1 - p) / B) / f(q). For a roughly normal
distribution of standard deviation s, f(q) at the 2.5% quantile is
0.058 / s, so with B = 2000 a bound moves by about 0.06 s between seeds: 3% of
the interval's half-width (1.96 s). B = 1000 gives 0.085 s, B = 10000 0.027 s
at five times the cost. The seed is fixed (`SEED`): the same rows give the
same verdict.
"""

from dataclasses import dataclass
from typing import Mapping

import numpy as np

RESAMPLES = 2000
SEED = 26  # fixed: a verdict must not change between two runs of the gate on the same rows
# Gathered indices per chunk of resamples: bounds the memory of the gather (8 bytes each) to about 64 MB.
CHUNK_ENTRIES = 8_000_000


@dataclass(frozen=True)
class Interval:
    """A difference of scores on all rows (`point`) and its bootstrap percentile interval."""

    point: float
    low: float
    high: float
    confidence: float

    def describe(self) -> str:
        return f"{self.point:+.4f} ({self.confidence:.0%} interval {self.low:+.4f} to {self.high:+.4f})"


@dataclass(frozen=True)
class PairedBootstrap:
    """Each model's score on all rows and the interval of (reference - other) for every other model."""

    scores: dict[str, float]
    differences: dict[str, Interval]  # keyed by the other model's name
    resamples: int
    block_length: int
    keys: int


def key_statistics(metric: str, block: np.ndarray, target: np.ndarray, weight: np.ndarray,
                   predictions: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, list[int]]]:
    """Per-key sums (keys ascending x statistics), and for each model the columns its score reads.

    accuracy: [w, w*correct]; weighted_correlation: [w, wy, wy², wx, wx², wxy]. x and y are centred on
    their weighted means first (correlation is unchanged by a shift): the raw sums then lose no precision.
    """
    _, index = np.unique(block, return_inverse=True)
    weight = np.asarray(weight, np.float64)

    def per_key(values: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=values)

    if metric == "accuracy":
        columns, layout = [per_key(weight)], {}
        for name, prediction in predictions.items():
            layout[name] = [0, len(columns)]
            columns.append(per_key(weight * (np.asarray(prediction) == target)))
    elif metric == "weighted_correlation":
        y = np.asarray(target, np.float64)
        y = y - np.average(y, weights=weight)
        wy = weight * y
        columns, layout = [per_key(weight), per_key(wy), per_key(wy * y)], {}
        for name, prediction in predictions.items():
            x = np.asarray(prediction, np.float64)
            x = x - np.average(x, weights=weight)
            wx = weight * x
            layout[name] = [0, 1, 2, len(columns), len(columns) + 1, len(columns) + 2]
            columns += [per_key(wx), per_key(wx * x), per_key(wx * y)]
    else:
        raise ValueError(f"metric '{metric}': expected accuracy or weighted_correlation")
    return np.column_stack(columns), layout


def score_from_sums(metric: str, sums: np.ndarray) -> np.ndarray:
    """The metric from summed statistics (last axis: the model's columns in `key_statistics`' order)."""
    if metric == "accuracy":
        return sums[..., 1] / sums[..., 0]
    w, wy, wyy, wx, wxx, wxy = np.moveaxis(sums, -1, 0)
    covariance = wxy / w - (wx / w) * (wy / w)
    variance = (wxx / w - (wx / w) ** 2) * (wyy / w - (wy / w) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        # A constant prediction has no correlation: 0, as the evaluate step scores it.
        return np.where(variance > 0, covariance / np.sqrt(np.maximum(variance, 1e-300)), 0.0)


def resampled_sums(statistics: np.ndarray, block_length: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples x statistics): each resample's sums over ceil(K / L) blocks of L consecutive keys."""
    keys = len(statistics)
    length = min(block_length, keys)
    prefix = np.vstack([np.zeros((1, statistics.shape[1])), np.cumsum(statistics, axis=0)])
    windows = np.asfortranarray(prefix[length:] - prefix[:-length])  # window s: keys s .. s+L-1
    blocks = -(-keys // length)
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_ENTRIES // blocks)
    sums = np.empty((resamples, statistics.shape[1]))
    for start in range(0, resamples, chunk):  # chunks of resamples, to bound memory: not one at a time
        count = min(chunk, resamples - start)
        starts = rng.integers(0, len(windows), size=(count, blocks))
        for column in range(statistics.shape[1]):
            sums[start:start + count, column] = windows[:, column][starts].sum(axis=1)
    return sums


def paired_bootstrap(metric: str, block: np.ndarray, target: np.ndarray, weight: np.ndarray,
                     predictions: Mapping[str, np.ndarray], reference: str, block_length: int,
                     confidence: float, resamples: int = RESAMPLES, seed: int = SEED) -> PairedBootstrap:
    """Score every model of `predictions` on all rows, and the interval at `confidence` of
    (`reference` - other) for each other model, every model on the same resampled blocks."""
    statistics, layout = key_statistics(metric, block, target, weight, predictions)
    total = statistics.sum(axis=0)
    scores = {name: float(score_from_sums(metric, total[columns])) for name, columns in layout.items()}
    drawn = resampled_sums(statistics, block_length, resamples, seed)
    resampled = {name: score_from_sums(metric, drawn[:, columns]) for name, columns in layout.items()}
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    differences = {}
    for name in predictions:
        if name == reference:
            continue
        low, high = np.quantile(resampled[reference] - resampled[name], tails)
        differences[name] = Interval(scores[reference] - scores[name], float(low), float(high), confidence)
    return PairedBootstrap(scores, differences, resamples, block_length, len(statistics))
