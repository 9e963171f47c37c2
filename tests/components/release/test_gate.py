"""The gate's rules: threshold, naive baseline, serving champion and canary, drift and content,
decided in one place on the intervals of paired differences."""

import pytest

from components.release.bootstrap import Interval
from components.release.gate import Drift, Rules, Served, decide, log_scores


class RecordedMetrics:
    def __init__(self):
        self.logged = {}

    def log_metric(self, metric, value):
        self.logged[metric] = value


def test_every_score_is_logged_and_the_evaluate_step_leaves_the_decision_to_the_gate():
    metrics = RecordedMetrics()
    scores = {"accuracy": 0.62, "always_up_accuracy": 0.55}
    line = log_scores(metrics, scores, "accuracy")
    assert metrics.logged == scores
    assert line == ("accuracy 0.6200: the gate step decides the deploy against the threshold, the serving "
                    "champion (re-scored on these rows) and the naive baseline")
    assert "PASS" not in line and "REFUSE" not in line


def interval(point, low, high):
    return Interval(point, low, high, 0.95)


BETTER, EQUAL, WORSE = interval(0.05, 0.02, 0.08), interval(0.0, -0.03, 0.03), interval(-0.05, -0.08, -0.02)


def gate(value, champion=None, tolerance=0.0, baseline=EQUAL, require_beat_baseline=False, threshold=0.55,
         **options):
    return decide("accuracy", value, Rules(threshold, tolerance, require_beat_baseline,
                                           options.pop("max_drift", 0.25), options.pop("allow", False)),
                  "always_up_accuracy", baseline, champion, rows=453, **options)


def line(verdict, check):
    (found,) = [c for c in verdict.comparisons if c.startswith(check + ":")]
    return found


def test_first_deploy_is_said_plainly():
    verdict = gate(0.6)
    assert verdict.deploy and verdict.first_deploy and verdict.champion_version is None
    assert "serving champion: none, nothing is serving yet -> first deploy" in verdict.comparisons
    assert verdict.reason.startswith("DEPLOY: first deploy")
    assert line(verdict, "threshold") == "threshold: accuracy 0.6000 on these 453 rows >= 0.55 -> pass"


@pytest.mark.parametrize("difference, tolerance, deploys, words", [
    (BETTER, 0.0, True, "significant: the challenger is better than the champion; lower bound +0.0200 >= "
                        "-tolerance 0;"),
    (EQUAL, 0.0, False, "not significant: the interval contains 0; lower bound -0.0300 < -tolerance 0;"),
    (EQUAL, 0.03, True, "not significant: the interval contains 0; lower bound -0.0300 >= -tolerance -0.03;"),
    (WORSE, 0.05, False, "significant: the challenger is worse than the champion; lower bound -0.0800 < "
                         "-tolerance -0.05;"),
])
def test_the_champion_rule_is_on_the_lower_bound(difference, tolerance, deploys, words):
    champion = Served(3, 0.58, difference, history="scored 0.5400 on its own test set (2015..2016) when deployed; "
                                                   "not compared")
    verdict = gate(0.60, champion, tolerance)
    assert verdict.deploy is deploys and not verdict.first_deploy and verdict.champion_version == 3
    text = line(verdict, "serving champion")
    assert text.startswith(f"serving champion: version 3 accuracy 0.5800 on these 453 rows; challenger - champion "
                           f"{difference.point:+.4f} (95% interval {difference.low:+.4f} to {difference.high:+.4f})")
    assert words in text and "stored: scored 0.5400 on its own test set (2015..2016)" in text
    assert text.endswith(" -> pass" if deploys else " -> FAIL")
    if not deploys:
        assert f"lower bound of the difference {difference.low:+.4f}" in verdict.reason
        assert verdict.reason.startswith("REFUSED") and verdict.reason.endswith("Nothing is deployed.")


def test_an_incomparable_champion_refuses_unless_allowed():
    champion = Served(2, incomparable="another input width: it takes 12 features, these rows have 14")
    refused = gate(0.6, champion)
    assert not refused.deploy
    assert line(refused, "serving champion") == (
        "serving champion: version 2 cannot be scored on these rows: another input width: it takes 12 features, "
        "these rows have 14 -> FAIL (deploy_if_champion_incomparable=false)")
    assert "serving version 2 cannot be scored on these rows (another input width" in refused.reason
    allowed = gate(0.6, champion, allow=True)
    assert allowed.deploy and "-> not compared, allowed (deploy_if_champion_incomparable=true)" in \
        line(allowed, "serving champion")


def test_the_canary_is_reported_and_never_decides():
    canary = Served(4, 0.70, WORSE)
    verdict = gate(0.6, Served(3, 0.55, BETTER), canary=canary)
    assert verdict.deploy
    assert line(verdict, "canary") == ("canary: version 4 accuracy 0.7000 on these 453 rows; challenger - canary "
                                       "-0.0500 (95% interval -0.0800 to -0.0200), significant: the challenger is "
                                       "worse than the canary -> reported (the stable version decides)")


def test_below_threshold_and_the_baseline_requirement_on_the_lower_bound():
    below = gate(0.50)
    assert not below.deploy and "accuracy 0.5000 is below the threshold 0.55" in below.reason
    allowed = gate(0.56, baseline=EQUAL)
    assert allowed.deploy
    assert line(allowed, "naive baseline") == (
        "naive baseline: challenger - always_up_accuracy +0.0000 (95% interval -0.0300 to +0.0300), not significant: "
        "the interval contains 0 -> not significantly better, allowed (require_beat_baseline=false)")
    required = gate(0.56, baseline=interval(0.01, 0.0, 0.02), require_beat_baseline=True)
    assert not required.deploy and "does not significantly beat the naive baseline always_up_accuracy" \
        in required.reason
    assert gate(0.60, baseline=BETTER, require_beat_baseline=True).deploy


def test_every_failure_is_named():
    verdict = gate(0.40, Served(2, 0.70, WORSE), baseline=WORSE, require_beat_baseline=True)
    assert verdict.reason.count(";") == 2 and "threshold" in verdict.reason and "baseline" in verdict.reason


def test_drift_above_the_limit_refuses_naming_the_feature_below_it_is_reported():
    drift = Drift("psi", 3, "", {"nasdaq_lag1": 0.41, "sp500_lag1": 0.02})
    refused = gate(0.6, Served(3, 0.55, BETTER), drift=drift)
    assert not refused.deploy
    assert line(refused, "drift") == ("drift: largest psi 0.4100 on nasdaq_lag1, this run's training data against "
                                      "version 3's; above max_drift 0.25 -> FAIL")
    assert "nasdaq_lag1 drifted by psi 0.4100, more than max_drift 0.25" in refused.reason
    reported = gate(0.6, Served(3, 0.55, BETTER), drift=drift, max_drift=0.5)
    assert reported.deploy and line(reported, "drift").endswith("within max_drift 0.5 -> reported")
    none = gate(0.6, drift=Drift.from_metadata({"drift": {"measure": "psi", "champion_version": None,
                                                          "reason": "no champion", "scores": {}}}))
    assert line(none, "drift") == "drift: none computed (no champion) -> not compared"
    assert line(gate(0.6), "drift") == "drift: no statistics given -> not compared"


# --------------------------------------------------------------------------- identical models

def test_a_model_identical_to_the_serving_one_is_refused_whatever_its_scores():
    champion = Served(3, 0.58, BETTER, content_hash="abc123")
    verdict = gate(0.6, champion, content_hash="abc123")
    assert not verdict.deploy
    assert "content: identical to serving version 3 (content hash abc123) -> FAIL, not deployed again" \
        in verdict.comparisons
    assert "identical to serving version 3" in verdict.reason and "would change nothing" in verdict.reason
    assert gate(0.6, champion, content_hash="def456").deploy
    assert "content: differs from serving version 3 -> pass" in gate(0.6, champion, content_hash="def456").comparisons
    canary = Served(4, 0.59, BETTER, content_hash="def456")
    assert "identical to serving version 4" in gate(0.6, champion, content_hash="def456", canary=canary).reason
    unrecorded = gate(0.6, Served(3, 0.58, BETTER), content_hash="abc123")
    assert unrecorded.deploy and "content: a serving version has no recorded content hash -> not compared" \
        in unrecorded.comparisons
