"""Serving the model store inside the cluster: the deploy step's Kubernetes path.

Every deploy applies a ConfigMap `serving-<model>` that holds the model's
serving labels (`labels.json`: stable, canary and its share, the published
versions), TF-Serving's model config built from them (versions served, version
labels `stable`/`canary`) and its monitoring config (Prometheus on the REST
port). The labels record lives there, not in the model store, because promote
and rollback (`pipelines.lifecycle`) run where the store's claim is not mounted.

For `model_format` "tensorflow" the step server-side-applies a TF-Serving
Deployment and Service that read `<model_store_pvc>/<model_name>/` through that
model config, re-read every MODEL_CONFIG_POLL_S (a new version or label needs no
restart; the kubelet refreshes a mounted ConfigMap within about a minute). Pod
annotations `prometheus.io/scrape|port|path` let a Prometheus with the usual
pod-annotation scrape job find the metrics without a ServiceMonitor.
With `kserve=True`, or for "lightgbm", it applies a KServe InferenceService
(LightGBM: KServe's runtime wants one `*.bst` file in the version folder); a
cluster without KServe gets a message saying so, and the model stays published.

Canary: TF-Serving labels the new version `canary` and clients ask by label.
KServe splits traffic itself with `spec.predictor.canaryTrafficPercent`, which
KServe supports only in its Knative (formerly "Serverless") deployment mode; in
Standard (formerly "RawDeployment") mode there is no traffic split and a canary
is refused before anything is published. The InferenceService names its mode in
the `serving.kserve.io/deploymentMode` annotation.

Server-side apply (one PATCH per object, field manager "kfp-ml-pipelines")
creates what is missing and changes only what differs: applying the same
manifests twice changes nothing, which the API server shows by keeping the
object's resourceVersion. Then the step waits, with a time limit, for the
rollout and reports the result in one line.

Credentials: the token of the `kfp-ml-deployer` ServiceAccount when its token
Secret is mounted (deploy/rbac.yaml and `mount_deployer_credentials`), else the
pod's own ServiceAccount. The deployer may only get, create and patch
Deployments, Services, ConfigMaps and InferenceServices in its namespace.
"""

import json
import os
import re
import time
from pathlib import Path

from components.errors import InputError, ServingError
from components.images import VERSION
from components.model_store import ServingLabels
from components.serving_config import MONITORING_PATH, model_config_text, monitoring_config_text

TF_SERVING_IMAGE = "tensorflow/serving:2.21.0"  # the release of tensorflow-serving-api in pyproject
FIELD_MANAGER = "kfp-ml-pipelines"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEPLOYER_SECRET = "kfp-ml-deployer-token"
DEPLOYER_CREDENTIALS_DIR = Path("/var/run/secrets/kfp-ml-deployer")
MODEL_STORE_MOUNT = "/models"
GRPC_PORT, REST_PORT = 8500, 8501
ROLLOUT_TIMEOUT_S = 300
POLL_INTERVAL_S = 2.0
MODEL_FORMATS = ("tensorflow", "lightgbm")
PLURALS = {"Deployment": "deployments", "Service": "services", "ConfigMap": "configmaps",
           "InferenceService": "inferenceservices"}
CONFIG_DIR = "/etc/tf-serving"
MODEL_CONFIG_POLL_S = 10
KSERVE_MODES = {"Knative": "Knative", "Serverless": "Knative", "Standard": "Standard",
                "RawDeployment": "Standard"}  # the names since KServe 0.15, and the older ones
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def in_cluster() -> bool:
    """True inside a Kubernetes pod (the API address and a service-account token exist)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT_DIR / "token").is_file()


def mount_deployer_credentials(task):
    """Mount the deployer's token Secret into a deploy task (optional: absent -> pod's own SA)."""
    from kfp import kubernetes

    return kubernetes.use_secret_as_volume(task, secret_name=DEPLOYER_SECRET,
                                           mount_path=str(DEPLOYER_CREDENTIALS_DIR), optional=True)


# --------------------------------------------------------------------------- manifests

def labels_of(model_name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": model_name,
            "app.kubernetes.io/part-of": "kfp-ml-pipelines",
            "app.kubernetes.io/managed-by": FIELD_MANAGER}


def object_name(model_name: str, prefix: str = "") -> str:
    """`<prefix><model>` as a Kubernetes object name (a DNS label: lowercase, digits, '-')."""
    name = f"{prefix}{model_name.lower().replace('_', '-')}"
    if len(name) > 63 or not DNS_LABEL.match(name):
        raise InputError(f"model_name '{model_name}' cannot name a Kubernetes object: use "
                         f"lowercase letters, digits and '-', at most {63 - len(prefix)} characters")
    return name


def serving_name(model_name: str) -> str:
    return object_name(model_name, "tf-serving-")


def config_map_name(model_name: str) -> str:
    return object_name(model_name, "serving-")


def serving_config_map(model_name: str, namespace: str, labels: ServingLabels,
                       model_store_uri: str = "") -> dict:
    """The serving labels record, where the versions are (`model_store_uri`, or the claim
    mounted at /models when empty), and TF-Serving's model and monitoring configs."""
    base_path = f"{model_store_uri or MODEL_STORE_MOUNT}/{model_name}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map_name(model_name), "namespace": namespace,
                     "labels": labels_of(model_name, "serving-config")},
        "data": {"labels.json": json.dumps(labels.to_json(), sort_keys=True),
                 "model_store_uri": model_store_uri,
                 "models.config": model_config_text(model_name, base_path, labels),
                 "monitoring.config": monitoring_config_text()},
    }


def labels_from_config_map(config_map: dict) -> ServingLabels:
    return ServingLabels.from_json(json.loads(config_map.get("data", {}).get("labels.json", "{}")))


def tf_serving_deployment(model_name: str, model_store_pvc: str, namespace: str,
                          model_version: int | None = None, model_store_uri: str = "") -> dict:
    """TF-Serving reading `<pvc>/<model_name>/<N>/` read-only (or `<model_store_uri>/<model_name>/`
    on object storage, with no volume) through the ConfigMap's model config, with Prometheus
    metrics; ready once a version is loaded."""
    name = serving_name(model_name)
    selector = {k: v for k, v in labels_of(model_name, "tf-serving").items()
                if k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    annotations = {"kfp-ml-pipelines/model-version": str(model_version)} if model_version else {}
    container = {
        "name": "tf-serving",
        "image": TF_SERVING_IMAGE,
        # The image's entrypoint script adds its own --model_name; call the server directly.
        "command": ["tensorflow_model_server"],
        "args": [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}",
                 f"--model_config_file={CONFIG_DIR}/models.config",
                 f"--model_config_file_poll_wait_seconds={MODEL_CONFIG_POLL_S}",
                 # A new canary is labelled before TF-Serving has loaded it. This flag covers
                 # only labels not yet in use: moving `stable` to a version not loaded yet
                 # (a full deploy, a rollback to an unloaded version) is refused by TF-Serving's
                 # config reload until that version is loaded (server_core.cc); not verified
                 # here against a real TF-Serving.
                 "--allow_version_labels_for_unavailable_models=true",
                 f"--monitoring_config_file={CONFIG_DIR}/monitoring.config"],
        "ports": [{"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
                  {"name": "http", "containerPort": REST_PORT, "protocol": "TCP"}],
        # Ready only when TF-Serving has loaded a version of the model.
        "readinessProbe": {"httpGet": {"path": f"/v1/models/{model_name}", "port": REST_PORT},
                           "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"tcpSocket": {"port": GRPC_PORT},
                          "initialDelaySeconds": 30, "periodSeconds": 20},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                      "limits": {"memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "model-store", "mountPath": MODEL_STORE_MOUNT, "readOnly": True},
                         {"name": "serving-config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(REST_PORT),
              "prometheus.io/path": MONITORING_PATH}
    if model_store_uri:  # read from object storage with the pod's credentials (Workload Identity)
        container["volumeMounts"] = container["volumeMounts"][1:]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {**labels_of(model_name, "tf-serving"),
                                "app.kubernetes.io/version": VERSION},
                     **({"annotations": annotations} if annotations else {})},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels_of(model_name, "tf-serving"), "annotations": scrape},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": ([] if model_store_uri else [{"name": "model-store", "persistentVolumeClaim": {
                                     "claimName": model_store_pvc, "readOnly": True}}])
                               # The whole folder, not subPath: only then does the kubelet refresh it.
                               + [{"name": "serving-config", "configMap": {"name": config_map_name(model_name)}},
                                  {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def tf_serving_service(model_name: str, namespace: str) -> dict:
    """ClusterIP Service: gRPC on 8500, REST on 8501."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": serving_name(model_name), "namespace": namespace,
                     "labels": labels_of(model_name, "tf-serving")},
        "spec": {
            "type": "ClusterIP",
            "selector": {k: v for k, v in labels_of(model_name, "tf-serving").items()
                         if k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")},
            "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
                      {"name": "http", "port": REST_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def kserve_mode(deployment_mode: str) -> str:
    if deployment_mode not in KSERVE_MODES:
        raise InputError(f"kserve_deployment_mode '{deployment_mode}' is not one of {', '.join(KSERVE_MODES)}")
    return KSERVE_MODES[deployment_mode]


def check_kserve_canary(model_format: str, canary_percent: int, deployment_mode: str) -> None:
    """A KServe canary needs a version-specific model URI and Knative mode."""
    if canary_percent >= 100:
        return
    if model_format != "lightgbm":
        raise InputError(f"canary_percent {canary_percent} with KServe serves TensorFlow models from the model "
                         "folder (highest version) and cannot split them: use TF-Serving's labels (use_kserve=false)")
    if kserve_mode(deployment_mode) != "Knative":
        raise InputError(f"canary_percent {canary_percent}: KServe's canaryTrafficPercent works only in Knative "
                         f"(Serverless) mode, not '{deployment_mode}': deploy with canary_percent=100")


def kserve_inference_service(model_name: str, model_format: str, model_store_pvc: str,
                             namespace: str, model_version: int | None = None,
                             labels: ServingLabels | None = None, deployment_mode: str = "Knative",
                             model_store_uri: str = "") -> dict:
    """A KServe InferenceService on the model store.

    TensorFlow: the model folder (KServe's TF runtime serves the highest
    version like TF-Serving). LightGBM: the version folder itself, because
    KServe's LightGBM server loads the single model file it finds there; with a
    canary in `labels`, the canary's folder with `canaryTrafficPercent` (KServe
    keeps the last fully rolled-out revision, the stable one, for the rest).
    """
    if model_format not in MODEL_FORMATS:
        raise InputError(f"model_format '{model_format}' is not one of {', '.join(MODEL_FORMATS)}")
    mode = kserve_mode(deployment_mode)
    labels = labels or ServingLabels(stable=model_version)
    storage_uri = f"{model_store_uri or 'pvc://' + model_store_pvc}/{model_name}"
    predictor: dict = {}
    if model_format == "lightgbm":
        if labels.stable is None:
            raise InputError("model_version is required to serve a lightgbm model with KServe")
        storage_uri += f"/{labels.canary or labels.stable}"
        if labels.canary is not None:
            check_kserve_canary(model_format, labels.canary_percent, mode)
            predictor["canaryTrafficPercent"] = labels.canary_percent
    predictor["model"] = {"modelFormat": {"name": model_format}, "storageUri": storage_uri}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": object_name(model_name),
                     "namespace": namespace,
                     "labels": {**labels_of(model_name, "kserve"),
                                "app.kubernetes.io/version": VERSION},
                     "annotations": {"serving.kserve.io/deploymentMode": mode}},
        "spec": {"predictor": predictor},
    }


# --------------------------------------------------------------------------- the API

def kube_api_client():
    """An API client with the deployer's token if mounted, else the pod's service account."""
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader

    credentials = DEPLOYER_CREDENTIALS_DIR if (DEPLOYER_CREDENTIALS_DIR / "token").is_file() \
        else SERVICE_ACCOUNT_DIR
    configuration = client.Configuration()
    try:
        InClusterConfigLoader(token_filename=str(credentials / "token"),
                              cert_filename=str(credentials / "ca.crt")).load_and_set(configuration)
    except ConfigException as error:
        raise ServingError(f"no Kubernetes credentials in {credentials}: {error}") from error
    return client.ApiClient(configuration)


def pod_namespace() -> str:
    """The pod's namespace (the deployer's token Secret carries the same one)."""
    for folder in (SERVICE_ACCOUNT_DIR, DEPLOYER_CREDENTIALS_DIR):
        if (folder / "namespace").is_file():
            return (folder / "namespace").read_text().strip()
    raise ServingError("cannot tell the pod's namespace: set the serving_namespace parameter")


def resource_path(manifest: dict) -> str:
    group_version = manifest["apiVersion"]
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    return f"{prefix}/namespaces/{namespace}/{PLURALS[manifest['kind']]}/{name}"


def _request(api, method: str, path: str, body: dict | None = None) -> dict | None:
    """One API call returning the object as a dict, or None when it does not exist."""
    from kubernetes.client.exceptions import ApiException

    headers = {"Accept": "application/json"}
    query = []
    if method == "PATCH":
        headers["Content-Type"] = "application/apply-patch+yaml"  # server-side apply
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
    try:
        response = api.call_api(path, method, query_params=query, header_params=headers,
                                body=body, auth_settings=["BearerToken"],
                                _return_http_data_only=True, _preload_content=False,
                                _request_timeout=30)
    except ApiException as error:
        if error.status == 404 and method == "GET":
            return None
        raise ServingError(_refusal(method, path, error)) from error
    return json.loads(response.data)


def _refusal(method: str, path: str, error) -> str:
    try:
        message = json.loads(error.body).get("message", error.reason)
    except (TypeError, ValueError, AttributeError):
        message = error.reason
    verb = {"GET": "get", "PATCH": "apply"}[method]
    hint = ""
    if error.status == 403:
        hint = " (grant it with deploy/rbac.yaml: kubectl apply -f deploy/)"
    elif error.status == 404 and "/serving.kserve.io/" in path:
        hint = " (KServe is not installed in this cluster)"
    return f"cannot {verb} {path}: HTTP {error.status} {message}{hint}"


def apply(api, manifest: dict) -> str:
    """Server-side apply `manifest`; return 'created', 'updated' or 'unchanged'."""
    path = resource_path(manifest)
    before = _request(api, "GET", path)
    after = _request(api, "PATCH", path, manifest)
    if before is None:
        return "created"
    same = before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
    return "unchanged" if same else "updated"


def wait_for_rollout(api, manifest: dict, timeout_s: float) -> str:
    """Wait until every replica runs the applied spec; fail on timeout or a stuck rollout."""
    path = resource_path(manifest)
    deadline = time.monotonic() + timeout_s
    while True:
        deployment = _request(api, "GET", path) or {}
        status, wanted = deployment.get("status", {}), deployment.get("spec", {}).get("replicas", 1)
        progress = (f"{status.get('updatedReplicas', 0)}/{wanted} updated, "
                    f"{status.get('availableReplicas', 0)}/{wanted} available")
        if (status.get("observedGeneration", 0) >= deployment.get("metadata", {}).get("generation", 1)
                and status.get("updatedReplicas", 0) == wanted
                and status.get("availableReplicas", 0) == wanted
                and status.get("replicas", 0) == wanted):
            return f"rollout complete ({progress})"
        stuck = [c for c in status.get("conditions", [])
                 if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"]
        if stuck:
            raise ServingError(f"rollout of {manifest['metadata']['name']} is stuck ({progress}): "
                               f"{stuck[0].get('message', '')}")
        if time.monotonic() >= deadline:
            raise ServingError(f"rollout of {manifest['metadata']['name']} did not finish in "
                               f"{timeout_s:.0f}s ({progress}): see "
                               f"kubectl -n {manifest['metadata']['namespace']} describe deployment "
                               f"{manifest['metadata']['name']}")
        time.sleep(POLL_INTERVAL_S)


def wait_for_inference_service(api, manifest: dict, timeout_s: float) -> str:
    """Wait until KServe reports the InferenceService Ready for its latest generation."""
    path = resource_path(manifest)
    deadline = time.monotonic() + timeout_s
    while True:
        service = _request(api, "GET", path) or {}
        status = service.get("status", {})
        ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
        current = status.get("observedGeneration", 0) >= service.get("metadata", {}).get("generation", 1)
        if current and ready and ready[0].get("status") == "True":
            return f"ready at {status.get('url', '(no URL yet)')}"
        if time.monotonic() >= deadline:
            reason = ready[0].get("message", "") if ready else "no Ready condition yet"
            raise ServingError(f"InferenceService {manifest['metadata']['name']} not ready in "
                               f"{timeout_s:.0f}s: {reason}")
        time.sleep(POLL_INTERVAL_S)


def serve(api, model_name: str, model_format: str, model_store_pvc: str, namespace: str,
          model_version: int | None = None, kserve: bool = False,
          timeout_s: float = ROLLOUT_TIMEOUT_S, labels: ServingLabels | None = None,
          kserve_deployment_mode: str = "Knative", model_store_uri: str = "") -> str:
    """Apply the serving objects for the model store and wait for them; one-line summary."""
    if model_format not in MODEL_FORMATS:
        raise InputError(f"model_format '{model_format}' is not one of {', '.join(MODEL_FORMATS)}")
    labels = labels or ServingLabels(stable=model_version,
                                     known_versions=(model_version,) if model_version else ())
    shown = f"{model_name}" + (f" version {model_version}" if model_version else "")
    config = f"config {apply(api, serving_config_map(model_name, namespace, labels, model_store_uri))}"
    store = model_store_uri or f"pvc {model_store_pvc}"
    if model_format == "tensorflow" and not kserve:
        deployment = tf_serving_deployment(model_name, model_store_pvc, namespace, model_version, model_store_uri)
        service = tf_serving_service(model_name, namespace)
        applied = f"{config}, deployment {apply(api, deployment)}, service {apply(api, service)}"
        rollout = wait_for_rollout(api, deployment, timeout_s)
        name = deployment["metadata"]["name"]
        return (f"TF-Serving {name} in {namespace}: {applied}; {rollout}; serves {shown} "
                f"({labels.describe()}) from {store} at {name}.{namespace}.svc:{GRPC_PORT} "
                f"(gRPC), :{REST_PORT} (REST, metrics at {MONITORING_PATH})")
    manifest = kserve_inference_service(model_name, model_format, model_store_pvc, namespace,
                                        model_version, labels, kserve_deployment_mode, model_store_uri)
    try:
        outcome = apply(api, manifest)
    except ServingError as error:
        if "KServe is not installed" not in str(error):
            raise
        return (f"{shown} is published in {store} but not served: KServe "
                f"(serving.kserve.io/v1beta1) is not installed in this cluster")
    ready = wait_for_inference_service(api, manifest, timeout_s)
    return (f"KServe InferenceService {manifest['metadata']['name']} ({model_format}) in "
            f"{namespace}: {config}, inferenceservice {outcome}; {ready}; serves {shown} ({labels.describe()})")


def deploy_serving(model_name: str, model_format: str, model_store_pvc: str,
                   namespace: str | None, model_version: int | None = None,
                   kserve: bool = False, labels: ServingLabels | None = None,
                   kserve_deployment_mode: str = "Knative", model_store_uri: str = "") -> str:
    """Called by the deploy step inside a pod: serve the model store (the claim, or
    `model_store_uri` on object storage); one-line summary."""
    return serve(kube_api_client(), model_name, model_format, model_store_pvc,
                 namespace or pod_namespace(), model_version=model_version, kserve=kserve,
                 labels=labels, kserve_deployment_mode=kserve_deployment_mode, model_store_uri=model_store_uri)


# --------------------------------------------------------------------------- labels

def read_labels(api, model_name: str, namespace: str) -> ServingLabels | None:
    """The serving labels record in the model's ConfigMap, or None before the first deploy."""
    path = resource_path({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": config_map_name(model_name), "namespace": namespace}})
    found = _request(api, "GET", path)
    return None if found is None else labels_from_config_map(found)


def labels_in_cluster(model_name: str, namespace: str | None) -> ServingLabels | None:
    """Inside a pod (the gate and deploy steps): the serving labels, or None."""
    return read_labels(kube_api_client(), model_name, namespace or pod_namespace())


def set_labels(api, model_name: str, namespace: str, labels: ServingLabels,
               timeout_s: float = ROLLOUT_TIMEOUT_S) -> str:
    """Promote/rollback on a cluster: rewrite the labels (TF-Serving re-reads its model
    config), and point an existing InferenceService at the labelled versions."""
    path = resource_path({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": config_map_name(model_name), "namespace": namespace}})
    existing = _request(api, "GET", path) or {}
    model_store_uri = existing.get("data", {}).get("model_store_uri", "")  # the store stays where it is
    outcome = apply(api, serving_config_map(model_name, namespace, labels, model_store_uri))
    isvc_path = resource_path({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                               "metadata": {"name": object_name(model_name), "namespace": namespace}})
    try:
        isvc = _request(api, "GET", isvc_path)
    except ServingError as error:  # no KServe in this cluster: TF-Serving alone serves
        if "KServe is not installed" not in str(error):
            raise
        isvc = None
    lines = [f"serving labels of {model_name} in {namespace}: {labels.describe()} (configmap {outcome})"]
    if isvc is not None:
        model = isvc["spec"]["predictor"]["model"]
        store = model["storageUri"].removesuffix(f"/{model_name}")
        claim, uri = (store.removeprefix("pvc://"), "") if store.startswith("pvc://") else ("", store)
        mode = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode", "Knative")
        manifest = kserve_inference_service(model_name, model["modelFormat"]["name"], claim, namespace,
                                            labels.stable, labels, mode, uri)
        lines.append(f"InferenceService {apply(api, manifest)}; {wait_for_inference_service(api, manifest, timeout_s)}")
    return "; ".join(lines)
