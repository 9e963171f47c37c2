"""Distributed TensorFlow training on Kubeflow Trainer v2: a TrainJob, from creation to cleanup.

Trainer v2 (`trainer.kubeflow.org/v1alpha1`) runs a TrainJob on a runtime:
here the TrainingRuntime `tensorflow-distributed` of
deploy/trainer-tensorflow-runtime.yaml, on the plain ML policy. Trainer makes
it a JobSet with one Indexed Job of `numNodes` pods; the runtime's command
gives each pod a `TF_CONFIG` built from the JobSet's stable host names
(`<job>-node-0-<i>.<job>`) and runs the TrainJob's args. Node 0 is the chief;
the job completes when every node has.

The TrainJob uses only fields that Trainer v2.1 (Kubeflow 26.03) and v2.3
both accept (runtimeRef, and the trainer's image, args, env, numNodes and
resourcesPerNode): the pod override fields differ between them
(podTemplateOverrides, then runtimePatches), so a GPU node selector or
toleration belongs in the runtime.

The step that runs a TrainJob (`run_trainjob`) creates it, polls its status
until it completes, fails or runs past a time limit, prints every change,
then prints the chief's last log lines (every node's when it failed) and
deletes the job, which deletes its JobSet and pods, whatever happened. The
pods' names end in a random suffix, so finding them takes a list by the
JobSet's label: the Role `kfp-ml-trainjob` in deploy/rbac.yaml allows
exactly create, get and delete of `trainjobs`, get of `trainingruntimes`,
list of `pods` and get of `pods/log`.
"""

from typing import Callable

from components.cluster.api import labels_of
from components.cluster.jobs import JobResource, follow, pod_log
from components.common.errors import TrainingError

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
RUNTIME_KIND, RUNTIME_PLURAL, RUNTIME_NAME = "TrainingRuntime", "trainingruntimes", "tensorflow-distributed"
CONTAINER = "node"  # the container Trainer gives the TrainJob's image, args, env and resources
NUM_NODES_ENV = "NUM_NODES"  # the runtime builds TF_CONFIG for this many nodes
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
INSTALL_HINT = ("the TrainJob resource (trainer.kubeflow.org/v1alpha1) is not installed in this cluster: install "
                "Kubeflow Trainer v2 (kubectl apply --server-side -k "
                "\"github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=v2.3.0\")")
LOG_LINES = 40


class TrainJobError(TrainingError):
    """The cluster refused the TrainJob, or the job failed or did not finish in time."""


class RuntimeMissing(TrainJobError):
    """Trainer v2 is installed, the TensorFlow TrainingRuntime is not."""


RESOURCE = JobResource(GROUP, VERSION, PLURAL, "TrainJob", TrainJobError, INSTALL_HINT)


def runtime_hint(namespace: str) -> str:
    return (f"the TrainingRuntime {RUNTIME_NAME} is not installed in namespace {namespace}: install it with "
            f"make trainer-runtime NAMESPACE={namespace} (deploy/trainer-tensorflow-runtime.yaml)")


def trainjob_manifest(name: str, namespace: str, image: str, args: list[str], workers: int,
                      gpus_per_worker: int = 0, env: dict[str, str] | None = None) -> dict:
    """A TrainJob of `workers` nodes running `args` in `image` on the TensorFlow runtime."""
    resources = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
    if gpus_per_worker:
        resources["limits"]["nvidia.com/gpu"] = str(gpus_per_worker)
    env = {**(env or {}), NUM_NODES_ENV: str(workers)}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels_of(name, "trainjob")},
        "spec": {
            "runtimeRef": {"name": RUNTIME_NAME, "apiGroup": GROUP, "kind": RUNTIME_KIND},
            "trainer": {"image": image, "args": args, "numNodes": workers, "resourcesPerNode": resources,
                        "env": [{"name": key, "value": value} for key, value in sorted(env.items())]},
        },
    }


def check_runtime(api, namespace: str) -> None:
    """RuntimeMissing (one line, how to install it) unless the TensorFlow runtime is in `namespace`."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, RUNTIME_PLURAL, RUNTIME_NAME, _request_timeout=30)
    except ApiException as error:
        if error.status == 404:
            raise RuntimeMissing(runtime_hint(namespace)) from error
        raise RESOURCE.api_error(f"read TrainingRuntime {RUNTIME_NAME} in {namespace}", error) from error


def create(api, manifest: dict) -> None:
    RESOURCE.create(api, manifest)


def _node_counts(job: dict) -> str:
    for status in job.get("status", {}).get("jobsStatus", []):
        if status.get("name") == "node":
            counts = {key: status[key] for key in ("active", "ready", "succeeded", "failed") if status.get(key)}
            return f"nodes {counts}" if counts else ""
    return ""


def wait(api, name: str, namespace: str, timeout_s: float, emit: Callable[[str], None] = print) -> dict:
    """Poll until the job completes; TrainJobError when it fails or `timeout_s` passes."""
    return RESOURCE.wait(api, name, namespace, timeout_s, "Complete", _node_counts, emit)


def node_pods(api, job_name: str, namespace: str) -> list[str]:
    """The job's pod names in node order (the chief first), or [] when they cannot be listed."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        pods = client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector=f"{JOBSET_NAME_LABEL}={job_name}", _request_timeout=30).items
    except ApiException:
        return []
    index = lambda pod: int((pod.metadata.labels or {}).get(COMPLETION_INDEX_LABEL, 1 << 30))  # noqa: E731
    return [pod.metadata.name for pod in sorted(pods, key=index)]


def node_log(api, pod: str, namespace: str, lines: int = LOG_LINES) -> str:
    """The last `lines` lines of a node's pod, or why they cannot be read."""
    return pod_log(api, pod, namespace, CONTAINER, lines)


def delete(api, name: str, namespace: str) -> None:
    """Delete the job and, in the background, its JobSet and pods; a job already gone is fine."""
    RESOURCE.delete(api, name, namespace)


def run_trainjob(api, manifest: dict, timeout_s: float, emit: Callable[[str], None] = print) -> None:
    """Create the job, wait for it, show the chief's log (every node's on failure), always delete it."""
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    create(api, manifest)
    emit(f"TrainJob {name} created in {namespace} with {manifest['spec']['trainer']['numNodes']} nodes; all logs: "
         f"kubectl -n {namespace} logs -l {JOBSET_NAME_LABEL}={name} --prefix")
    follow("TrainJob", name, lambda: wait(api, name, namespace, timeout_s, emit), TrainJobError,
           lambda succeeded: [(pod, lambda pod=pod: node_log(api, pod, namespace))
                              for pod in node_pods(api, name, namespace)[:1 if succeeded else 4]],
           lambda: delete(api, name, namespace), emit)
