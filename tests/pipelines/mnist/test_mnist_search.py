"""The search's parameters and the in-process search with Optuna: one-line errors, seeded and
bounded suggestions, batches of `parallelism`; and the proof that a small bayesian search on the
shipped digits finds a model at least as good as the default grid's best with no more trials."""

import math

import pytest

from components.common.errors import InputError
from pipelines.mnist import search, sweep

SPACE = dict(learning_rate_min=1e-4, learning_rate_max=0.1, hidden_layers_min=0, hidden_layers_max=3)


def plan(sweep_kind: str = "bayesian", trials: int = 8, parallelism: int = 2, seed: int = 3, **space):
    values = {**SPACE, **space}
    return search.make_plan(sweep_kind, values["learning_rate_min"], values["learning_rate_max"],
                            values["hidden_layers_min"], values["hidden_layers_max"], trials, parallelism, seed)


def synthetic(calls: list):
    """A trial 'trained' instantly: accuracy peaks at learning rate 0.01 with 2 hidden layers."""
    def train(name: str, trial: sweep.Trial) -> sweep.TrialResult:
        calls.append((name, trial))
        accuracy = 0.95 - 0.05 * abs(math.log10(trial.learning_rate) + 2) - 0.02 * abs(trial.hidden_layers - 2)
        return sweep.TrialResult(name, trial.learning_rate, trial.hidden_layers, 8, 1, accuracy, 1 - accuracy, 0.0)
    return train


@pytest.mark.parametrize("changes, message", [
    ({"sweep_kind": "hyperband"}, "sweep must be one of grid, random, bayesian, got 'hyperband'"),
    ({"learning_rate_min": 0.0}, "learning_rate_min must be in (0, 1), got 0.0"),
    ({"learning_rate_max": 1.5}, "learning_rate_max must be in (0, 1), got 1.5"),
    ({"learning_rate_min": 0.1, "learning_rate_max": 0.01}, "learning_rate_min 0.1 is above learning_rate_max 0.01"),
    ({"hidden_layers_min": -1}, "hidden_layers_min must be a whole number >= 0, got -1"),
    ({"hidden_layers_max": 1.5}, "hidden_layers_max must be a whole number >= 0, got 1.5"),
    ({"hidden_layers_min": 3, "hidden_layers_max": 1}, "hidden_layers_min 3 is above hidden_layers_max 1"),
    ({"trials": 0}, "trials must be a whole number from 1 to 100, got 0"),
    ({"trials": 101}, "trials must be a whole number from 1 to 100, got 101"),
    ({"trials": 4, "parallelism": 5}, "parallelism must be a whole number from 1 to trials (4), got 5"),
])
def test_a_plan_that_cannot_work_fails_in_one_line(changes, message):
    with pytest.raises(InputError) as failure:
        plan(**changes)
    assert str(failure.value) == message


def test_whole_numbers_handed_on_as_floats_become_ints():
    made = search.make_plan("random", 0.001, 0.01, 1.0, 3.0, 6.0, 2.0, 42.0)
    assert (made.space.hidden_layers_min, made.space.hidden_layers_max, made.trials, made.parallelism, made.seed) \
        == (1, 3, 6, 2, 42)
    assert all(isinstance(value, int) for value in (made.space.hidden_layers_max, made.trials, made.seed))


@pytest.mark.parametrize("sweep_kind", ["random", "bayesian"])
def test_a_search_trains_its_budget_inside_the_space_the_same_way_twice(sweep_kind):
    first, second = [], []
    results = search.run_search(plan(sweep_kind, trials=10), synthetic(first), lambda line: None)
    search.run_search(plan(sweep_kind, trials=10), synthetic(second), lambda line: None)
    assert len(results) == 10 and first == second, "seeded: the same trials in the same order"
    assert all(1e-4 <= trial.learning_rate <= 0.1 and 0 <= trial.hidden_layers <= 3 for _, trial in first)
    assert len({name for name, _ in first}) == 10 and first[0][0].startswith("trial00-lr")
    other_seed = []
    search.run_search(plan(sweep_kind, trials=10, seed=4), synthetic(other_seed), lambda line: None)
    assert other_seed != first


def test_learning_rates_are_drawn_on_a_log_scale():
    calls = []
    search.run_search(plan("random", trials=60, parallelism=1), synthetic(calls), lambda line: None)
    below_a_thousandth = sum(trial.learning_rate < 1e-3 for _, trial in calls)
    # log-uniform on [1e-4, 1e-1]: a third below 1e-3; uniform: under 1 %
    assert 10 <= below_a_thousandth <= 30


def test_random_and_bayesian_use_different_samplers():
    random_calls, bayesian_calls = [], []
    search.run_search(plan("random", trials=10), synthetic(random_calls), lambda line: None)
    search.run_search(plan("bayesian", trials=10), synthetic(bayesian_calls), lambda line: None)
    assert random_calls != bayesian_calls


def test_bayesian_search_spends_its_later_trials_nearer_the_optimum_than_random_search():
    later = {}
    for sweep_kind in ("random", "bayesian"):
        results = search.run_search(plan(sweep_kind, trials=30, parallelism=1), synthetic([]), lambda line: None)
        later[sweep_kind] = sum(result.val_accuracy for result in results[-10:]) / 10
    assert later["bayesian"] > later["random"]


def test_a_batch_of_trials_is_suggested_before_any_result_is_known():
    import optuna

    told = []
    original = optuna.study.Study.tell

    def tell(study, trial, value=None, **options):
        told.append(trial.number)
        return original(study, trial, value, **options)

    asked_before_told = []
    original_ask = optuna.study.Study.ask

    def ask(study, *args, **options):
        asked = original_ask(study, *args, **options)
        asked_before_told.append((asked.number, len(told)))
        return asked

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(optuna.study.Study, "tell", tell)
        patch.setattr(optuna.study.Study, "ask", ask)
        search.run_search(plan("bayesian", trials=5, parallelism=2), synthetic([]), lambda line: None)
    assert asked_before_told == [(0, 0), (1, 0), (2, 2), (3, 2), (4, 4)]


def test_tpe_starts_from_half_the_budget_of_random_trials():
    assert [search.startup_trials(n) for n in (1, 2, 4, 9, 20)] == [1, 1, 2, 4, 10]


def test_the_katib_algorithm_of_bayesian_is_the_one_optuna_serves():
    assert search.KATIB_ALGORITHMS == {"random": "random", "bayesian": "multivariate-tpe"}


# --------------------------------------------------------------------------- the proof, on the shipped digits

# The search space's defaults in the pipeline (learning rate range, hidden layers range).
DEFAULT_SPACE = (0.0003, 0.03, 1, 2)


def test_the_proofs_space_is_the_pipelines_default():
    import inspect

    from pipelines.mnist.pipeline import make_pipeline

    defaults = {name: parameter.default for name, parameter in
                inspect.signature(make_pipeline().pipeline_func).parameters.items()}
    assert tuple(defaults[name] for name in ("learning_rate_min", "learning_rate_max", "hidden_layers_min",
                                             "hidden_layers_max")) == DEFAULT_SPACE


@pytest.fixture(scope="module")
def shipped_splits_file(tmp_path_factory):
    """The shipped digits split as the pipeline splits them by default."""
    from pipelines.mnist import data, preprocess

    path = tmp_path_factory.mktemp("splits") / "splits.npz"
    preprocess.save_splits(preprocess.make_splits(data.load_sample(), 0.1, 0.2, seed=42), path)
    return path


def test_bayesian_search_matches_the_grids_best_with_no_more_trials(shipped_splits_file, tmp_path):
    from pipelines.mnist.trials import TrialSettings, train_trial_model

    # The pipeline's defaults but one epoch: the default grid against the default search space.
    settings = TrialSettings(hidden_units=128, epochs=1, batch_size=64, seed=42)

    def train(name: str, trial: sweep.Trial) -> sweep.TrialResult:
        result, _ = train_trial_model(name, trial, settings, str(shipped_splits_file), str(tmp_path / name / "model"),
                                      str(tmp_path / name / "logs"), lambda line: None)
        return result

    grid = [train(trial.name, trial) for trial in sweep.parse_grid(sweep.DEFAULT_GRID)]
    bayesian = search.run_search(search.make_plan("bayesian", *DEFAULT_SPACE, len(grid), 1, 42), train,
                                 lambda line: None)
    grid_best, found = sweep.best_trial(grid), sweep.best_trial(bayesian)
    print(f"grid best {grid_best.name} {grid_best.val_accuracy:.4f}; bayesian best {found.name} "
          f"{found.val_accuracy:.4f}")
    assert len(bayesian) <= len(grid)
    assert found.val_accuracy >= grid_best.val_accuracy
