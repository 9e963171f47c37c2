"""mnist's validation end to end: the offline digits deploy with their statistics; the same digits
inverted (255 - pixel) then drift far beyond PSI 0.25 on the pixel-intensity histogram, and the gate refuses them."""

import json
import re

import numpy as np
import pytest
from conftest import run_cli

from pipelines.mnist.data import fetch_digits

pytestmark = pytest.mark.e2e
SMALL = ("sweep_grid=[[0.003, 0]]", "epochs=1", "threshold=0.5")


def test_inverted_digits_drift_far_beyond_the_limit(tmp_path):
    first = run_cli("run", "mnist", *SMALL, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (tmp_path / "model_store" / "mnist" / "1" / "statistics.json").is_file()

    digits = fetch_digits("", tmp_path / "downloads")
    order = np.random.default_rng(0).permutation(len(digits.labels))  # the sample comes sorted by digit
    inverted, labels = (255 - digits.images[order]).astype(np.uint8), digits.labels[order]
    cut = len(inverted) * 4 // 5
    np.savez(tmp_path / "inverted.npz", x_train=inverted[:cut], y_train=labels[:cut],
             x_test=inverted[cut:], y_test=labels[cut:])
    second = run_cli("run", "mnist", *SMALL, f"source={tmp_path / 'inverted.npz'}", cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    run_dir = sorted((tmp_path / "runs" / "mnist").iterdir())[-1]
    output = next(run_dir.glob("artifacts/*/validate-data/executor_output.json"))
    drift = json.loads(output.read_text())["artifacts"]["statistics"]["artifacts"][0]["metadata"]["drift"]
    assert drift["champion_version"] == 1 and drift["scores"]["pixel"] > 5 * 0.25, drift
    assert drift["scores"]["label"] < 0.05  # the same digits: only the pixels moved
    # The gate refuses on that drift, naming the feature, and nothing is deployed.
    assert re.search(r"gate: drift: largest psi [0-9.]+ on pixel, this run's training data against version 1's; "
                     r"above max_drift 0.25 -> FAIL", second.stdout), second.stdout[-3000:]
    assert "gate: REFUSED: " in second.stdout and "pixel drifted by psi" in second.stdout
    assert sorted(p.name for p in (tmp_path / "model_store" / "mnist").iterdir()) == ["1", "labels.json"]
