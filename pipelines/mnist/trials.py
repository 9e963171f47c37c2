"""One trial's training, shared by the grid's train step and the search step.

A trial trains the CNN with one (learning rate, hidden layers) point on
`workers` workers: in this process, as local processes, or as a TrainJob or
TFJob on a cluster (pipelines.mnist.launcher, pipelines.mnist.cluster_training),
and leaves its SavedModel and TensorBoard logs where it is told. What it
reports is a sweep.TrialResult and its per-epoch history, which go into the
model's metadata and, when tracking is on, into an MLflow run.
"""

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipelines.mnist import sweep
from pipelines.mnist.models import TrainConfig


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a sweep shares (the step's inputs)."""

    hidden_units: int
    epochs: int
    batch_size: int
    seed: int
    workers: int = 1
    version_tag: str = ""
    distributed_storage: str = ""
    distributed_engine: str = "auto"
    worker_pod: dict | None = None

    def config(self, trial: sweep.Trial) -> TrainConfig:
        return TrainConfig(trial.learning_rate, trial.hidden_layers, self.hidden_units, self.epochs,
                           self.batch_size, self.seed)


def train_trial_model(name: str, trial: sweep.Trial, settings: TrialSettings, splits_path: str, export_dir: str,
                      tensorboard_dir: str, emit: Callable[[str], None] = print) -> tuple[sweep.TrialResult, dict]:
    """Train one trial; its SavedModel lands in `export_dir`, its logs in `tensorboard_dir`.
    Returns (its result, its per-epoch history)."""
    from components.cluster import api as kube_api
    from components.cluster.engine import check_engine
    from pipelines.mnist.distributed import HISTORY_FILE, WorkerJob
    from pipelines.mnist.launcher import check_workers, train_locally

    config = settings.config(trial)
    config.check()
    check_workers(settings.workers)
    check_engine(settings.distributed_engine)
    # Trials can run at the same time (also in kfp.local): name the trial on every line.
    prefixed = lambda line: emit(f"{name}: {line}")  # noqa: E731
    emit(f"trial {name} on {settings.workers} worker(s): {config}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        if settings.workers > 1 and kube_api.in_cluster():
            from pipelines.mnist.cluster_training import train_on_cluster

            history = train_on_cluster(kube_api.kube_api_client(), kube_api.pod_namespace(), config, splits_path,
                                       export_dir, tensorboard_dir, settings.version_tag, settings.workers,
                                       settings.distributed_storage, settings.worker_pod or {},
                                       settings.distributed_engine, prefixed)
        else:
            job = WorkerJob(config.__dict__, splits_path, export_dir, tensorboard_dir,
                            str(Path(scratch) / HISTORY_FILE), settings.version_tag)
            history = train_locally(job, settings.workers, Path(scratch), prefixed)
    result = sweep.TrialResult(name, trial.learning_rate, trial.hidden_layers, settings.hidden_units,
                               settings.epochs, history["val_accuracy"][-1], history["val_loss"][-1],
                               time.monotonic() - started, settings.workers)
    emit(f"trial {name}: val_accuracy {result.val_accuracy:.4f} in {result.train_seconds:.1f}s "
         f"({history['examples_per_second'][-1]:,.0f} images/s in the last epoch)")
    return result, history


def model_metadata(result: sweep.TrialResult, history: dict, model_path: str) -> dict:
    """A trial model's metadata: its result, its per-epoch history and its content hash."""
    from components.common import history as trained
    from components.common.saved_model import content_hash

    return {**result.as_metadata(), **trained.as_metadata(sweep.epoch_history(history)),
            "content_hash": content_hash(model_path)}


def track_trial(run, result: sweep.TrialResult, history: dict, model_uri: str | None) -> None:
    """A trial in its MLflow run: named after it, its point, its figures per epoch (and the URI
    of its model, when it is kept)."""
    run.set_name(result.name)  # the UI compares trials by these names
    run.log_params({"learning_rate": result.learning_rate, "hidden_layers": result.hidden_layers})
    for epoch, figures in enumerate(zip(*history.values(), strict=True), start=1):
        run.log_metrics(dict(zip(history, figures, strict=True)), step=epoch)
    run.set_tags({"trial": result.name, "model_uri": model_uri, "model_framework": "tensorflow"})
