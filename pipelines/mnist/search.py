"""The hyperparameter search: grid, random or bayesian, over learning rate x hidden layers.

`sweep=grid` is the fixed grid of pipelines.mnist.sweep (one train task per
point, `dsl.ParallelFor`). `random` and `bayesian` search a space instead: a
learning rate range (sampled on a log scale), a hidden-layer range, a trial
budget and a parallelism. They run in one step:

- on a laptop (kfp.local), in-process with Optuna (`run_search`):
  RandomSampler for random, the multivariate TPE sampler for bayesian, both
  seeded. Trials are asked for `parallelism` at a time and told their results
  once the batch has trained, as Katib asks its suggestion service for
  `parallelTrialCount` trials at once; the batch then trains one trial after
  another, because the trials share this machine's cores;
- on a cluster, as a Katib Experiment (pipelines.mnist.cluster_search), whose
  suggestion service for `multivariate-tpe` is the same Optuna sampler.

The objective is the trial's validation accuracy after its last epoch, the
figure the grid's select step ranks by. docs/search.md says why Katib and how
the two paths match.
"""

import math
from dataclasses import dataclass
from typing import Callable

from components.common.errors import InputError
from pipelines.mnist.sweep import Trial, TrialResult

SWEEPS = ("grid", "random", "bayesian")
# Katib v1beta1 algorithm names (katib-config of Katib v0.19.0, Kubeflow 26.03): `multivariate-tpe`
# is served by Katib's Optuna suggestion service (TPESampler(multivariate=True)); plain `tpe` is hyperopt's.
KATIB_ALGORITHMS = {"random": "random", "bayesian": "multivariate-tpe"}
MAX_TRIALS = 100


def is_whole(value: object) -> bool:
    """A whole number, also as the float KFP hands an integer parameter on as (3.0)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) \
        and int(value) == value


@dataclass(frozen=True)
class SearchSpace:
    """Learning rate in [learning_rate_min, learning_rate_max] (log scale), hidden layers in
    [hidden_layers_min, hidden_layers_max] (whole numbers)."""

    learning_rate_min: float
    learning_rate_max: float
    hidden_layers_min: int
    hidden_layers_max: int

    def check(self) -> None:
        for name in ("learning_rate_min", "learning_rate_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not 0 < value < 1:
                raise InputError(f"{name} must be in (0, 1), got {value!r}")
        if self.learning_rate_min > self.learning_rate_max:
            raise InputError(f"learning_rate_min {self.learning_rate_min:g} is above learning_rate_max "
                             f"{self.learning_rate_max:g}")
        for name in ("hidden_layers_min", "hidden_layers_max"):
            value = getattr(self, name)
            if not is_whole(value) or value < 0:
                raise InputError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.hidden_layers_min > self.hidden_layers_max:
            raise InputError(f"hidden_layers_min {self.hidden_layers_min} is above hidden_layers_max "
                             f"{self.hidden_layers_max}")


@dataclass(frozen=True)
class SearchPlan:
    """What a random or bayesian search runs: the space, `trials` in all, `parallelism` at a time."""

    sweep: str
    space: SearchSpace
    trials: int
    parallelism: int
    seed: int

    def check(self) -> None:
        if self.sweep not in KATIB_ALGORITHMS:
            raise InputError(f"sweep must be one of {', '.join(SWEEPS)}, got {self.sweep!r}")
        self.space.check()
        if not is_whole(self.trials) or not 1 <= self.trials <= MAX_TRIALS:
            raise InputError(f"trials must be a whole number from 1 to {MAX_TRIALS}, got {self.trials!r}")
        if not is_whole(self.parallelism) or not 1 <= self.parallelism <= self.trials:
            raise InputError(f"parallelism must be a whole number from 1 to trials ({self.trials}), "
                             f"got {self.parallelism!r}")


def make_plan(sweep: str, learning_rate_min: float, learning_rate_max: float, hidden_layers_min: int,
              hidden_layers_max: int, trials: int, parallelism: int, seed: int) -> SearchPlan:
    """The checked plan of a search's parameters, whole numbers as ints (KFP may hand them on as 3.0)."""
    plan = SearchPlan(sweep, SearchSpace(learning_rate_min, learning_rate_max, hidden_layers_min, hidden_layers_max),
                      trials, parallelism, seed)
    plan.check()
    return SearchPlan(sweep, SearchSpace(float(learning_rate_min), float(learning_rate_max), int(hidden_layers_min),
                                         int(hidden_layers_max)), int(trials), int(parallelism), int(seed))


def check_sweep(sweep: str) -> None:
    if sweep not in SWEEPS:
        raise InputError(f"sweep must be one of {', '.join(SWEEPS)}, got {sweep!r}")


def startup_trials(trials: int) -> int:
    """Random trials TPE starts with before it models the results: half the budget (Optuna's
    default, 10, would leave a small budget all random)."""
    return max(1, trials // 2)


def make_sampler(plan: SearchPlan):
    """The seeded Optuna sampler of `plan.sweep`."""
    import optuna

    if plan.sweep == "random":
        return optuna.samplers.RandomSampler(seed=plan.seed)
    return optuna.samplers.TPESampler(seed=plan.seed, multivariate=True, n_startup_trials=startup_trials(plan.trials))


def suggest(asked, space: SearchSpace) -> Trial:
    """The trial an Optuna trial suggests in `space`."""
    return Trial(asked.suggest_float("learning_rate", space.learning_rate_min, space.learning_rate_max, log=True),
                 asked.suggest_int("hidden_layers", space.hidden_layers_min, space.hidden_layers_max))


def trial_label(number: int, trial: Trial) -> str:
    """A search trial's name: its number first (two trials may round to the same values)."""
    return f"trial{number:02d}-{trial.name}"


def run_search(plan: SearchPlan, train: Callable[[str, Trial], TrialResult],
               emit: Callable[[str], None] = print) -> list[TrialResult]:
    """Run `plan` with Optuna; `train(name, trial)` trains one trial. Returns every result, in order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the step prints its own line per trial
    study = optuna.create_study(direction="maximize", sampler=make_sampler(plan))
    results: list[TrialResult] = []
    while len(results) < plan.trials:
        batch = [study.ask() for _ in range(min(plan.parallelism, plan.trials - len(results)))]
        for asked in batch:
            trial = suggest(asked, plan.space)
            emit(f"{plan.sweep} search: trial {asked.number + 1}/{plan.trials}: learning rate "
                 f"{trial.learning_rate:.3g}, {trial.hidden_layers} hidden layer(s)")
            result = train(trial_label(asked.number, trial), trial)
            study.tell(asked, result.val_accuracy)
            results.append(result)
    return results
