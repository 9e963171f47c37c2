"""The gate shared by every evaluate step."""

import pytest

from components.errors import InputError
from components.gate import check_threshold, record_and_decide


class RecordedMetrics:
    def __init__(self):
        self.logged = {}

    def log_metric(self, metric, value):
        self.logged[metric] = value


def test_every_score_is_logged_and_the_gate_decided_on_the_named_one():
    metrics = RecordedMetrics()
    scores = {"accuracy": 0.62, "always_up_accuracy": 0.55}
    assert record_and_decide(metrics, scores, "accuracy", 0.6).startswith("PASS: accuracy 0.6200 >=")
    assert metrics.logged == scores
    assert record_and_decide(metrics, scores, "accuracy", 0.7).startswith("REFUSE: accuracy 0.6200 <")


def test_threshold_outside_zero_to_one_is_refused():
    with pytest.raises(InputError, match="threshold must be between 0 and 1, got 1.5"):
        check_threshold(1.5)
