"""Distributed TensorFlow training on a cluster: a Kubeflow TFJob, from creation to cleanup.

TFJob (`kubeflow.org/v1`) comes from Kubeflow's training-operator 1.9, which
Kubeflow ships up to 26.03.x; clusters with Kubeflow Trainer v2 instead run a
TrainJob (components.trainjob; components.training_engine chooses). The
operator starts one pod per replica, named `<job>-worker-<i>`, and gives each
a `TF_CONFIG` naming all of them; with Worker replicas only, worker 0 is the
chief and the job succeeds when it does.

The step that runs a TFJob (see `run_tfjob`) creates it, polls its status
until it succeeds, fails or runs past a time limit, prints every change of
state, then prints the chief's last log lines (and those of a failed worker)
and deletes the job, which deletes its pods, whatever happened. It talks to
the API with the deployer's credentials (`components.kube_api`), whose
Role `kfp-ml-tfjob` in deploy/rbac.yaml allows exactly this: create, get and delete
`tfjobs`, and get `pods/log`.
"""

import time
from typing import Callable

from components import kube_api
from components.errors import TrainingError
from components.kube_api import FIELD_MANAGER, labels_of

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "tfjobs"
CONTAINER = "tensorflow"  # the container name the training-operator gives TF_CONFIG to
INSTALL_HINT = ("the TFJob resource (kubeflow.org/v1) is not installed in this cluster: install Kubeflow "
                "training-operator v1.9 (kubectl apply --server-side -k "
                "\"github.com/kubeflow/training-operator.git/manifests/overlays/standalone?ref=v1.9.0\")")
LOG_LINES = 40
ORPHAN_TTL_S = 3600


class TFJobError(TrainingError):
    """The cluster refused the TFJob, or the job failed or did not finish in time."""


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


def _api_error(what: str, error) -> TFJobError:
    import json

    try:
        message = json.loads(error.body).get("message", error.reason)
    except (TypeError, ValueError, AttributeError):
        message = error.reason
    if error.status == 404 and "could not find the requested resource" in str(message):
        return TFJobError(INSTALL_HINT)
    hint = " (grant it with deploy/rbac.yaml: kubectl apply -f deploy/rbac.yaml)" if error.status == 403 else ""
    return TFJobError(f"cannot {what}: HTTP {error.status} {message}{hint}")


def create(api, manifest: dict) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    meta = manifest["metadata"]
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, meta["namespace"], PLURAL, manifest, field_manager=FIELD_MANAGER,
            _request_timeout=30)
    except ApiException as error:
        raise _api_error(f"create TFJob {meta['name']} in {meta['namespace']}", error) from error


def state(job: dict) -> tuple[str, str]:
    """(latest condition type, its message); ("Pending", "") before the operator has seen it."""
    conditions = [c for c in job.get("status", {}).get("conditions", []) if c.get("status") == "True"]
    if not conditions:
        return "Pending", ""
    latest = conditions[-1]
    return latest["type"], latest.get("message", "")


def wait(api, name: str, namespace: str, timeout_s: float, emit: Callable[[str], None] = print) -> dict:
    """Poll until the job succeeds; TFJobError when it fails or `timeout_s` passes."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    objects = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout_s
    shown = None
    while True:
        try:
            job = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                       _request_timeout=30)
        except ApiException as error:
            raise _api_error(f"read TFJob {name} in {namespace}", error) from error
        current, message = state(job)
        replicas = job.get("status", {}).get("replicaStatuses", {}).get("Worker", {})
        line = f"TFJob {name}: {current}" + (f" ({message})" if message else "") + \
            (f"; workers {replicas}" if replicas else "")
        if line != shown:
            emit(line)
            shown = line
        if current == "Succeeded":
            return job
        if current == "Failed":
            raise TFJobError(f"TFJob {name} failed: {message or 'no reason given'}")
        if time.monotonic() >= deadline:
            raise TFJobError(f"TFJob {name} did not finish in {timeout_s:.0f}s (last state {current}): see "
                             f"kubectl -n {namespace} describe tfjob {name}")
        time.sleep(kube_api.POLL_INTERVAL_S)  # read when called: tests shorten it


def worker_log(api, job_name: str, namespace: str, index: int, lines: int = LOG_LINES) -> str:
    """The last `lines` lines of worker `index`, or why they cannot be read."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    pod = worker_pod_name(job_name, index)
    try:
        return client.CoreV1Api(api).read_namespaced_pod_log(pod, namespace, container=CONTAINER,
                                                             tail_lines=lines, _request_timeout=30)
    except ApiException as error:
        return f"(no log from {pod}: HTTP {error.status} {error.reason})"


def delete(api, name: str, namespace: str) -> None:
    """Delete the job and, in the background, its pods; a job already gone is fine."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, body=client.V1DeleteOptions(propagation_policy="Background"),
            _request_timeout=30)
    except ApiException as error:
        if error.status != 404:
            raise _api_error(f"delete TFJob {name} in {namespace}", error) from error


def run_tfjob(api, manifest: dict, timeout_s: float, emit: Callable[[str], None] = print) -> None:
    """Create the job, wait for it, show the chief's log (and failed workers'), always delete it."""
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    workers = manifest["spec"]["tfReplicaSpecs"]["Worker"]["replicas"]
    create(api, manifest)
    emit(f"TFJob {name} created in {namespace} with {workers} workers; all logs: "
         f"kubectl -n {namespace} logs -l training.kubeflow.org/job-name={name} --prefix")
    outcome: Exception | None = None
    try:
        wait(api, name, namespace, timeout_s, emit)
    except TFJobError as error:
        outcome = error
    finally:
        indexes = [0] if outcome is None else list(range(min(workers, 4)))
        for index in indexes:
            emit(f"--- last lines of {worker_pod_name(name, index)} ---")
            emit(worker_log(api, name, namespace, index).rstrip())
        delete(api, name, namespace)
        emit(f"TFJob {name} deleted")
    if outcome:
        raise outcome
