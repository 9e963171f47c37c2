"""Serving the model store inside the cluster: the deploy step's Kubernetes path.

Every deploy applies the `serving-<model>` ConfigMap (the serving labels and
TF-Serving's model and monitoring configs, `components.cluster.labels`). For
`model_format` "tensorflow" the step server-side-applies (`components.cluster.api`)
a TF-Serving Deployment and Service that read `<model_store_pvc>/<model_name>/`
through that model config, re-read every MODEL_CONFIG_POLL_S (a new version or
label needs no restart; the kubelet refreshes a mounted ConfigMap within about a
minute). A deploy that moves a label to a version TF-Serving does not serve yet
loads it first and moves the label once it is AVAILABLE (see kube_labels). Pod
annotations `prometheus.io/scrape|port|path` let a Prometheus with the usual
pod-annotation scrape job find the metrics without a ServiceMonitor.

(At about 360 lines this module is kept whole: the TF-Serving and KServe objects, their rollout
waits and `serve`, which chooses between them, are read and changed together.)
With `kserve=True`, or for "lightgbm", it applies a KServe InferenceService
(LightGBM: KServe's runtime wants one `*.bst` file in the version folder); a
cluster without KServe gets a message saying so, and the model stays published.

Canary: TF-Serving labels the new version `canary` and clients ask by label.
KServe splits traffic itself with `spec.predictor.canaryTrafficPercent`, which
KServe supports only in its Knative (formerly "Serverless") deployment mode; in
Standard (formerly "RawDeployment") mode there is no traffic split and a canary
is refused before anything is published. The InferenceService names its mode in
the `serving.kserve.io/deploymentMode` annotation.

Applying the same manifests twice changes nothing. Then the step waits, with a
time limit, for the rollout and reports the result in one line.

Credentials: the token of the `kfp-ml-deployer` ServiceAccount when its token
Secret is mounted (deploy/rbac.yaml and `mount_deployer_credentials`), else the
pod's own ServiceAccount. The deployer may only get, create and patch
Deployments, Services, ConfigMaps and InferenceServices in its namespace, and
read TF-Serving's model status through the Service proxy.
"""

import re
import time

from components.cluster import api as kube_api
from components.cluster.api import (
    MODEL_STORE_MOUNT,
    ROLLOUT_TIMEOUT_S,
    apply,
    kube_api_client,
    labels_of,
    object_name,
    pod_namespace,
    request,
    resource_path,
    serving_name,
)
from components.cluster.labels import begin_label_change, config_map_labels, config_map_name, finish_label_change
from components.common.errors import InputError, ServingError
from components.common.images import VERSION
from components.store.serving_config import MONITORING_PATH
from components.store.serving_labels import ServingLabels

# The TF-Serving release both servers run: the TF-Serving Deployment's image tag, and the KServe
# TensorFlow runtime's `runtimeVersion` (without it KServe 0.20 runs tensorflow/serving:2.6.2, which
# predates the SavedModels TF 2.21 exports). The release of tensorflow-serving-api in pyproject.
TF_SERVING_VERSION = "2.21.0"
TF_SERVING_REPOSITORY = "tensorflow/serving"
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # what a Docker image tag may be
DEPLOYER_SECRET = "kfp-ml-deployer-token"
GRPC_PORT, REST_PORT = 8500, 8501
MODEL_FORMATS = ("tensorflow", "lightgbm")
CONFIG_DIR = "/etc/tf-serving"
MODEL_CONFIG_POLL_S = 10
KSERVE_MODES = {"Knative": "Knative", "Serverless": "Knative", "Standard": "Standard",
                "RawDeployment": "Standard"}  # the names since KServe 0.15, and the older ones


def mount_deployer_credentials(task):
    """Mount the deployer's token Secret into a deploy task (optional: absent -> pod's own SA)."""
    from kfp import kubernetes

    return kubernetes.use_secret_as_volume(task, secret_name=DEPLOYER_SECRET,
                                           mount_path=str(kube_api.DEPLOYER_CREDENTIALS_DIR), optional=True)


# --------------------------------------------------------------------------- manifests

def check_tf_serving_version(version: str) -> str:
    if not IMAGE_TAG.match(version):
        raise InputError(f"tf_serving_version '{version}' is not an image tag of {TF_SERVING_REPOSITORY}, "
                         f"e.g. {TF_SERVING_VERSION}")
    return version


def tf_serving_deployment(model_name: str, model_store_pvc: str, namespace: str,
                          model_version: int | None = None, model_store_uri: str = "",
                          tf_serving_version: str = TF_SERVING_VERSION) -> dict:
    """TF-Serving reading `<pvc>/<model_name>/<N>/` read-only (or `<model_store_uri>/<model_name>/`
    on object storage, with no volume) through the ConfigMap's model config, with Prometheus
    metrics; ready once a version is loaded."""
    name = serving_name(model_name)
    selector = {k: v for k, v in labels_of(model_name, "tf-serving").items()
                if k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    annotations = {"kfp-ml-pipelines/model-version": str(model_version)} if model_version else {}
    container = {
        "name": "tf-serving",
        "image": f"{TF_SERVING_REPOSITORY}:{check_tf_serving_version(tf_serving_version)}",
        # The image's entrypoint script adds its own --model_name; call the server directly.
        "command": ["tensorflow_model_server"],
        "args": [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}",
                 f"--model_config_file={CONFIG_DIR}/models.config",
                 f"--model_config_file_poll_wait_seconds={MODEL_CONFIG_POLL_S}",
                 # A new canary is labelled before TF-Serving has loaded it. This flag covers
                 # only labels not yet in use: moving `stable` to a version not loaded yet is
                 # refused (server_core.cc), so kube_labels loads such a version first.
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
                             model_store_uri: str = "", tf_serving_version: str = TF_SERVING_VERSION) -> dict:
    """A KServe InferenceService on the model store.

    TensorFlow: the model folder (KServe's TF runtime serves the highest
    version like TF-Serving), on TF-Serving `tf_serving_version` (the runtime's
    image tag: `runtimeVersion`). LightGBM: the version folder itself, because
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
    if model_format == "tensorflow":
        predictor["model"]["runtimeVersion"] = check_tf_serving_version(tf_serving_version)
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

def wait_for_rollout(api, manifest: dict, timeout_s: float) -> str:
    """Wait until every replica runs the applied spec; fail on timeout or a stuck rollout."""
    path = resource_path(manifest)
    deadline = time.monotonic() + timeout_s
    while True:
        deployment = request(api, "GET", path) or {}
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
        time.sleep(kube_api.POLL_INTERVAL_S)


def wait_for_inference_service(api, manifest: dict, timeout_s: float) -> str:
    """Wait until KServe reports the InferenceService Ready for its latest generation."""
    path = resource_path(manifest)
    deadline = time.monotonic() + timeout_s
    while True:
        service = request(api, "GET", path) or {}
        status = service.get("status", {})
        ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
        current = status.get("observedGeneration", 0) >= service.get("metadata", {}).get("generation", 1)
        if current and ready and ready[0].get("status") == "True":
            return f"ready at {status.get('url', '(no URL yet)')}"
        if time.monotonic() >= deadline:
            reason = ready[0].get("message", "") if ready else "no Ready condition yet"
            raise ServingError(f"InferenceService {manifest['metadata']['name']} not ready in "
                               f"{timeout_s:.0f}s: {reason}")
        time.sleep(kube_api.POLL_INTERVAL_S)


def serve(api, model_name: str, model_format: str, model_store_pvc: str, namespace: str,
          model_version: int | None = None, kserve: bool = False,
          timeout_s: float = ROLLOUT_TIMEOUT_S, labels: ServingLabels | None = None,
          kserve_deployment_mode: str = "Knative", model_store_uri: str = "",
          tf_serving_version: str = TF_SERVING_VERSION) -> str:
    """Apply the serving objects for the model store and wait for them; one-line summary."""
    if model_format not in MODEL_FORMATS:
        raise InputError(f"model_format '{model_format}' is not one of {', '.join(MODEL_FORMATS)}")
    labels = labels or ServingLabels(stable=model_version,
                                     known_versions=(model_version,) if model_version else ())
    shown = f"{model_name}" + (f" version {model_version}" if model_version else "")
    tf_serving = model_format == "tensorflow" and not kserve
    change = begin_label_change(api, model_name, namespace, labels, model_store_uri, tf_serving)
    config = f"config {change.first}"
    store = model_store_uri or f"pvc {model_store_pvc}"
    if tf_serving:
        deployment = tf_serving_deployment(model_name, model_store_pvc, namespace, model_version, model_store_uri,
                                           tf_serving_version)
        service = tf_serving_service(model_name, namespace)
        applied = f"{config}, deployment {apply(api, deployment)}, service {apply(api, service)}"
        rollout = wait_for_rollout(api, deployment, timeout_s)
        moved = finish_label_change(api, change, timeout_s)
        moved = f"{moved}; " if moved else ""
        name = deployment["metadata"]["name"]
        return (f"TF-Serving {name} in {namespace}: {applied}; {rollout}; {moved}serves {shown} "
                f"({labels.describe()}) from {store} at {name}.{namespace}.svc:{GRPC_PORT} "
                f"(gRPC), :{REST_PORT} (REST, metrics at {MONITORING_PATH})")
    manifest = kserve_inference_service(model_name, model_format, model_store_pvc, namespace,
                                        model_version, labels, kserve_deployment_mode, model_store_uri,
                                        tf_serving_version)
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
                   kserve_deployment_mode: str = "Knative", model_store_uri: str = "",
                   tf_serving_version: str = TF_SERVING_VERSION) -> str:
    """Called by the deploy step inside a pod: serve the model store (the claim, or
    `model_store_uri` on object storage); one-line summary."""
    return serve(kube_api_client(), model_name, model_format, model_store_pvc,
                 namespace or pod_namespace(), model_version=model_version, kserve=kserve,
                 labels=labels, kserve_deployment_mode=kserve_deployment_mode, model_store_uri=model_store_uri,
                 tf_serving_version=tf_serving_version)


# --------------------------------------------------------------------------- labels

def labels_in_cluster(model_name: str, namespace: str | None) -> ServingLabels | None:
    """Inside a pod (the gate and deploy steps): the serving labels in the cluster, or None."""
    return config_map_labels(kube_api_client(), model_name, namespace or pod_namespace())


def set_labels(api, model_name: str, namespace: str, labels: ServingLabels,
               timeout_s: float = ROLLOUT_TIMEOUT_S) -> str:
    """Promote/rollback on a cluster: rewrite the labels (TF-Serving re-reads its model
    config; a label moving to an unloaded version waits for it), and point an existing
    InferenceService at the labelled versions."""
    # Only a TF-Serving behind its Service reads the model config (and can be asked for a version's state).
    tf_serving = request(api, "GET", resource_path(tf_serving_service(model_name, namespace))) is not None
    change = begin_label_change(api, model_name, namespace, labels, tf_serving=tf_serving)
    moved = finish_label_change(api, change, timeout_s)
    isvc_path = resource_path({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                               "metadata": {"name": object_name(model_name), "namespace": namespace}})
    isvc = request(api, "GET", isvc_path)  # None without one, or without KServe in the cluster
    lines = [f"serving labels of {model_name} in {namespace}: {labels.describe()} (configmap {change.first})"]
    lines += [moved] if moved else []
    if isvc is not None:
        model = isvc["spec"]["predictor"]["model"]
        store = model["storageUri"].removesuffix(f"/{model_name}")
        claim, uri = (store.removeprefix("pvc://"), "") if store.startswith("pvc://") else ("", store)
        mode = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode", "Knative")
        manifest = kserve_inference_service(model_name, model["modelFormat"]["name"], claim, namespace,
                                            labels.stable, labels, mode, uri,
                                            model.get("runtimeVersion", TF_SERVING_VERSION))
        lines.append(f"InferenceService {apply(api, manifest)}; {wait_for_inference_service(api, manifest, timeout_s)}")
    return "; ".join(lines)
