"""The sweep grid, picking the best trial, and the trial table."""

import pytest

from components.errors import InputError
from components.mnist import sweep


def result(name: str, accuracy: float, loss: float, rate: float = 0.001, layers: int = 1) -> sweep.TrialResult:
    return sweep.TrialResult(name, rate, layers, 128, 6, accuracy, loss, 10.0)


def test_grid_is_the_product_of_learning_rates_and_hidden_layers():
    trials = sweep.sweep_grid([0.001, 0.01], [0, 1, 2])
    assert [(t.learning_rate, t.hidden_layers) for t in trials] == [
        (0.001, 0), (0.001, 1), (0.001, 2), (0.01, 0), (0.01, 1), (0.01, 2)]
    assert len({t.name for t in trials}) == 6


@pytest.mark.parametrize("rates, layers, message", [
    ([], [1, 2], "the sweep grid is empty"),
    ([0.001], [], "the sweep grid is empty"),
    ([1.5], [1], "learning rate 1.5 is not in \\(0, 1\\)"),
    ([0.001], [-1], "hidden layer count -1"),
    ([0.001, 0.001], [1], "repeats a value"),
    ([0.001, 0.0010000001], [1], "repeats a value"),  # distinct numbers, one trial name
])
def test_bad_grids_are_clear_errors(rates, layers, message):
    with pytest.raises(InputError, match=message):
        sweep.sweep_grid(rates, layers)


def test_best_trial_has_the_highest_validation_accuracy():
    results = [result("a", 0.95, 0.2), result("b", 0.97, 0.3), result("c", 0.96, 0.1)]
    assert sweep.best_trial(results).name == "b"
    assert sweep.best_trial(list(reversed(results))).name == "b"


def test_ties_go_to_lower_loss_then_to_the_earlier_trial():
    assert sweep.best_trial([result("a", 0.97, 0.3), result("b", 0.97, 0.2)]).name == "b"
    assert sweep.best_trial([result("a", 0.97, 0.2), result("b", 0.97, 0.2)]).name == "a"


def test_no_trials_is_a_clear_error():
    with pytest.raises(InputError, match="no trials"):
        sweep.best_trial([])


def test_results_are_read_back_from_the_workspace(tmp_path):
    root = sweep.trials_root(tmp_path)
    for item in (result("lr0.001-layers1", 0.95, 0.2), result("lr0.01-layers1", 0.97, 0.1, rate=0.01)):
        sweep.write_result(root / item.name, item)
    read = sweep.read_results(root, ["lr0.01-layers1", "lr0.001-layers1"])
    assert [r.name for r in read] == ["lr0.01-layers1", "lr0.001-layers1"]
    assert read[0].learning_rate == 0.01
    with pytest.raises(InputError, match="trial 'lr0.1-layers1' left no result"):
        sweep.read_results(root, ["lr0.1-layers1"])


def test_table_marks_the_best_trial():
    results = [result("a", 0.95, 0.2), result("b", 0.97, 0.3, rate=0.01, layers=2)]
    table = sweep.format_table(results, sweep.best_trial(results)).splitlines()
    assert table[0].split()[0] == "trial"
    assert table[2].split()[0] == "b" and table[2].rstrip().endswith("*")
    assert not table[1].rstrip().endswith("*")


def test_grid_values_from_text():
    assert sweep.parse_grid_values("0.001, 0.01", float, "X") == [0.001, 0.01]
    assert sweep.parse_grid_values("", int, "X") == []
    with pytest.raises(InputError, match="MNIST_HIDDEN_LAYERS: 'one' is not a comma-separated list of int"):
        sweep.parse_grid_values("one", int, "MNIST_HIDDEN_LAYERS")
