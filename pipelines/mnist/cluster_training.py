"""The train step on a cluster with workers > 1: the same worker job, run by a TrainJob or a TFJob.

The step's pod does not train. It chooses the engine the cluster offers
(components.cluster.engine: a Trainer v2 TrainJob, components.cluster.trainjob, or
a training-operator TFJob, components.cluster.tfjob), failing in one line before
anything is staged when there is none. Then it stages what the workers need
in shared storage, starts the job, whose pods run
`python3 -m pipelines.mnist.distributed <job.json>` in the project image,
waits for it, copies the chief's SavedModel and TensorBoard logs into the
step's output artifacts and removes the staging folder, whatever happened.

Shared storage is the `distributed_storage` parameter: a `gs://bucket/path`
folder (any URI TensorFlow's file system reads and writes). The pods reach it
with the node's or the namespace's Google credentials (Workload Identity on
GKE). Object storage rather than a claim: every replica, on any node, and the
step itself can reach it at the same time, where a ReadWriteOnce claim
attaches to one node, and the pipeline's other tasks keep their own claims.
"""

import json
import uuid
from typing import Callable

from components.cluster.engine import choose_engine
from components.cluster.tfjob import run_tfjob, tfjob_manifest
from components.cluster.trainjob import run_trainjob, trainjob_manifest
from components.common.errors import InputError
from components.settings.gpu import GpuSettings
from pipelines.mnist.distributed import WorkerJob
from pipelines.mnist.models import TrainConfig

JOB_TIMEOUT_S = 2 * 3600  # the runtime's activeDeadlineSeconds in deploy/trainer-tensorflow-runtime.yaml


def worker_pod_settings(image: str, gpu: GpuSettings | None) -> dict:
    """What each worker pod runs on, fixed when the pipeline is compiled (a step input)."""
    settings: dict = {"image": image, "gpus_per_worker": 0, "node_selector": {}, "tolerations": []}
    if gpu:
        settings["gpus_per_worker"] = gpu.count
        if gpu.node_selector:
            settings["node_selector"] = {gpu.node_selector[0]: gpu.node_selector[1]}
        if gpu.toleration:
            settings["tolerations"] = [{"key": gpu.toleration[0], "operator": "Exists",
                                        "effect": gpu.toleration[1]}]
    return settings


def check_storage(storage: str) -> str:
    """The staging root, refusing what the replicas could not all reach."""
    storage = storage.strip().rstrip("/")
    if "://" not in storage:
        raise InputError(f"distributed_storage '{storage}': workers > 1 on a cluster need a folder every "
                         f"worker pod can reach, e.g. gs://bucket/kfp-ml-pipelines/staging")
    return storage


def copy_tree(source: str, destination: str) -> None:
    """Copy a folder between any two places TensorFlow's file system knows (local, gs://)."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(source):
        raise FileNotFoundError(f"{source} was not written")
    for folder, _, files in tf.io.gfile.walk(source):
        target = destination + folder[len(source):]
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(f"{folder}/{name}", f"{target}/{name}", overwrite=True)


def train_on_cluster(api, namespace: str, config: TrainConfig, splits_path: str, export_dir: str,
                     tensorboard_dir: str, version_tag: str, workers: int, storage: str, worker_pod: dict,
                     engine: str = "auto", emit: Callable[[str], None] = print,
                     timeout_s: float = JOB_TIMEOUT_S) -> dict:
    """Train on a `workers`-node TrainJob or TFJob (`engine`); leave the model and logs locally;
    return the history."""
    import tensorflow as tf

    stage_root = check_storage(storage)
    engine = choose_engine(api, namespace, engine, emit)
    job_name = f"mnist-train-{uuid.uuid4().hex[:10]}"
    stage = f"{stage_root}/{job_name}"
    job = WorkerJob(config.__dict__, f"{stage}/splits.npz", f"{stage}/model", f"{stage}/tensorboard",
                    f"{stage}/history.json", version_tag)
    command = ["python3", "-m", "pipelines.mnist.distributed", f"{stage}/job.json"]
    env = {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    gpus = int(worker_pod.get("gpus_per_worker", 0))
    try:
        tf.io.gfile.makedirs(stage)
        tf.io.gfile.copy(splits_path, job.splits_path, overwrite=True)
        job.save(f"{stage}/job.json")
        emit(f"staging in {stage}")
        if engine == "trainjob":
            if worker_pod.get("node_selector") or worker_pod.get("tolerations"):
                emit("TrainJob: the GPU node selector and tolerations come from the TrainingRuntime, not the job")
            run_trainjob(api, trainjob_manifest(job_name, namespace, worker_pod["image"], command, workers, gpus, env),
                         timeout_s, emit)
        else:
            run_tfjob(api, tfjob_manifest(job_name, namespace, worker_pod["image"], command, workers, int(timeout_s),
                                          gpus_per_worker=gpus, node_selector=worker_pod.get("node_selector"),
                                          tolerations=worker_pod.get("tolerations"), env=env),
                      timeout_s, emit)
        copy_tree(job.export_dir, export_dir)
        copy_tree(job.tensorboard_dir, tensorboard_dir)
        with tf.io.gfile.GFile(job.history_path) as file:
            return json.loads(file.read())
    finally:
        if tf.io.gfile.exists(stage):
            tf.io.gfile.rmtree(stage)
