"""Hyperparameter search on a cluster: a Katib v1beta1 Experiment, from creation to cleanup.

Kubeflow 26.03 installs Katib v0.19.0, whose `Experiment`
(`kubeflow.org/v1beta1`) runs a search: its suggestion service proposes
parameter values, the controller starts a Trial per suggestion from the
trial template (here a `batch/v1` Job, one of the trial kinds Katib's default
configuration allows), the metrics collector reads the objective from the
trial container's standard output (`name=value` lines), and the experiment's
status names the best trial so far (`currentOptimalTrial`). The Kubeflow SDK
0.5's OptimizerClient creates the same object; docs/search.md says why Katib
and not Trainer's OptimizationJob.

`run_experiment` creates it, polls its status until it succeeds, fails or
runs past a time limit (printing every change with the trial counts), then,
whatever happened, prints the last log lines of the best trial's pod (of the
failed trials' pods when it failed) and deletes the experiment, which deletes
its trials, their Jobs and pods, and its suggestion service: the lifecycle of
components.cluster.jobs.follow, shared with TFJob and TrainJob. The Role
`kfp-ml-katib` in deploy/rbac.yaml allows exactly create, get and delete of
`experiments`, list of `pods` and get of `pods/log`.
"""

from dataclasses import dataclass
from typing import Callable

from components.cluster.api import labels_of
from components.cluster.jobs import JobResource, follow, pod_log
from components.common.errors import TrainingError

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1beta1", "experiments", "Experiment"
CONTAINER = "training"  # the trial Job's container, the one Katib's metrics collector reads
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # Katib names a trial's Job after the trial
INSTALL_HINT = ("the Experiment resource (kubeflow.org/v1beta1) is not installed in this cluster: install Katib "
                "(kubectl apply -k \"github.com/kubeflow/katib.git/manifests/v1beta1/installs/"
                "katib-standalone?ref=v0.19.0\"), or run the search with sweep=grid")
LOG_LINES = 40
FAILED_TRIALS_SHOWN = 3


class ExperimentError(TrainingError):
    """The cluster refused the Experiment, or it failed or did not finish in time."""


RESOURCE = JobResource(GROUP, VERSION, PLURAL, KIND, ExperimentError, INSTALL_HINT)


@dataclass(frozen=True)
class Parameter:
    """One searched parameter: `kind` "double" or "int" in [low, high], log-uniform when `log`."""

    name: str
    kind: str
    low: float
    high: float
    log: bool = False

    def spec(self) -> dict:
        space = {"min": f"{self.low:g}", "max": f"{self.high:g}"}
        if self.log:
            space["distribution"] = "logUniform"
        return {"name": self.name, "parameterType": self.kind, "feasibleSpace": space}


@dataclass(frozen=True)
class Objective:
    """Maximize (or minimize) `metric`, its last reported value (Katib's default is the best one)."""

    metric: str
    goal: str = "maximize"
    additional: tuple[str, ...] = ()

    def spec(self) -> dict:
        names = (self.metric, *self.additional)
        spec = {"type": self.goal, "objectiveMetricName": self.metric,
                "metricStrategies": [{"name": name, "value": "latest"} for name in names]}
        if self.additional:
            spec["additionalMetricNames"] = list(self.additional)
        return spec


def trial_job(image: str, command: list[str], resources: dict, env: dict[str, str] | None = None,
              node_selector: dict[str, str] | None = None, tolerations: list[dict] | None = None,
              deadline_s: int | None = None) -> dict:
    """A trial template's `batch/v1` Job: one pod running `command` in `image`, never restarted
    (a failed trial is Katib's to count, not the Job's to retry). Katib's webhook rewrites the
    container's command line to send its output to the metrics collector, and without a
    `command` it asks the registry for the image's entrypoint: the whole line goes in `command`."""
    container = {"name": CONTAINER, "image": image, "command": command, "resources": resources,
                 "env": [{"name": key, "value": value} for key, value in sorted((env or {}).items())]}
    pod: dict = {"restartPolicy": "Never", "containers": [container]}
    if node_selector:
        pod["nodeSelector"] = node_selector
    if tolerations:
        pod["tolerations"] = tolerations
    # Under Kubeflow's Istio an injected proxy would outlive the trial's container and the Job never end.
    spec: dict = {"backoffLimit": 0, "template": {"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                                                  "spec": pod}}
    if deadline_s:
        spec["activeDeadlineSeconds"] = deadline_s
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": spec}


def experiment_manifest(name: str, namespace: str, algorithm: str, parameters: list[Parameter],
                        objective: Objective, trial_spec: dict, trial_parameters: dict[str, str],
                        max_trials: int, parallel_trials: int, max_failed_trials: int,
                        algorithm_settings: dict[str, str] | None = None) -> dict:
    """An Experiment searching `parameters` with `algorithm`; each trial runs `trial_spec`, in which
    `${trialParameters.<name>}` stands for `trial_parameters[name]` (a parameter's name, or trial
    metadata such as `${trialSpec.Name}`)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": labels_of(name, "experiment")},
        "spec": {
            "objective": objective.spec(),
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": [
                {"name": key, "value": value} for key, value in sorted((algorithm_settings or {}).items())]},
            "parameters": [parameter.spec() for parameter in parameters],
            "maxTrialCount": max_trials,
            "parallelTrialCount": parallel_trials,
            "maxFailedTrialCount": max_failed_trials,
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "trialTemplate": {
                "primaryContainerName": CONTAINER,
                # Keep a finished trial's Job and pod until the experiment is deleted: a failed trial's
                # log is read after the experiment has failed.
                "retain": True,
                "trialParameters": [{"name": key, "reference": reference}
                                    for key, reference in trial_parameters.items()],
                "trialSpec": trial_spec,
            },
        },
    }


def _trial_counts(experiment: dict) -> str:
    status = experiment.get("status", {})
    counts = [f"{state} {status[key]}" for state, key in
              (("running", "trialsRunning"), ("succeeded", "trialsSucceeded"), ("failed", "trialsFailed"))
              if status.get(key)]
    return f"trials {', '.join(counts)}" if counts else ""


def wait(api, name: str, namespace: str, timeout_s: float, emit: Callable[[str], None] = print) -> dict:
    """Poll until the experiment succeeds; ExperimentError when it fails or `timeout_s` passes."""
    return RESOURCE.wait(api, name, namespace, timeout_s, "Succeeded", _trial_counts, emit)


@dataclass(frozen=True)
class BestTrial:
    name: str
    parameters: dict[str, str]
    metrics: dict[str, str]  # each metric's latest value as Katib reports it


def best_trial(experiment: dict) -> BestTrial:
    """The experiment's current optimal trial; ExperimentError when it names none."""
    optimal = experiment.get("status", {}).get("currentOptimalTrial", {})
    if not optimal.get("bestTrialName"):
        raise ExperimentError(f"Experiment {experiment['metadata']['name']} finished without a best trial: "
                              f"no trial reported its objective")
    return BestTrial(optimal["bestTrialName"],
                     {item["name"]: item["value"] for item in optimal.get("parameterAssignments", [])},
                     {item["name"]: item.get("latest", "") for item in
                      optimal.get("observation", {}).get("metrics", [])})


def trial_pods(api, trial: str, namespace: str) -> list[str]:
    """The pod names of a trial's Job, or [] when they cannot be listed."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={trial}",
                                                         _request_timeout=30).items
    except ApiException:
        return []
    return [pod.metadata.name for pod in pods]


def trials_to_show(api, name: str, namespace: str, succeeded: bool) -> list[str]:
    """The best trial after a success; after a failure, the failed trials (the first few)."""
    try:
        status = RESOURCE.get(api, name, namespace).get("status", {})
    except ExperimentError:
        return []
    if succeeded:
        best = status.get("currentOptimalTrial", {}).get("bestTrialName")
        return [best] if best else []
    return status.get("failedTrialList", [])[:FAILED_TRIALS_SHOWN]


def run_experiment(api, manifest: dict, timeout_s: float, emit: Callable[[str], None] = print) -> dict:
    """Create the experiment, wait for it, show its best (or failed) trials' last lines, always
    delete it; return its last status read."""
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    RESOURCE.create(api, manifest)
    spec = manifest["spec"]
    emit(f"Experiment {name} created in {namespace}: {spec['algorithm']['algorithmName']}, "
         f"{spec['maxTrialCount']} trials, {spec['parallelTrialCount']} at a time; trials: "
         f"kubectl -n {namespace} get trials -l katib.kubeflow.org/experiment={name}")
    finished: dict = {}
    follow(KIND, name, lambda: finished.update(wait(api, name, namespace, timeout_s, emit)), ExperimentError,
           lambda succeeded: [(pod, lambda pod=pod: pod_log(api, pod, namespace, CONTAINER, LOG_LINES))
                              for trial in trials_to_show(api, name, namespace, succeeded)
                              for pod in trial_pods(api, trial, namespace)],
           lambda: RESOURCE.delete(api, name, namespace), emit)
    return finished
