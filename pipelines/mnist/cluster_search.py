"""The search step on a cluster: a random or bayesian search as a Katib Experiment.

The step's pod does not train. It stages the splits and a description of
the trials (`search.json`) in shared storage (`distributed_storage`, as the
multi-worker path does: pipelines.mnist.cluster_training), creates the
Experiment (components.cluster.katib) and follows it. Each trial is a Job in
the project's image running

    python3 -m pipelines.mnist.cluster_search trial <stage>/search.json
        --learning-rate=${trialParameters.learningRate} --hidden-layers=... --trial-name=...

which trains with the same code as a grid trial (pipelines.mnist.trials),
writes its SavedModel, TensorBoard logs and result under
`<stage>/trials/<trial>/`, and prints `val_accuracy=... val_loss=...` for
Katib's StdOut metrics collector: the objective is the validation accuracy
after the last epoch, as locally. When the experiment succeeds the step
reads every trial's result, copies the model of Katib's best trial
(`currentOptimalTrial`) into its own output and removes the staging
folder, whatever happened.

`python3 -m pipelines.mnist.cluster_search manifest ...` prints the
Experiment a search would create (`make search-manifest`).
"""

import argparse
import json
import sys
import uuid
from dataclasses import asdict, dataclass
from typing import Callable

from components.cluster import katib
from components.common.errors import InputError
from pipelines.mnist import search, sweep
from pipelines.mnist.cluster_training import JOB_TIMEOUT_S, check_storage, copy_tree
from pipelines.mnist.trials import TrialSettings

SEARCH_TIMEOUT_S = 6 * 3600
SEARCH_FILE = "search.json"
RESULT_FILE = "result.json"
OBJECTIVE = katib.Objective("val_accuracy", "maximize", ("val_loss",))
# Every trial runs the same code: the first failure most likely means all would fail, so it ends the search.
MAX_FAILED_TRIALS = 1


@dataclass(frozen=True)
class TrialJob:
    """What every trial pod reads (`search.json`): the shared settings and the staged splits."""

    settings: dict  # TrialSettings' fields, without the worker pod
    splits_path: str
    trials_dir: str

    def trial_dir(self, trial_name: str) -> str:
        return f"{self.trials_dir}/{trial_name}"


def experiment_for(name: str, namespace: str, plan: search.SearchPlan, image: str, stage: str,
                   worker_pod: dict | None = None) -> dict:
    """The Experiment of `plan`, its trials running this project's `image` on files in `stage`."""
    space = plan.space
    command = ["python3", "-m", "pipelines.mnist.cluster_search", "trial", f"{stage}/{SEARCH_FILE}",
               "--learning-rate=${trialParameters.learningRate}", "--hidden-layers=${trialParameters.hiddenLayers}",
               "--trial-name=${trialParameters.trialName}"]
    pod = worker_pod or {}
    resources = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
    if pod.get("gpus_per_worker"):
        resources["limits"]["nvidia.com/gpu"] = str(pod["gpus_per_worker"])
    job = katib.trial_job(image, command, resources, {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
                          pod.get("node_selector"), pod.get("tolerations"), int(JOB_TIMEOUT_S))
    settings = {"random_state": str(plan.seed)}
    if plan.sweep == "bayesian":
        settings["n_startup_trials"] = str(search.startup_trials(plan.trials))
    return katib.experiment_manifest(
        name, namespace, search.KATIB_ALGORITHMS[plan.sweep],
        [katib.Parameter("learning_rate", "double", space.learning_rate_min, space.learning_rate_max, log=True),
         katib.Parameter("hidden_layers", "int", space.hidden_layers_min, space.hidden_layers_max)],
        OBJECTIVE, job, {"learningRate": "learning_rate", "hiddenLayers": "hidden_layers",
                         "trialName": "${trialSpec.Name}"},
        plan.trials, plan.parallelism, MAX_FAILED_TRIALS, settings)


@dataclass(frozen=True)
class ClusterSearch:
    """What a finished search hands the step: every trial's result and history, and the best trial."""

    results: list[sweep.TrialResult]
    histories: dict[str, dict[str, list[float]]]
    best: sweep.TrialResult


def read_results(trials_dir: str) -> tuple[list[sweep.TrialResult], dict[str, dict[str, list[float]]]]:
    """The results the trials left under `trials_dir`, in the order of their names."""
    import tensorflow as tf

    results, histories = [], {}
    for path in sorted(tf.io.gfile.glob(f"{trials_dir}/*/{RESULT_FILE}")):
        with tf.io.gfile.GFile(path) as file:
            written = json.loads(file.read())
        result = sweep.TrialResult.from_metadata(written["result"], path)
        results.append(result)
        histories[result.name] = written["history"]
    return results, histories


def search_on_cluster(api, namespace: str, plan: search.SearchPlan, settings: TrialSettings, splits_path: str,
                      storage: str, image: str, export_dir: str, tensorboard_dir: str,
                      emit: Callable[[str], None] = print, timeout_s: float = SEARCH_TIMEOUT_S) -> ClusterSearch:
    """Run `plan` as a Katib Experiment; leave the best trial's model in `export_dir` and every
    trial's TensorBoard logs under `tensorboard_dir`."""
    import tensorflow as tf

    stage_root = check_storage(storage)
    name = f"mnist-search-{uuid.uuid4().hex[:10]}"
    stage = f"{stage_root}/{name}"
    job = TrialJob({**asdict(settings), "worker_pod": None, "workers": 1}, f"{stage}/splits.npz", f"{stage}/trials")
    try:
        tf.io.gfile.makedirs(stage)
        tf.io.gfile.copy(splits_path, job.splits_path, overwrite=True)
        with tf.io.gfile.GFile(f"{stage}/{SEARCH_FILE}", "w") as file:
            file.write(json.dumps(asdict(job)))
        emit(f"staging in {stage}")
        experiment = katib.run_experiment(api, experiment_for(name, namespace, plan, image, stage,
                                                              settings.worker_pod), timeout_s, emit)
        chosen = katib.best_trial(experiment)
        emit(f"Katib's best trial: {chosen.name} {chosen.parameters} {chosen.metrics}")
        results, histories = read_results(job.trials_dir)
        best = next((result for result in results if result.name == chosen.name), None)
        if best is None:
            raise katib.ExperimentError(f"the best trial {chosen.name} left no {RESULT_FILE} in {job.trials_dir}")
        copy_tree(f"{job.trial_dir(best.name)}/model", export_dir)
        for result in results:
            copy_tree(f"{job.trial_dir(result.name)}/tensorboard", f"{tensorboard_dir}/{result.name}")
        return ClusterSearch(results, histories, best)
    finally:
        if tf.io.gfile.exists(stage):
            tf.io.gfile.rmtree(stage)


def run_trial(search_file: str, learning_rate: float, hidden_layers: int, trial_name: str) -> sweep.TrialResult:
    """One Katib trial in its pod: train, leave model, logs and result in the stage, print the metrics."""
    import tensorflow as tf

    from pipelines.mnist import trials

    with tf.io.gfile.GFile(search_file) as file:
        job = TrialJob(**json.loads(file.read()))
    trial = sweep.parse_grid_point([learning_rate, hidden_layers], "the trial's parameters")
    folder = job.trial_dir(trial_name)
    result, history = trials.train_trial_model(trial_name, trial, TrialSettings(**job.settings), job.splits_path,
                                               f"{folder}/model", f"{folder}/tensorboard",
                                               lambda line: print(line, flush=True))
    with tf.io.gfile.GFile(f"{folder}/{RESULT_FILE}", "w") as file:
        file.write(json.dumps({"result": result.as_metadata(), "history": sweep.epoch_history(history)}))
    # What Katib's StdOut collector reads (its default filter: name=value).
    print(f"{OBJECTIVE.metric}={result.val_accuracy:.6f} val_loss={result.val_loss:.6f}", flush=True)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.mnist.cluster_search")
    commands = parser.add_subparsers(dest="command", required=True)
    trial = commands.add_parser("trial", help="train one Katib trial (in its pod)")
    trial.add_argument("search_file")
    trial.add_argument("--learning-rate", type=float, required=True)
    trial.add_argument("--hidden-layers", type=int, required=True)
    trial.add_argument("--trial-name", required=True)
    manifest = commands.add_parser("manifest", help="print the Experiment of a search as YAML")
    manifest.add_argument("--namespace", default="kubeflow")
    manifest.add_argument("--image", required=True)
    manifest.add_argument("--storage", default="gs://BUCKET/kfp-ml-pipelines/staging")
    manifest.add_argument("--sweep", default="bayesian", choices=sorted(search.KATIB_ALGORITHMS))
    manifest.add_argument("--learning-rate-range", type=float, nargs=2, default=(1e-4, 1e-1))
    manifest.add_argument("--hidden-layers-range", type=int, nargs=2, default=(1, 3))
    manifest.add_argument("--trials", type=int, default=12)
    manifest.add_argument("--parallelism", type=int, default=3)
    manifest.add_argument("--seed", type=int, default=42)
    return parser


def main(argv: list[str]) -> int:
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "trial":
            run_trial(arguments.search_file, arguments.learning_rate, arguments.hidden_layers, arguments.trial_name)
            return 0
        import yaml

        plan = search.make_plan(arguments.sweep, *arguments.learning_rate_range, *arguments.hidden_layers_range,
                                arguments.trials, arguments.parallelism, arguments.seed)
        stage = f"{check_storage(arguments.storage)}/mnist-search-example"
        print(yaml.safe_dump(experiment_for("mnist-search-example", arguments.namespace, plan, arguments.image,
                                            stage), sort_keys=False), end="")
    except InputError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
