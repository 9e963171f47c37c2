"""The sweep grid, picking the best trial, and the trial table."""

import pytest

from components.common.errors import InputError
from pipelines.mnist import sweep


def result(name: str, accuracy: float, loss: float, rate: float = 0.001, layers: int = 1) -> sweep.TrialResult:
    return sweep.TrialResult(name, rate, layers, 128, 6, accuracy, loss, 10.0)


def test_grid_pairs_become_trials_in_order():
    trials = sweep.parse_grid([[0.01, 2], [0.001, 0.0]])
    assert [(t.learning_rate, t.hidden_layers, t.name) for t in trials] == [
        (0.01, 2, "lr0.01-layers2"), (0.001, 0, "lr0.001-layers0")]
    assert isinstance(trials[1].hidden_layers, int), "KFP hands numbers over as floats"


def test_default_grid_is_two_rates_by_two_depths():
    trials = sweep.parse_grid(sweep.DEFAULT_GRID)
    assert sorted({t.learning_rate for t in trials}) == [0.001, 0.003]
    assert sorted({t.hidden_layers for t in trials}) == [1, 2] and len(trials) == 4


@pytest.mark.parametrize("grid, message", [
    ([], "sweep_grid must be a non-empty list of \\[learning_rate, hidden_layers\\] pairs"),
    ({"learning_rate": 0.01, "hidden_layers": 1}, "sweep_grid must be a non-empty list"),
    ([[0.01]], "sweep_grid item 0 must be a pair \\[learning_rate, hidden_layers\\], got \\[0.01\\]"),
    ([[0.01, 1], {"learning_rate": 0.01, "hidden_layers": 1}], "sweep_grid item 1 must be a pair"),
    ([[1.5, 1]], "sweep_grid item 0: learning_rate 1.5 is not in \\(0, 1\\)"),
    ([["fast", 1]], "learning_rate 'fast' is not in"),
    ([[0.01, 1.5]], "hidden_layers 1.5 is not a whole number"),
    ([[0.01, -1]], "hidden_layers -1 is not a whole number"),
    ([[0.01, True]], "hidden_layers True is not a whole number"),
    ([[0.001, 1], [0.0010000001, 1.0]], "sweep_grid repeats a trial"),  # distinct numbers, one trial name
])
def test_bad_grids_are_clear_errors(grid, message):
    with pytest.raises(InputError, match=message):
        sweep.parse_grid(grid)


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


def test_results_travel_in_model_metadata_as_kfp_keeps_it():
    item = result("lr0.01-layers2", 0.97, 0.1, rate=0.01, layers=2)
    # KFP stores metadata numbers as floats (protobuf Struct): the types come back.
    stored = {key: float(value) if isinstance(value, (int, float)) else value
              for key, value in item.as_metadata().items()}
    read = sweep.TrialResult.from_metadata(stored, "model")
    assert read == item and isinstance(read.hidden_layers, int) and isinstance(read.workers, int)
    with pytest.raises(InputError, match="trial model x carries no trial result \\(missing val_accuracy"):
        sweep.TrialResult.from_metadata({k: v for k, v in stored.items() if k != "val_accuracy"}, "trial model x")


def test_table_marks_the_best_trial():
    results = [result("a", 0.95, 0.2), result("b", 0.97, 0.3, rate=0.01, layers=2)]
    table = sweep.format_table(results, sweep.best_trial(results)).splitlines()
    assert table[0].split()[0] == "trial"
    assert table[2].split()[0] == "b" and table[2].rstrip().endswith("*")
    assert not table[1].rstrip().endswith("*")


def history(start: float, epochs: int = 3) -> dict[str, list[float]]:
    accuracy = [start + 0.01 * epoch for epoch in range(epochs)]
    return {"loss": [1 - a for a in accuracy], "accuracy": accuracy,
            "val_loss": [1.1 - a for a in accuracy], "val_accuracy": [a - 0.01 for a in accuracy]}


def test_every_trial_has_its_own_curve_per_epoch():
    histories = {"a": history(0.90), "b": history(0.95)}
    figure = sweep.trial_curves_figure(histories, result("b", 0.96, 0.1))
    for axis, key in zip(figure.axes, ("val_accuracy", "val_loss"), strict=True):
        lines = {line.get_label(): list(line.get_ydata()) for line in axis.lines}
        assert lines == {"a": histories["a"][key], "b (best)": histories["b"][key]}
    assert sweep.epoch_history({**history(0.9), "examples_per_second": [1.0, 2.0, 3.0]}) == history(0.9)


def test_the_select_step_reports_every_trials_curves_and_hands_on_the_best_ones_history(tmp_path):
    from kfp.dsl import HTML, Metrics, Model

    from components.common import history as trained
    from pipelines.mnist.steps import select_best_trial

    trials = []
    for name, accuracy, start in (("lr0.001-layers1", 0.93, 0.90), ("lr0.003-layers1", 0.96, 0.95)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "saved_model.pb").write_text(name)
        trial = Model(name="model", uri=str(folder))
        trial.metadata.update({**result(name, accuracy, 0.2).as_metadata(), **trained.as_metadata(history(start)),
                               "content_hash": f"hash of {name}"})
        trials.append(trial)
    best_model = Model(name="best_model", uri=str(tmp_path / "best"))
    report = HTML(name="sweep_report", uri=str(tmp_path / "sweep.html"))
    chosen = select_best_trial.python_func(trial_models=trials, best_model=best_model, sweep_report=report,
                                           metrics=Metrics(name="metrics", uri=str(tmp_path / "metrics")))
    assert chosen == "lr0.003-layers1"
    assert trained.from_metadata(best_model.metadata) == history(0.95)
    assert best_model.metadata["content_hash"] == "hash of lr0.003-layers1"  # what the gate compares
    text = (tmp_path / "sweep.html").read_text()
    assert "Every trial per epoch" in text and text.count("data:image/png;base64,") == 2


def test_the_best_model_handed_on_through_the_workspace_is_the_named_trials(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_text("first")
    sweep.write_handoff(str(tmp_path / "workspace"), str(model), {"trial": "trial01-lr0.01-layers1", "x": 1})
    (model / "saved_model.pb").write_text("second")  # a retried step hands on again: the latest wins
    sweep.write_handoff(str(tmp_path / "workspace"), str(model), {"trial": "trial01-lr0.01-layers1", "x": 2})
    folder, metadata = sweep.read_handoff(str(tmp_path / "workspace"), "trial01-lr0.01-layers1")
    assert metadata == {"trial": "trial01-lr0.01-layers1", "x": 2}
    assert (tmp_path / "workspace" / sweep.HANDOFF_FOLDER / "model" / "saved_model.pb").read_text() == "second"
    assert folder.endswith("model")
    with pytest.raises(InputError, match="holds trial 'trial01-lr0.01-layers1', not the best trial 'lr0.003-layers2'"):
        sweep.read_handoff(str(tmp_path / "workspace"), "lr0.003-layers2")
    with pytest.raises(InputError, match="holds no best model"):
        sweep.read_handoff(str(tmp_path / "elsewhere"), "trial01-lr0.01-layers1")
