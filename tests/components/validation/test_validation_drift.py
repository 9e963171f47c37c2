import numpy as np
import pytest

from components.validation.drift import drift_metadata, drift_scores, js_distance, psi
from components.validation.statistics import profile


def run(**columns):
    return profile(columns, categorical={"asset"})


def test_psi_and_js_of_known_shares():
    e, a = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    assert psi(e, a) == pytest.approx(0.4 * np.log(1.8) - 0.4 * np.log(0.2))
    assert psi(e, e) == 0 and js_distance(e, e) == 0
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_the_same_distribution_barely_drifts_and_a_scaled_one_drifts_far():
    rng = np.random.default_rng(0)
    champion = run(r=rng.normal(0, 0.01, 4000), asset=np.arange(4000) % 4)
    same = run(r=rng.normal(0, 0.01, 4000), asset=np.arange(4000) % 4)
    scaled = run(r=rng.normal(0, 0.05, 4000), asset=np.arange(4000) % 4)
    calm = {d.column: d for d in drift_scores(same.statistics, same.samples, champion.statistics)}
    assert calm["r"].psi < 0.05 and calm["asset"].psi == 0
    moved = drift_scores(scaled.statistics, scaled.samples, champion.statistics)
    assert moved[0].column == "r" and moved[0].psi > 1 and 0 < moved[0].js <= 1
    assert sum(moved[0].champion) == pytest.approx(1) and sum(moved[0].current) == pytest.approx(1)


def test_time_columns_and_columns_of_another_type_are_not_scored():
    champion = run(t=np.arange(100.0), x=np.arange(100.0))
    later = run(t=np.arange(100.0) + 1000, x=np.arange(100))
    assert drift_scores(later.statistics, later.samples, champion.statistics, frozenset({"t"})) == []


def test_the_metadata_the_gate_reads():
    champion = run(x=np.arange(100.0))
    drifts = drift_scores(champion.statistics, champion.samples, champion.statistics)
    assert drift_metadata(drifts, 3) == {"measure": "psi", "champion_version": 3, "reason": "",
                                         "scores": {"x": 0.0}, "js_distance": {"x": 0.0}}
    assert drift_metadata([], None, "no champion")["scores"] == {}
