"""The paired moving-block bootstrap: known answers, pairing, whole keys and blocks."""

import numpy as np
import pytest

from components.release import bootstrap
from components.release.bootstrap import key_statistics, paired_bootstrap, resampled_sums


def classes(rng, count, accuracy, target):
    """Predictions right on a share `accuracy` of rows."""
    right = rng.random(count) < accuracy
    return np.where(right, target, 1 - target)


def test_identical_models_give_an_interval_around_zero_and_a_better_one_a_positive_lower_bound():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 2, 5000).astype(float)
    weak = classes(rng, 5000, 0.55, target)
    strong = np.where(rng.random(5000) < 0.5, target, weak)  # right wherever weak is, and on half the rest
    result = paired_bootstrap("accuracy", np.arange(5000), target, np.ones(5000),
                              {"challenger": strong, "same": strong.copy(), "weak": weak}, "challenger", 1, 0.95)
    same = result.differences["same"]
    assert (same.point, same.low, same.high) == (0.0, 0.0, 0.0)
    better = result.differences["weak"]
    assert better.low > 0 and better.point == pytest.approx(np.mean(strong == target) - np.mean(weak == target))
    assert result.scores["weak"] == pytest.approx(np.mean(weak == target))


def test_noisy_equal_models_straddle_zero():
    rng = np.random.default_rng(2)
    target = rng.integers(0, 2, 2000).astype(float)
    one, other = classes(rng, 2000, 0.6, target), classes(rng, 2000, 0.6, target)
    difference = paired_bootstrap("accuracy", np.arange(2000), target, np.ones(2000),
                                  {"challenger": one, "champion": other}, "challenger", 1, 0.95).differences
    assert difference["champion"].low < 0 < difference["champion"].high


def test_weighted_correlation_matches_the_direct_formula_and_orders_models():
    rng = np.random.default_rng(3)
    target = rng.normal(0, 1e-3, 30000)
    weight = rng.uniform(0.5, 3, 30000)
    good, noise = target + rng.normal(0, 2e-3, 30000), rng.normal(0, 1e-3, 30000)
    result = paired_bootstrap("weighted_correlation", np.repeat(np.arange(3000), 10), target, weight,
                              {"challenger": good, "baseline": noise}, "challenger", 5, 0.9)

    def direct(x):
        x, y = x - np.average(x, weights=weight), target - np.average(target, weights=weight)
        return np.average(x * y, weights=weight) / np.sqrt(np.average(x * x, weights=weight)
                                                           * np.average(y * y, weights=weight))
    assert result.scores["challenger"] == pytest.approx(direct(good), rel=1e-9)
    assert result.scores["baseline"] == pytest.approx(direct(noise), rel=1e-9)
    assert result.differences["baseline"].low > 0


def test_a_keys_rows_stay_together_whatever_their_order():
    """Rows are summed per key before resampling: shuffling the rows changes nothing, and a
    resample holds each key's rows all or not at all (its weight is a multiple of the key's)."""
    rng = np.random.default_rng(4)
    block = np.repeat(np.arange(50), 7)
    target = rng.integers(0, 2, 350).astype(float)
    prediction = classes(rng, 350, 0.7, target)
    statistics, _ = key_statistics("accuracy", block, target, np.ones(350), {"m": prediction})
    order = rng.permutation(350)
    shuffled, _ = key_statistics("accuracy", block[order], target[order], np.ones(350), {"m": prediction[order]})
    np.testing.assert_array_equal(statistics, shuffled)
    sums = resampled_sums(statistics, 1, 200, 0)
    assert np.all(sums[:, 0] % 7 == 0) and np.all(sums[:, 0] == 350)  # 50 whole keys of 7 rows each


def test_a_block_draws_consecutive_keys():
    # Key k holds k as its statistic: a resample of one block of 4 keys from 10 sums 4 consecutive keys.
    statistics = np.arange(10, dtype=float)[:, None]
    sums = resampled_sums(statistics, 4, 500, 0)[:, 0]
    windows = {sum(range(s, s + 4)) for s in range(7)}
    # 10 keys in blocks of 4: 3 blocks per resample, each a window of 4 consecutive keys.
    assert set(np.unique(sums)) <= {a + b + c for a in windows for b in windows for c in windows}
    single = resampled_sums(np.arange(4, dtype=float)[:, None], 4, 10, 0)[:, 0]
    assert np.all(single == 6)  # one window only: every key once


def test_autocorrelated_differences_give_a_wider_interval_with_blocks():
    rng = np.random.default_rng(5)
    count = 4000
    target = rng.integers(0, 2, count).astype(float)
    # The challenger is right in long runs (regimes): its daily wins are autocorrelated.
    regime = np.repeat(rng.random(count // 50) < 0.55, 50)
    challenger = np.where(regime, target, 1 - target)
    champion = classes(rng, count, 0.5, target)
    arguments = ("accuracy", np.arange(count), target, np.ones(count),
                 {"challenger": challenger, "champion": champion}, "challenger")
    rows = paired_bootstrap(*arguments, 1, 0.95).differences["champion"]
    blocks = paired_bootstrap(*arguments, 50, 0.95).differences["champion"]
    assert blocks.high - blocks.low > 2 * (rows.high - rows.low)


def test_the_seed_is_fixed_and_the_resamples_chunked(monkeypatch):
    rng = np.random.default_rng(6)
    target = rng.integers(0, 2, 1000).astype(float)
    models = {"challenger": classes(rng, 1000, 0.6, target), "champion": classes(rng, 1000, 0.6, target)}
    arguments = ("accuracy", np.arange(1000), target, np.ones(1000), models, "challenger", 3, 0.95)
    first = paired_bootstrap(*arguments)
    assert paired_bootstrap(*arguments) == first
    monkeypatch.setattr(bootstrap, "CHUNK_ENTRIES", 1000)  # many chunks: same intervals shape, bounded memory
    chunked = paired_bootstrap(*arguments).differences["champion"]
    assert chunked.point == first.differences["champion"].point
    assert abs(chunked.low - first.differences["champion"].low) < 0.02
