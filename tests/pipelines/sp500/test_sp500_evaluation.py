"""The sp500 evaluation report: the model beside the always-up baseline, the training curves, the gate section."""

import numpy as np
import pandas as pd

from pipelines.sp500 import evaluation as ev


def test_the_report_shows_training_the_baseline_and_a_gate_section_to_fill_in(tmp_path):
    days = pd.date_range("2017-01-02", periods=40, freq="B")
    labels = np.array([1, 0] * 15 + [1] * 10)
    predicted = np.array([1] * 40)
    test = pd.DataFrame({"Date": days, "label": labels, "target_return": np.where(labels == 1, 0.01, -0.01)})
    scores = ev.direction_metrics(labels, np.zeros(40, dtype=int))  # always down: loses to always up
    path = tmp_path / "report.html"
    ev.write_direction_report(str(path), test, predicted, scores, "accuracy 0.3750: the gate step decides",
                              {"loss": [0.70, 0.69, 0.68], "accuracy": [0.50, 0.52, 0.53]})
    text = path.read_text()
    assert "<!-- gate verdict -->" in text and "accuracy 0.3750: the gate step decides" in text
    assert "The model is worse than always up on accuracy: 0.3750 against 0.6250." in text
    assert "Training (loss and accuracy per epoch)" in text
    assert text.count("data:image/png;base64,") == 2  # the training curves and the signal
    ev.write_direction_report(str(path), test, predicted, scores, "gate", {})
    assert "carries no training history" in path.read_text()
