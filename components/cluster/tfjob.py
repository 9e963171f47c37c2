"""Distributed TensorFlow training on a cluster: a Kubeflow TFJob, from creation to cleanup.

TFJob (`kubeflow.org/v1`) comes from Kubeflow's training-operator 1.9, which
Kubeflow ships up to 26.03.x; clusters with Kubeflow Trainer v2 instead run a
TrainJob (components.cluster.trainjob; components.cluster.engine chooses). The
operator starts one pod per replica, named `<job>-worker-<i>`, and gives each
a `TF_CONFIG` naming all of them; with Worker replicas only, worker 0 is the
chief and the job succeeds when it does.

The step that runs a TFJob (see `run_tfjob`) creates it, polls its status
until it succeeds, fails or runs past a time limit, prints every change of
state, then prints the chief's last log lines (and those of a failed worker)
and deletes the job, which deletes its pods, whatever happened. It talks to
the API with the deployer's credentials (`components.cluster.api`), whose
Role `kfp-ml-tfjob` in deploy/rbac.yaml allows exactly this: create, get and delete
`tfjobs`, and get `pods/log`.
"""

from typing import Callable

from components.cluster.api import labels_of
from components.cluster.jobs import JobResource, follow, pod_log
from components.common.errors import TrainingError

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "tfjobs"
CONTAINER = "tensorflow"  # the container name the training-operator gives TF_CONFIG to
INSTALL_HINT = ("the TFJob resource (kubeflow.org/v1) is not installed in this cluster: install Kubeflow "
                "training-operator v1.9 (kubectl apply --server-side -k "
                "\"github.com/kubeflow/training-operator.git/manifests/overlays/standalone?ref=v1.9.0\")")
LOG_LINES = 40
ORPHAN_TTL_S = 3600


class TFJobError(TrainingError):
    """The cluster refused the TFJob, or the job failed or did not finish in time."""


RESOURCE = JobResource(GROUP, VERSION, PLURAL, "TFJob", TFJobError, INSTALL_HINT)

def tfjob_manifest(name: str, namespace: str, image: str, command: list[str], workers: int,
                   timeout_s: int, gpus_per_worker: int = 0, node_selector: dict | None = None,
                   tolerations: list[dict] | None = None, env: dict[str, str] | None = None) -> dict:
    """A TFJob of `workers` Worker replicas running `command` in `image`.

    Pods are never restarted (a failed worker fails the job: a restarted
    worker would rejoin an all-reduce the others have left) and are kept
    until the job is deleted, so their logs can still be read.
    """
    resources = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
    if gpus_per_worker:
        resources["limits"]["nvidia.com/gpu"] = str(gpus_per_worker)
    container = {"name": CONTAINER, "image": image, "command": command, "resources": resources,
                 "env": [{"name": key, "value": value} for key, value in sorted((env or {}).items())]}
    pod_spec = {"containers": [container], "restartPolicy": "Never"}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TFJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels_of(name, "tfjob")},
        "spec": {
            # Bounded even if the step that waits for it is killed: the operator stops
            # it at the deadline and removes it an hour after it finished.
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 0, "activeDeadlineSeconds": timeout_s,
                          "ttlSecondsAfterFinished": ORPHAN_TTL_S},
            "tfReplicaSpecs": {"Worker": {"replicas": workers, "restartPolicy": "Never",
                                          "template": {"metadata": {"labels": labels_of(name, "tfjob")},
                                                       "spec": pod_spec}}},
        },
    }


def worker_pod_name(job_name: str, index: int) -> str:
    return f"{job_name}-worker-{index}"


def create(api, manifest: dict) -> None:
    RESOURCE.create(api, manifest)


def wait(api, name: str, namespace: str, timeout_s: float, emit: Callable[[str], None] = print) -> dict:
    """Poll until the job succeeds; TFJobError when it fails or `timeout_s` passes."""
    def workers(job: dict) -> str:
        replicas = job.get("status", {}).get("replicaStatuses", {}).get("Worker", {})
        return f"workers {replicas}" if replicas else ""

    return RESOURCE.wait(api, name, namespace, timeout_s, "Succeeded", workers, emit)


def worker_log(api, job_name: str, namespace: str, index: int, lines: int = LOG_LINES) -> str:
    """The last `lines` lines of worker `index`, or why they cannot be read."""
    return pod_log(api, worker_pod_name(job_name, index), namespace, CONTAINER, lines)


def delete(api, name: str, namespace: str) -> None:
    """Delete the job and, in the background, its pods; a job already gone is fine."""
    RESOURCE.delete(api, name, namespace)


def run_tfjob(api, manifest: dict, timeout_s: float, emit: Callable[[str], None] = print) -> None:
    """Create the job, wait for it, show the chief's log (and failed workers'), always delete it."""
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    workers = manifest["spec"]["tfReplicaSpecs"]["Worker"]["replicas"]
    create(api, manifest)
    emit(f"TFJob {name} created in {namespace} with {workers} workers; all logs: "
         f"kubectl -n {namespace} logs -l training.kubeflow.org/job-name={name} --prefix")
    follow("TFJob", name, lambda: wait(api, name, namespace, timeout_s, emit), TFJobError,
           lambda succeeded: [(worker_pod_name(name, index),
                               lambda index=index: worker_log(api, name, namespace, index))
                              for index in ([0] if succeeded else range(min(workers, 4)))],
           lambda: delete(api, name, namespace), emit)
