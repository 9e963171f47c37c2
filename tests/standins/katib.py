"""A local stand-in for Katib v0.19's Experiment API (Kubeflow 26.03), on top of the Kubernetes
stand-in (see standins.http), and the checks every Experiment the project writes must pass."""

import json
import re

from standins.http import check_against_model
from standins.kube_api import KubeStandIn, _status
from standins.training import POD_LOG_PATH, PODS_PATH

EXPERIMENT_PATH = re.compile(r"/apis/kubeflow\.org/v1beta1/namespaces/(?P<namespace>[^/]+)/experiments"
                             r"(?:/(?P<name>[^/]+))?")
CRD_FILE = "katib-v0.19.0-experiments.yaml.gz"
PLACEHOLDER = re.compile(r"\$\{trialParameters\.(?P<name>[^}]+)\}")


def check_experiment(experiment: dict) -> None:
    """An Experiment as Katib v0.19 takes it: the released CRD (which has no schema beyond
    `type: object`), Katib's API models as the Kubeflow SDK 0.5 builds them (kubeflow-katib-api:
    an unknown field is dropped by them, so a round trip must give the object back), and the
    trial template: a strict batch/v1 Job once its placeholders are filled in, each placeholder
    a declared trial parameter, each parameter's reference a searched parameter or trial metadata."""
    from kubeflow_katib_api import models

    from standins.manifests import validate, validate_custom

    validate_custom(experiment, CRD_FILE)
    spec = experiment["spec"]
    rebuilt = models.V1beta1ExperimentSpec.from_dict(spec).to_dict()
    assert rebuilt == spec, f"Katib's ExperimentSpec model drops or changes fields: {_difference(spec, rebuilt)}"
    template = spec["trialTemplate"]
    declared = {item["name"]: item["reference"] for item in template["trialParameters"]}
    searched = {parameter["name"] for parameter in spec["parameters"]}
    for name, reference in declared.items():
        assert reference in searched or re.fullmatch(r"\$\{trialSpec\.(Name|Namespace|Kind|APIVersion)\}", reference), \
            f"trial parameter {name} references {reference}, neither a parameter nor trial metadata"
    text = json.dumps(template["trialSpec"])
    used = set(PLACEHOLDER.findall(text))
    assert used == set(declared), f"placeholders {used} against declared trial parameters {set(declared)}"
    filled = json.loads(PLACEHOLDER.sub("1", text))
    filled.setdefault("metadata", {"name": "trial-1", "namespace": experiment["metadata"]["namespace"]})
    validate(filled)
    containers = filled["spec"]["template"]["spec"]["containers"]
    assert template["primaryContainerName"] in [container["name"] for container in containers]
    assert spec["algorithm"]["algorithmName"] in ("random", "tpe", "multivariate-tpe", "grid", "cmaes",
                                                  "bayesianoptimization", "sobol", "hyperband")


def _difference(wanted: dict, got: dict, path: str = "") -> list[str]:
    if isinstance(wanted, dict) and isinstance(got, dict):
        return [p for key in set(wanted) | set(got) for p in _difference(wanted.get(key), got.get(key),
                                                                         f"{path}.{key}")]
    return [] if wanted == got else [path]


class KatibStandIn(KubeStandIn):
    """The Kubernetes API with Katib's Experiment resource, the trials' pods and their logs.

    `crd=False`: Katib is not installed (404, as the API server answers). An
    Experiment reads with no status first, then Created and Running with
    `parallelTrialCount` trials running, then `outcome`: "Succeeded" (every
    trial succeeded, `best_trial` the optimal one with its parameters),
    "Failed" (`<experiment>-failed` in failedTrialList, Katib's own message)
    or "Never" (stays Running). `on_create(experiment)` runs at creation (a
    test plays the trials there). Each trial's pod `<trial>-<suffix>` carries
    the Job's label and a log (`log_text`). Deleted experiments are listed in
    `deleted`; `checked` keeps every created Experiment.
    """

    def __init__(self, tls, token, role_rules, crd: bool = True, outcome: str = "Succeeded",
                 best_trial: str = "", best_parameters: dict | None = None, on_create=None):
        super().__init__(tls, token, role_rules)
        self.crd, self.outcome, self.on_create = crd, outcome, on_create
        self.best_trial, self.best_parameters = best_trial, best_parameters or {}
        self.experiments: dict[tuple[str, str], dict] = {}
        self.deleted: list[str] = []
        self.checked: list[dict] = []

    def handle(self, method, path, query, headers, body):
        if headers.get("Authorization", "").lower() != f"bearer {self.token}":
            return 401, _status(401, "Unauthorized"), "application/json"
        match = EXPERIMENT_PATH.fullmatch(path)
        if match:
            if not self.crd:
                return 404, _status(404, "the server could not find the requested resource"), "application/json"
            verb = {"POST": "create", "GET": "get", "DELETE": "delete"}[method]
            return self._denied("kubeflow.org", "experiments", verb) or \
                getattr(self, f"_{verb}_experiment")(match, query, body)
        pods = PODS_PATH.fullmatch(path)
        if pods and method == "GET":
            return self._denied("", "pods", "list") or self._list_pods(pods, query)
        log_match = POD_LOG_PATH.fullmatch(path)
        if log_match and method == "GET":
            return self._denied("", "pods/log", "get") or self._pod_log(log_match, query)
        return super().handle(method, path, query, headers, body)

    def _create_experiment(self, match, query, body):
        assert match["name"] is None, "create goes to the collection"
        assert query.get("fieldManager") == ["kfp-ml-pipelines"], query
        experiment = json.loads(body)
        try:
            check_experiment(experiment)
        except Exception as error:  # the API server's (or Katib's webhook's) refusal, in one line
            raise AssertionError(f"Katib refuses it: {str(error).splitlines()[0]}") from error
        check_against_model(experiment["metadata"], "V1ObjectMeta", self.api_client, self.models)
        key = (match["namespace"], experiment["metadata"]["name"])
        assert experiment["metadata"]["namespace"] == match["namespace"], "namespace mismatch"
        if key in self.experiments:
            return 409, _status(409, f"experiments.kubeflow.org \"{key[1]}\" already exists"), "application/json"
        experiment["metadata"].update(uid=f"uid-{next(self.versions)}", resourceVersion=str(next(self.versions)),
                                      generation=1)
        self.experiments[key] = {"experiment": experiment, "polls": 0}
        self.checked.append(experiment)
        if self.on_create:
            self.on_create(experiment)
        return 201, experiment, "application/json"

    def _get_experiment(self, match, query, body):
        entry = self.experiments.get((match["namespace"], match["name"]))
        if entry is None:
            return 404, _status(404, f"experiments.kubeflow.org \"{match['name']}\" not found"), "application/json"
        entry["polls"] += 1
        experiment = json.loads(json.dumps(entry["experiment"]))
        spec, name = experiment["spec"], match["name"]
        if entry["polls"] >= 2:  # the first read finds it before the controller has
            conditions = [("Created", "Experiment is created"), ("Running", "Experiment is running")]
            status = {"trialsRunning": spec["parallelTrialCount"], "trials": spec["parallelTrialCount"]}
            if entry["polls"] >= 3 and self.outcome == "Succeeded":
                conditions.append(("Succeeded", "Experiment has succeeded because max trial count has reached"))
                status = {"trials": spec["maxTrialCount"], "trialsSucceeded": spec["maxTrialCount"],
                          "succeededTrialList": [f"{name}-trial{i}" for i in range(spec["maxTrialCount"])],
                          "currentOptimalTrial": {
                              "bestTrialName": self.best_trial,
                              "parameterAssignments": [{"name": key, "value": value}
                                                       for key, value in self.best_parameters.items()],
                              "observation": {"metrics": [{"name": "val_accuracy", "latest": "0.9", "max": "0.9",
                                                           "min": "0.9"}]}}}
            if entry["polls"] >= 3 and self.outcome == "Failed":
                conditions.append(("Failed", "Experiment has failed because max failed count has reached"))
                status = {"trials": 2, "trialsSucceeded": 1, "trialsFailed": 1,
                          "failedTrialList": [f"{name}-failed"]}
            status["conditions"] = [{"type": kind, "status": "True" if i == len(conditions) - 1 else "False",
                                     "reason": f"Experiment{kind}", "message": message}
                                    for i, (kind, message) in enumerate(conditions)]
            experiment["status"] = status
        from kubeflow_katib_api import models

        models.V1beta1Experiment.from_dict(experiment)  # what the SDK's OptimizerClient would read
        return 200, experiment, "application/json"

    def _delete_experiment(self, match, query, body):
        options = json.loads(body) if body else {}
        check_against_model(options, "V1DeleteOptions", self.api_client, self.models)
        if self.experiments.pop((match["namespace"], match["name"]), None) is None:
            return 404, _status(404, f"experiments.kubeflow.org \"{match['name']}\" not found"), "application/json"
        self.deleted.append(match["name"])
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}, "application/json"

    def _trial_exists(self, namespace: str, trial: str) -> bool:
        return any(key[0] == namespace and (trial.startswith(f"{key[1]}-") or trial == self.best_trial)
                   for key in self.experiments)

    def _list_pods(self, match, query):
        (selector,) = query["labelSelector"]
        key, _, trial = selector.partition("=")
        assert key == "batch.kubernetes.io/job-name", selector
        items = [{"metadata": {"name": f"{trial}-x7k2p", "namespace": match["namespace"],
                               "labels": {key: trial}}}] if self._trial_exists(match["namespace"], trial) else []
        pods = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        check_against_model(pods, "V1PodList", self.api_client, self.models)
        return 200, pods, "application/json"

    def _pod_log(self, match, query):
        assert query.get("container") == ["training"], query
        trial = match["name"].removesuffix("-x7k2p")
        if not self._trial_exists(match["namespace"], trial):
            return 404, _status(404, f"pods \"{match['name']}\" not found"), "application/json"
        return 200, self.log_text(match["name"]).encode(), "text/plain"

    @staticmethod
    def log_text(pod: str) -> str:
        return f"epoch 1/1: loss 0.5000 accuracy 0.8500 ({pod})\nval_accuracy=0.850000 val_loss=0.500000\n"
