"""The Kubernetes API as the deploy step and promote/rollback call it: credentials,
object names and paths, one-call requests and server-side apply.

Server-side apply (one PATCH per object, field manager "kfp-ml-pipelines")
creates what is missing and changes only what differs: applying the same
manifests twice changes nothing, which the API server shows by keeping the
object's resourceVersion.

Credentials: the token of the `kfp-ml-deployer` ServiceAccount when its token
Secret is mounted (deploy/rbac.yaml), else the pod's own ServiceAccount.
"""

import json
import os
import re
from pathlib import Path

from components.common.errors import InputError, ServingError

FIELD_MANAGER = "kfp-ml-pipelines"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEPLOYER_CREDENTIALS_DIR = Path("/var/run/secrets/kfp-ml-deployer")
MODEL_STORE_MOUNT = "/models"  # where serving pods mount the model store claim
ROLLOUT_TIMEOUT_S = 300
POLL_INTERVAL_S = 2.0
PLURALS = {"Deployment": "deployments", "Service": "services", "ConfigMap": "configmaps",
           "InferenceService": "inferenceservices"}
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def in_cluster() -> bool:
    """True inside a Kubernetes pod (the API address and a service-account token exist): the one
    place that tells a step on a cluster from one on a laptop (kfp.local)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT_DIR / "token").is_file()


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
    """The TF-Serving Deployment's and Service's name."""
    return object_name(model_name, "tf-serving-")


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


def request(api, method: str, path: str, body: dict | None = None,
            missing: tuple[int, ...] = (404,)) -> dict | None:
    """One API call returning the object as a dict, or None when a GET answers a
    `missing` status (404: the object does not exist)."""
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
        if error.status in missing and method == "GET":
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
    before = request(api, "GET", path)
    after = request(api, "PATCH", path, manifest)
    if before is None:
        return "created"
    same = before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
    return "unchanged" if same else "updated"
