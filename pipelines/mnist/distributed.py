"""Training the CNN on one process or many: the strategy, the training loop, a worker's job.

Every mnist training, single-process or not, runs the same loop, so that the
number of workers changes the speed, not what is learned (only the dropout
masks differ: each replica draws its own):

- the strategy comes from the process's surroundings: `TF_CONFIG` naming more
  than one worker -> `MultiWorkerMirroredStrategy` (each worker then also uses
  all its local GPUs); one process with several GPUs -> `MirroredStrategy`;
  otherwise the default strategy;
- every worker builds the same shuffled dataset (same seed) of *global*
  batches and `experimental_distribute_dataset` gives each replica its slice of
  every batch (auto-shard policy DATA), so the gradient each step, all-reduced
  and divided by the global batch, is the single-process gradient;
- worker 0 (the chief) writes TensorBoard logs and the history and exports the
  SavedModel; the others only train.

Why a custom loop on Keras 3 and not tf-keras: Keras 3's `model.fit` under
`MultiWorkerMirroredStrategy` fails with "Attempt to convert a value
(PerReplica...) to a Tensor" (TF 2.21, Keras 3.15). The documented way around
it, `tf-keras` with `TF_USE_LEGACY_KERAS=1`, would put a second Keras, frozen
at the Keras 2 API, into the image beside the Keras 3 that every other step
and the SavedModel export use, and switch between them through an environment
variable that must be set before TensorFlow is first imported. A custom loop
with `strategy.run` is a page of code, works across processes (both workers
end with the same loss) and keeps one Keras.

Run as a worker (what the local launcher and the TFJob replicas do):
    python -m pipelines.mnist.distributed <job.json>
where job.json holds a `WorkerJob`; its paths may be local or `gs://`.
"""

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from components.common.errors import InputError
from pipelines.mnist.models import TrainConfig, build_cnn, export_serving_model, make_optimizer
from pipelines.mnist.preprocess import Splits, load_splits

HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class WorkerJob:
    """What each worker needs: the same file for every worker of a training."""

    config: dict  # TrainConfig's fields
    splits_path: str
    export_dir: str  # the chief exports the SavedModel here
    tensorboard_dir: str
    history_path: str  # the chief writes the per-epoch history here (JSON)
    version_tag: str
    threads: int = 0  # TensorFlow threads per worker (0: TensorFlow's default, all cores)

    def save(self, path: str) -> None:
        with _text_file(path, "w") as file:
            file.write(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: str) -> "WorkerJob":
        with _text_file(path) as file:
            return cls(**json.loads(file.read()))


def _text_file(path: str, mode: str = "r"):
    """A local file, or a URI through TensorFlow's file system (gs://): the launcher that writes
    the job file locally never imports TensorFlow, its workers do."""
    if "://" not in path:
        return open(path, mode, encoding="utf-8")
    import tensorflow as tf

    return tf.io.gfile.GFile(path, mode)


def cluster_spec() -> tuple[int, int]:
    """(number of workers, this worker's index) from TF_CONFIG; (1, 0) without it."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return 1, 0
    try:
        tf_config = json.loads(text)
        workers = len(tf_config["cluster"]["worker"]) + len(tf_config["cluster"].get("chief", []))
        task = tf_config["task"]
        index = task["index"] + (len(tf_config["cluster"].get("chief", [])) if task["type"] == "worker" else 0)
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"TF_CONFIG is not a TensorFlow cluster description ({error}): {text[:200]}") from error
    return workers, index


def choose_strategy():
    """MultiWorkerMirrored across processes, Mirrored across local GPUs, else the default."""
    import tensorflow as tf

    workers, _ = cluster_spec()
    if workers > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def train_with_strategy(config: TrainConfig, splits: Splits, strategy, tensorboard_dir: str | None,
                        progress: Callable[[str], None] = print):
    """Train on `splits.train` with `strategy`; validate after every epoch.

    Only whole global batches are trained on (each epoch reshuffles, so a
    different remainder is left out): every replica then takes the same number
    of steps, which the all-reduce needs. Returns (model, history) with
    history = {"loss", "accuracy", "val_loss", "val_accuracy", "examples_per_second"}.
    """
    import keras
    import tensorflow as tf

    config.check()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    train = splits.train
    steps_per_epoch = len(train.labels) // config.batch_size
    if steps_per_epoch == 0:
        raise InputError(f"batch_size {config.batch_size} is larger than the {len(train.labels)} training images")
    with strategy.scope():
        model = build_cnn(config)
        optimizer = make_optimizer(config, steps_per_epoch)
        optimizer.build(model.trainable_variables)

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = (tf.data.Dataset.from_tensor_slices((train.images, train.labels.astype(np.int64)))
               .shuffle(len(train.labels), seed=config.seed, reshuffle_each_iteration=True)
               .batch(config.batch_size, drop_remainder=True).with_options(options))
    batches = strategy.experimental_distribute_dataset(dataset)

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            per_image = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            loss = tf.nn.compute_average_loss(per_image, global_batch_size=config.batch_size)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probabilities, axis=1), labels), tf.float32))
        return loss, correct

    @tf.function
    def train_step(images, labels):
        loss, correct = strategy.run(replica_step, args=(images, labels))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

    writers = ({part: tf.summary.create_file_writer(f"{tensorboard_dir}/{part}") for part in ("train", "validation")}
               if tensorboard_dir else {})
    history: dict[str, list[float]] = {name: [] for name in
                                       ("loss", "accuracy", "val_loss", "val_accuracy", "examples_per_second")}
    trained_per_epoch = steps_per_epoch * config.batch_size
    for epoch in range(config.epochs):
        started = time.monotonic()
        total_loss = total_correct = 0.0
        for images, labels in batches:
            loss, correct = train_step(images, labels)
            total_loss += float(loss)
            total_correct += float(correct)
        seconds = time.monotonic() - started
        # Every worker holds the same weights: each validates locally, no collective needed.
        val_loss, val_accuracy = evaluate_model(model, splits.validation.images, splits.validation.labels)
        figures = {"loss": total_loss / steps_per_epoch, "accuracy": total_correct / trained_per_epoch,
                   "val_loss": val_loss, "val_accuracy": val_accuracy,
                   "examples_per_second": trained_per_epoch / seconds}
        for name, value in figures.items():
            history[name].append(float(value))
        for part, names in (("train", ("loss", "accuracy")), ("validation", ("val_loss", "val_accuracy"))):
            if writers:
                with writers[part].as_default(step=epoch):
                    for name in names:
                        tf.summary.scalar(name.removeprefix("val_"), figures[name])
        progress(f"epoch {epoch + 1}/{config.epochs}: loss {figures['loss']:.4f} accuracy "
                 f"{figures['accuracy']:.4f} val_accuracy {val_accuracy:.4f} "
                 f"({figures['examples_per_second']:,.0f} images/s)")
    for writer in writers.values():
        writer.close()
    return model, history


def evaluate_model(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on the images, in inference mode."""
    import keras

    losses, correct = [], 0
    for start in range(0, len(labels), batch_size):
        probabilities = np.asarray(model(images[start:start + batch_size], training=False))
        batch_labels = labels[start:start + batch_size]
        losses.append(np.asarray(keras.losses.sparse_categorical_crossentropy(batch_labels, probabilities)))
        correct += int((probabilities.argmax(axis=1) == batch_labels).sum())
    return float(np.concatenate(losses).mean()), correct / len(labels)


def read_splits(path: str) -> Splits:
    """The splits from a local path or any URI TensorFlow's file system reads (gs://)."""
    if "://" not in path:
        return load_splits(path)
    import io

    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as file:
        return load_splits(io.BytesIO(file.read()))


def run_job(job: WorkerJob, progress: Callable[[str], None] = print) -> dict | None:
    """Train as this process's part of `job`; the chief exports and returns the history."""
    import tensorflow as tf

    if job.threads:
        tf.config.threading.set_intra_op_parallelism_threads(job.threads)
        tf.config.threading.set_inter_op_parallelism_threads(job.threads)
    workers, index = cluster_spec()
    strategy = choose_strategy()
    chief = index == 0
    config = TrainConfig(**job.config)
    progress(f"worker {index} of {workers}: {type(strategy).__name__} with "
             f"{strategy.num_replicas_in_sync} replica(s) in sync, global batch {config.batch_size}")
    model, history = train_with_strategy(config, read_splits(job.splits_path), strategy,
                                         job.tensorboard_dir if chief else None,
                                         progress if chief else lambda line: None)
    if chief:
        # A plain copy of the trained weights, outside the strategy: what TF-Serving
        # loads must not depend on how many workers trained it.
        plain = build_cnn(config)
        plain.set_weights(model.get_weights())
        export_serving_model(plain, job.export_dir, job.version_tag)
        with _text_file(job.history_path, "w") as file:
            file.write(json.dumps(history))
    if workers > 1:
        # The others wait here for the chief's export: a worker that left early
        # would be reported to the chief as crashed (missed heartbeats).
        wait_for_every_worker(strategy)
    return history if chief else None


def wait_for_every_worker(strategy) -> None:
    """A barrier: one all-reduce that every worker must reach."""
    import tensorflow as tf

    @tf.function
    def barrier():
        ones = strategy.run(lambda: tf.constant(1.0))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

    barrier()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pipelines.mnist.distributed <job.json>", file=sys.stderr)
        return 2
    try:
        run_job(WorkerJob.load(argv[0]), progress=lambda line: print(line, flush=True))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
