"""Local stand-ins for the training operator's TFJob and Trainer v2's TrainJob APIs, on top of the
Kubernetes stand-in (see standins.http)."""

import json
import re
from pathlib import Path

import yaml

from standins.http import check_against_model
from standins.kube_api import KubeStandIn, _status

TFJOB_PATH = re.compile(r"/apis/kubeflow\.org/v1/namespaces/(?P<namespace>[^/]+)/tfjobs(?:/(?P<name>[^/]+))?")
POD_LOG_PATH = re.compile(r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/log")
# The TFJob fields of training-operator v1.9's API (kubeflow.org/v1); the
# kubernetes client has no model for a custom resource, so its parts that are
# core types (metadata, pod templates, delete options) are checked against theirs.
TFJOB_SPEC_FIELDS = {"runPolicy", "successPolicy", "tfReplicaSpecs", "enableDynamicWorker"}
RUN_POLICY_FIELDS = {"cleanPodPolicy", "ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit",
                     "schedulingPolicy", "suspend", "managedBy"}
REPLICA_TYPES = {"Chief", "PS", "Worker", "Evaluator", "Master"}
REPLICA_FIELDS = {"replicas", "template", "restartPolicy"}


class TFJobStandIn(KubeStandIn):
    """The Kubernetes API with training-operator 1.9's TFJob resource, and pod logs.

    `crd=False`: the TFJob resource is not installed (404 on the group/version,
    as the API server answers). After creation a job reads Pending, then
    Created, then Running, then `outcome` ("Succeeded", "Failed", or "Never"
    to stay Running). `on_create(manifest)` runs when a job is created (a test
    plays the chief's part there). Pods `<job>-worker-<i>` exist while the job
    does; their log is `log_text(pod)`. Deleted jobs are listed in `deleted`.
    """

    def __init__(self, tls, token, role_rules, crd: bool = True, outcome: str = "Succeeded",
                 on_create=None):
        super().__init__(tls, token, role_rules)
        self.crd, self.outcome, self.on_create = crd, outcome, on_create
        self.tfjobs: dict[tuple[str, str], dict] = {}
        self.deleted: list[str] = []

    def handle(self, method, path, query, headers, body):
        if headers.get("Authorization", "").lower() != f"bearer {self.token}":
            return 401, _status(401, "Unauthorized"), "application/json"
        job_match = TFJOB_PATH.fullmatch(path)
        if job_match:
            if not self.crd:
                return 404, _status(404, "the server could not find the requested resource"), "application/json"
            verb = {"POST": "create", "GET": "get", "DELETE": "delete"}[method]
            denied = self._denied("kubeflow.org", "tfjobs", verb)
            if denied:
                return denied
            return getattr(self, f"_{verb}_tfjob")(job_match, query, body)
        log_match = POD_LOG_PATH.fullmatch(path)
        if log_match and method == "GET":
            return self._denied("", "pods/log", "get") or self._pod_log(log_match, query)
        return super().handle(method, path, query, headers, body)

    def _create_tfjob(self, match, query, body):
        assert match["name"] is None, "create goes to the collection"
        assert query.get("fieldManager") == ["kfp-ml-pipelines"], query
        job = json.loads(body)
        check_tfjob(job, self.api_client, self.models)
        key = (match["namespace"], job["metadata"]["name"])
        assert job["metadata"]["namespace"] == match["namespace"], "namespace mismatch"
        if key in self.tfjobs:
            return 409, _status(409, f"tfjobs.kubeflow.org \"{key[1]}\" already exists"), "application/json"
        job["metadata"].update(uid=f"uid-{next(self.versions)}", resourceVersion=str(next(self.versions)),
                               generation=1)
        self.tfjobs[key] = {"job": job, "polls": 0}
        if self.on_create:
            self.on_create(job)
        return 201, job, "application/json"

    def _get_tfjob(self, match, query, body):
        entry = self.tfjobs.get((match["namespace"], match["name"]))
        if entry is None:
            return 404, _status(404, f"tfjobs.kubeflow.org \"{match['name']}\" not found"), "application/json"
        entry["polls"] += 1
        job = json.loads(json.dumps(entry["job"]))
        workers = job["spec"]["tfReplicaSpecs"]["Worker"]["replicas"]
        steps = [("Created", "TFJob is created.", {"active": 0})]
        if entry["polls"] >= 3:
            steps.append(("Running", "TFJob is running.", {"active": workers}))
        if entry["polls"] >= 4 and self.outcome == "Succeeded":
            steps.append(("Succeeded", "TFJob successfully completed.", {"succeeded": workers}))
        if entry["polls"] >= 4 and self.outcome == "Failed":
            steps.append(("Failed", f"TFJob {match['namespace']}/{match['name']} has failed because 1 Worker "
                                    f"replica(s) failed.", {"failed": 1, "active": workers - 1}))
        if entry["polls"] >= 2:  # the first read finds the job before the operator has seen it
            job["status"] = {"conditions": [
                {"type": kind, "status": "True" if i == len(steps) - 1 or kind == "Created" else "False",
                 "reason": f"TFJob{kind}", "message": message} for i, (kind, message, _) in enumerate(steps)],
                "replicaStatuses": {"Worker": steps[-1][2]}}
        return 200, job, "application/json"

    def _delete_tfjob(self, match, query, body):
        options = json.loads(body) if body else {}
        check_against_model(options, "V1DeleteOptions", self.api_client, self.models)
        if self.tfjobs.pop((match["namespace"], match["name"]), None) is None:
            return 404, _status(404, f"tfjobs.kubeflow.org \"{match['name']}\" not found"), "application/json"
        self.deleted.append(match["name"])
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}, "application/json"

    def _pod_log(self, match, query):
        assert query.get("container") == ["tensorflow"], query
        job_name, _, index = match["name"].rpartition("-worker-")
        entry = self.tfjobs.get((match["namespace"], job_name))
        if entry is None or not index.isdigit() or \
                int(index) >= entry["job"]["spec"]["tfReplicaSpecs"]["Worker"]["replicas"]:
            return 404, _status(404, f"pods \"{match['name']}\" not found"), "application/json"
        return 200, self.log_text(match["name"]).encode(), "text/plain"

    @staticmethod
    def log_text(pod: str) -> str:
        return f"epoch 1/1: loss 0.5000 accuracy 0.8500 ({pod})\n"


def check_tfjob(job: dict, api_client, models) -> None:
    """A TFJob as training-operator v1.9 accepts it, core parts checked against the client models."""
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "TFJob", (job["apiVersion"], job["kind"])
    assert set(job) <= {"apiVersion", "kind", "metadata", "spec"}, set(job)
    check_against_model(job["metadata"], "V1ObjectMeta", api_client, models)
    spec = job["spec"]
    assert set(spec) <= TFJOB_SPEC_FIELDS, set(spec) - TFJOB_SPEC_FIELDS
    run_policy = spec.get("runPolicy", {})
    assert set(run_policy) <= RUN_POLICY_FIELDS, set(run_policy) - RUN_POLICY_FIELDS
    assert run_policy.get("cleanPodPolicy", "None") in ("All", "Running", "None")
    assert spec["tfReplicaSpecs"] and set(spec["tfReplicaSpecs"]) <= REPLICA_TYPES
    for replica in spec["tfReplicaSpecs"].values():
        assert set(replica) <= REPLICA_FIELDS, set(replica) - REPLICA_FIELDS
        assert isinstance(replica["replicas"], int) and replica["replicas"] >= 1
        assert replica.get("restartPolicy", "Never") in ("Always", "OnFailure", "Never", "ExitCode")
        template = check_against_model(replica["template"], "V1PodTemplateSpec", api_client, models)
        names = [container.name for container in template.spec.containers]
        assert "tensorflow" in names, f"the operator sets TF_CONFIG in the container named tensorflow: {names}"


# --------------------------------------------------------------------------- TrainJob (Kubeflow Trainer v2)

TRAINJOB_PATH = re.compile(r"/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/(?P<namespace>[^/]+)/trainjobs"
                           r"(?:/(?P<name>[^/]+))?")
RUNTIME_PATH = re.compile(r"/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/(?P<namespace>[^/]+)/trainingruntimes"
                          r"/(?P<name>[^/]+)")
PODS_PATH = re.compile(r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods")
DISCOVERY_PATH = re.compile(r"/apis/(?P<group>[^/]+)/(?P<version>[^/]+)")


class TrainingStandIn(TFJobStandIn):
    """The Kubernetes API with any mix of the two distributed-training engines.

    `tfjob`: training-operator 1.9's TFJob resource; `trainer`: Kubeflow
    Trainer v2's TrainJob resource (validated against Trainer `trainer_crd`'s
    CRD schema, v2.3.0 or v2.1.0); `runtime`: the TensorFlow TrainingRuntime of
    deploy/trainer-tensorflow-runtime.yaml is installed in every namespace.
    Discovery (`/apis/<group>/<version>`) lists what is installed and needs no
    Role rule, as on a real API server (system:discovery). A TrainJob reads
    with no status, then its node Job active, then Complete or Failed per
    `outcome`; while it exists its pods `<job>-node-0-<i>-<suffix>` carry the
    JobSet's labels and a log (`log_text`). `on_create(manifest)` runs at
    creation for either kind.
    """

    def __init__(self, tls, token, role_rules, tfjob: bool = True, trainer: bool = True, runtime: bool = True,
                 trainer_crd: str = "v2.3.0", outcome: str = "Succeeded", on_create=None):
        super().__init__(tls, token, role_rules, crd=tfjob, outcome=outcome, on_create=on_create)
        self.trainer, self.runtime, self.trainer_crd = trainer, runtime, trainer_crd
        self.trainjobs: dict[tuple[str, str], dict] = {}

    def handle(self, method, path, query, headers, body):
        if headers.get("Authorization", "").lower() != f"bearer {self.token}":
            return 401, _status(401, "Unauthorized"), "application/json"
        discovery = DISCOVERY_PATH.fullmatch(path)
        if discovery and method == "GET":
            return self._discovery(discovery["group"], discovery["version"])
        trainer_path = TRAINJOB_PATH.fullmatch(path) or RUNTIME_PATH.fullmatch(path)
        if trainer_path:
            if not self.trainer:
                return 404, _status(404, "the server could not find the requested resource"), "application/json"
            if RUNTIME_PATH.fullmatch(path):
                return self._denied("trainer.kubeflow.org", "trainingruntimes", "get") or \
                    self._get_runtime(trainer_path)
            verb = {"POST": "create", "GET": "get", "DELETE": "delete"}[method]
            return self._denied("trainer.kubeflow.org", "trainjobs", verb) or \
                getattr(self, f"_{verb}_trainjob")(trainer_path, query, body)
        pods = PODS_PATH.fullmatch(path)
        if pods and method == "GET":
            return self._denied("", "pods", "list") or self._list_pods(pods, query)
        log_match = POD_LOG_PATH.fullmatch(path)
        if log_match and method == "GET" and "-node-0-" in log_match["name"]:
            return self._denied("", "pods/log", "get") or self._node_log(log_match, query)
        return super().handle(method, path, query, headers, body)

    def _discovery(self, group, version):
        offered = {("kubeflow.org", "v1"): (self.crd, "tfjobs", "TFJob"),
                   ("trainer.kubeflow.org", "v1alpha1"): (self.trainer, "trainjobs", "TrainJob")}
        installed, plural, kind = offered.get((group, version), (False, "", ""))
        if not installed:
            return 404, _status(404, "the server could not find the requested resource"), "application/json"
        return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
                     "resources": [{"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind,
                                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]}, \
            "application/json"

    def _get_runtime(self, match):
        shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" /
                                  "trainer-tensorflow-runtime.yaml").read_text())
        if not self.runtime or match["name"] != shipped["metadata"]["name"]:
            return 404, _status(404, f"trainingruntimes.trainer.kubeflow.org \"{match['name']}\" not found"), \
                "application/json"
        shipped["metadata"]["namespace"] = match["namespace"]
        return 200, shipped, "application/json"

    def _create_trainjob(self, match, query, body):
        from standins.manifests import validate_custom

        assert match["name"] is None, "create goes to the collection"
        assert query.get("fieldManager") == ["kfp-ml-pipelines"], query
        job = json.loads(body)
        try:
            validate_custom(job, f"trainer-{self.trainer_crd}-trainjobs.yaml.gz")
        except Exception as error:  # the API server's 422, in one line
            raise AssertionError(f"the TrainJob CRD refuses it: {str(error).splitlines()[0]}") from error
        assert job["metadata"]["namespace"] == match["namespace"], "namespace mismatch"
        key = (match["namespace"], job["metadata"]["name"])
        if key in self.trainjobs:
            return 409, _status(409, f"trainjobs.trainer.kubeflow.org \"{key[1]}\" already exists"), \
                "application/json"
        job["metadata"].update(uid=f"uid-{next(self.versions)}", resourceVersion=str(next(self.versions)),
                               generation=1)
        self.trainjobs[key] = {"job": job, "polls": 0}
        if self.on_create:
            self.on_create(job)
        return 201, job, "application/json"

    def _get_trainjob(self, match, query, body):
        entry = self.trainjobs.get((match["namespace"], match["name"]))
        if entry is None:
            return 404, _status(404, f"trainjobs.trainer.kubeflow.org \"{match['name']}\" not found"), \
                "application/json"
        entry["polls"] += 1
        job = json.loads(json.dumps(entry["job"]))
        nodes = job["spec"]["trainer"]["numNodes"]
        if entry["polls"] >= 2:  # the first read finds the job before Trainer has made its JobSet
            conditions, counts = [], {"active": nodes, "ready": nodes}
            if entry["polls"] >= 3 and self.outcome == "Succeeded":
                conditions = [{"type": "Complete", "status": "True", "reason": "AllJobsCompleted",
                               "message": "jobset completed successfully"}]
                counts = {"succeeded": nodes}
            if entry["polls"] >= 3 and self.outcome == "Failed":
                conditions = [{"type": "Failed", "status": "True", "reason": "FailedJobs",
                               "message": "jobset failed: job node-0 has failed because it has reached the "
                                          "specified backoff limit"}]
                counts = {"failed": 1, "active": nodes - 1}
            job["status"] = {"conditions": conditions, "jobsStatus": [{"name": "node", **counts}]}
        return 200, job, "application/json"

    def _delete_trainjob(self, match, query, body):
        options = json.loads(body) if body else {}
        check_against_model(options, "V1DeleteOptions", self.api_client, self.models)
        if self.trainjobs.pop((match["namespace"], match["name"]), None) is None:
            return 404, _status(404, f"trainjobs.trainer.kubeflow.org \"{match['name']}\" not found"), \
                "application/json"
        self.deleted.append(match["name"])
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}, "application/json"

    def _pods_of(self, namespace: str, job_name: str) -> list[dict]:
        entry = self.trainjobs.get((namespace, job_name))
        if entry is None:
            return []
        nodes = entry["job"]["spec"]["trainer"]["numNodes"]
        # Listed in no particular order, as the API server may: the chief is found by its index label.
        return [{"metadata": {"name": f"{job_name}-node-0-{index}-x{index}k9z", "namespace": namespace,
                              "labels": {"jobset.sigs.k8s.io/jobset-name": job_name,
                                         "batch.kubernetes.io/job-completion-index": str(index)}}}
                for index in reversed(range(nodes))]

    def _list_pods(self, match, query):
        (selector,) = query["labelSelector"]
        key, _, job_name = selector.partition("=")
        assert key == "jobset.sigs.k8s.io/jobset-name", selector
        pods = {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                "items": self._pods_of(match["namespace"], job_name)}
        check_against_model(pods, "V1PodList", self.api_client, self.models)
        return 200, pods, "application/json"

    def _node_log(self, match, query):
        assert query.get("container") == ["node"], query
        job_name = match["name"].split("-node-0-")[0]
        if match["name"] not in {pod["metadata"]["name"] for pod in self._pods_of(match["namespace"], job_name)}:
            return 404, _status(404, f"pods \"{match['name']}\" not found"), "application/json"
        return 200, self.log_text(match["name"]).encode(), "text/plain"
