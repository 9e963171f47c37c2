"""components/kube_serving.py and deploy/ against the Kubernetes schemas and a
local stand-in of the Kubernetes API.

There is no cluster here: `cluster_standins.KubeStandIn` is an HTTPS server on
127.0.0.1 (self-signed certificate) that answers GET and server-side apply the
way the API server does for what the deploy step sends, checks each body
against the `kubernetes` client models, and enforces the Role shipped in
deploy/rbac.yaml. The deploy step's own entry point, `deploy_serving`, runs
unchanged: in-cluster configuration from a service-account folder, TLS with
that folder's CA, the deployer's token.
"""

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cluster_standins import KubeStandIn, self_signed_tls
from referencing import Registry, Resource

from components import kube_serving
from components.errors import InputError
from components.images import VERSION

REPO = Path(__file__).resolve().parents[1]
DEPLOY_FILES = sorted((REPO / "deploy").glob("*.yaml"))
K8S = kubernetes_validate.latest_version()


def validate(manifest: dict) -> None:
    """Strict schema validation: unknown or misspelled fields fail too."""
    kubernetes_validate.validate(manifest, K8S, strict=True)


def validate_part(value: dict, schema: str) -> None:
    """Validate part of an object (e.g. a custom resource's metadata) against one bundled schema."""
    from kubernetes_validate import utils

    folder = f"kubernetes-json-schema/v{K8S}-local-strict"
    contents = utils.schema_contents(f"{folder}/{schema}.json", K8S)
    registry = Resource.from_contents(utils.schema_contents(f"{folder}/_definitions.json", K8S)) @ (
        Resource.from_contents(contents) @ Registry())
    jsonschema.validators.Draft202012Validator(contents, registry=registry).validate(value)


def shipped() -> list[dict]:
    return [doc for path in DEPLOY_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def role_rules(name: str = "kfp-ml-deployer") -> list[dict]:
    (role,) = [doc for doc in shipped() if doc["kind"] == "Role" and doc["metadata"]["name"] == name]
    return role["rules"]


# --------------------------------------------------------------------------- manifests

@pytest.mark.parametrize("model_name", ["sp500", "mnist_cnn"])
def test_serving_manifests_validate_against_the_kubernetes_schemas(model_name):
    validate(kube_serving.tf_serving_deployment(model_name, "model-store", "kubeflow", 3))
    validate(kube_serving.tf_serving_deployment(model_name, "model-store", "kubeflow"))
    validate(kube_serving.tf_serving_service(model_name, "kubeflow"))
    for model_format in kube_serving.MODEL_FORMATS:
        # KServe's CRD schema is not bundled: its metadata is checked, its spec by the stand-in's use.
        isvc = kube_serving.kserve_inference_service(model_name, model_format, "model-store", "kubeflow", 2)
        validate_part(isvc["metadata"], "objectmeta-meta-v1")


def test_schema_check_catches_a_misspelled_field():
    deployment = kube_serving.tf_serving_deployment("sp500", "model-store", "kubeflow")
    deployment["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def test_tf_serving_reads_the_model_store_read_only_and_probes_the_model():
    deployment = kube_serving.tf_serving_deployment("sp500", "store", "ns", 4)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == kube_serving.TF_SERVING_IMAGE and ":" in container["image"]
    assert "--model_base_path=/models/sp500" in container["args"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v1/models/sp500", "port": 8501}
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "store", "readOnly": True}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["metadata"]["annotations"] == {"kfp-ml-pipelines/model-version": "4"}
    service = kube_serving.tf_serving_service("sp500", "ns")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert set(deployment["spec"]["selector"]["matchLabels"].items()) <= \
        set(pod_labels := deployment["spec"]["template"]["metadata"]["labels"].items()), pod_labels


def test_lightgbm_serves_the_version_folder_and_needs_the_version():
    isvc = kube_serving.kserve_inference_service("crypto", "lightgbm", "store", "ns", 3)
    assert isvc["spec"]["predictor"]["model"] == {"modelFormat": {"name": "lightgbm"},
                                                  "storageUri": "pvc://store/crypto/3"}
    with pytest.raises(InputError, match="model_version is required"):
        kube_serving.kserve_inference_service("crypto", "lightgbm", "store", "ns")


@pytest.mark.parametrize("model_name", ["SP/500", "x-", "a" * 60, ""])
def test_model_names_that_cannot_name_kubernetes_objects(model_name):
    with pytest.raises(InputError, match="cannot name a Kubernetes object"):
        kube_serving.tf_serving_service(model_name, "ns")


# --------------------------------------------------------------------------- deploy/

@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: p.name)
def test_shipped_manifests_validate(path):
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert documents
    for document in documents:
        validate(document)


def test_rbac_is_least_privilege_in_one_namespace():
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for doc in shipped()}
    assert {doc["metadata"]["namespace"] for doc in objects.values()} == {"kubeflow"}
    assert not [kind for kind, _ in objects if kind.startswith("Cluster")], "no cluster-wide RBAC"
    binding = objects["RoleBinding", "kfp-ml-deployer"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "kfp-ml-deployer"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kfp-ml-deployer",
                                    "namespace": "kubeflow"}]
    token = objects["Secret", kube_serving.DEPLOYER_SECRET]
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "kfp-ml-deployer"
    for rule in role_rules():
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert set(rule["verbs"]) <= {"get", "create", "patch"}


def test_model_store_claim_is_what_the_pipelines_mount_by_default():
    (claim,) = [doc for doc in shipped() if doc["kind"] == "PersistentVolumeClaim"]
    compiled = REPO / "compiled" / "sp500.yaml"
    if compiled.exists():
        root = next(yaml.safe_load_all(compiled.read_text()))["root"]
        assert root["inputDefinitions"]["parameters"]["model_store_pvc"]["defaultValue"] == \
            claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_deploy_task_gets_the_deployer_token_as_an_optional_volume(tmp_path):
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11")
    def noop():
        pass

    @dsl.pipeline(name="mount")
    def mount():
        kube_serving.mount_deployer_credentials(noop())

    compiler.Compiler().compile(mount, str(tmp_path / "mount.yaml"))
    platform = list(yaml.safe_load_all((tmp_path / "mount.yaml").read_text()))[1]
    executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-noop"]
    (volume,) = executor["secretAsVolume"]
    assert volume["secretName"] == kube_serving.DEPLOYER_SECRET
    assert volume["mountPath"] == str(kube_serving.DEPLOYER_CREDENTIALS_DIR)
    assert volume["optional"] is True


# --------------------------------------------------------------------------- the API

@pytest.fixture
def cluster_pod(tmp_path, monkeypatch):
    """This process as a pod: API address in the environment, service-account and deployer folders."""
    tls, ca = self_signed_tls(tmp_path)
    folders = {}
    for name, token in (("serviceaccount", "pod-token"), ("deployer", "deployer-token")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "token").write_text(token)
        (folder / "ca.crt").write_bytes(ca.read_bytes())
        (folder / "namespace").write_text("kubeflow\n")
        folders[name] = folder
    monkeypatch.setattr(kube_serving, "SERVICE_ACCOUNT_DIR", folders["serviceaccount"])
    monkeypatch.setattr(kube_serving, "DEPLOYER_CREDENTIALS_DIR", folders["deployer"])
    monkeypatch.setattr(kube_serving, "POLL_INTERVAL_S", 0.01)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    return tls, folders, monkeypatch


def api_server(cluster_pod, **options) -> KubeStandIn:
    tls, _, monkeypatch = cluster_pod
    options.setdefault("token", "deployer-token")
    options.setdefault("role_rules", role_rules())
    server = KubeStandIn(tls, **options)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    return server


DEPLOYMENT = "/apis/apps/v1/namespaces/kubeflow/deployments/tf-serving-sp500"
SERVICE = "/api/v1/namespaces/kubeflow/services/tf-serving-sp500"


def test_in_cluster(cluster_pod, monkeypatch):
    assert kube_serving.in_cluster()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert not kube_serving.in_cluster()


def test_deploy_create_then_unchanged_then_new_version(cluster_pod):
    with api_server(cluster_pod) as server:
        created = kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        assert "deployment created, service created" in created and "rollout complete" in created
        assert "in kubeflow" in created, "the namespace defaults to the pod's own"
        assert "tf-serving-sp500.kubeflow.svc:8500" in created
        versions = {path: obj["metadata"]["resourceVersion"] for path, obj in server.objects.items()}
        for obj in server.objects.values():
            validate(obj)  # what reached the API server is a valid object too

        again = kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        assert "deployment unchanged, service unchanged" in again
        assert {p: o["metadata"]["resourceVersion"] for p, o in server.objects.items()} == versions

        newer = kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=2)
        assert "deployment updated, service unchanged" in newer and "version 2" in newer
        deployment = server.objects[DEPLOYMENT]
        assert deployment["metadata"]["annotations"]["kfp-ml-pipelines/model-version"] == "2"
        assert deployment["metadata"]["generation"] == 1, "a new model version restarts nothing"
        assert server.objects[SERVICE]["metadata"]["resourceVersion"] == versions[SERVICE]
        assert not server.errors, server.errors


def test_new_server_image_rolls_out_and_is_waited_for(cluster_pod):
    _, _, monkeypatch = cluster_pod
    with api_server(cluster_pod, rollout_polls=3) as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", "kubeflow")
        monkeypatch.setattr(kube_serving, "TF_SERVING_IMAGE", "tensorflow/serving:9.9.9")
        updated = kube_serving.deploy_serving("sp500", "tensorflow", "model-store", "kubeflow")
        assert "deployment updated" in updated and "rollout complete (1/1 updated, 1/1 available)" in updated
        assert server.objects[DEPLOYMENT]["metadata"]["generation"] == 2
        reads = [path for method, path in server.requests if method == "GET" and path == DEPLOYMENT]
        assert len(reads) >= 3 + 3, "the rollout was polled until complete, twice"
        assert server.objects[DEPLOYMENT]["metadata"]["labels"]["app.kubernetes.io/version"] == VERSION


def test_rollout_that_never_completes_fails_the_step_in_time(cluster_pod):
    with api_server(cluster_pod, rollout_polls=None):
        with pytest.raises(kube_serving.ServingError, match=r"did not finish in 0s \(0/1 updated"):
            kube_serving.serve(kube_serving.kube_api_client(), "sp500", "tensorflow", "model-store",
                               "kubeflow", timeout_s=0.1)


def test_without_the_deployer_token_the_pods_own_account_is_used(cluster_pod):
    _, folders, _ = cluster_pod
    (folders["deployer"] / "token").unlink()
    with api_server(cluster_pod, token="pod-token") as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None)
        assert DEPLOYMENT in server.objects


def test_without_any_token_the_step_says_where_it_looked(cluster_pod):
    _, folders, _ = cluster_pod
    for folder in folders.values():
        (folder / "token").unlink()
    with pytest.raises(kube_serving.ServingError, match="no Kubernetes credentials in .*serviceaccount"):
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", "kubeflow")


def test_missing_permission_is_one_line_that_points_at_the_rbac(cluster_pod):
    rules = [rule for rule in role_rules() if rule["resources"] != ["services"]]
    with api_server(cluster_pod, role_rules=rules):
        with pytest.raises(kube_serving.ServingError, match=r"HTTP 403 .*services.*deploy/rbac.yaml"):
            kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None)


def test_kserve_lightgbm_and_tensorflow(cluster_pod):
    with api_server(cluster_pod) as server:
        summary = kube_serving.deploy_serving("crypto", "lightgbm", "model-store", None, model_version=3)
        assert "InferenceService crypto (lightgbm) in kubeflow: created; ready at" in summary
        isvc = server.objects["/apis/serving.kserve.io/v1beta1/namespaces/kubeflow/inferenceservices/crypto"]
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == "pvc://model-store/crypto/3"
        newer = kube_serving.deploy_serving("crypto", "lightgbm", "model-store", None, model_version=4)
        assert ": updated;" in newer and isvc["metadata"]["generation"] == 1
        assert server.objects[
            "/apis/serving.kserve.io/v1beta1/namespaces/kubeflow/inferenceservices/crypto"]["metadata"][
            "generation"] == 2
        kserve_tf = kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, kserve=True)
        assert "InferenceService sp500 (tensorflow)" in kserve_tf
        assert not server.errors, server.errors


def test_without_kserve_lightgbm_says_why_it_is_not_served(cluster_pod):
    with api_server(cluster_pod, kserve=False):
        summary = kube_serving.deploy_serving("crypto", "lightgbm", "model-store", None, model_version=3)
    assert "published in pvc model-store but not served" in summary and "KServe" in summary


def test_role_grants_exactly_what_the_deploy_step_uses(cluster_pod):
    """Every rule in deploy/rbac.yaml is needed by some deploy, and nothing else is."""
    _, _, monkeypatch = cluster_pod
    with api_server(cluster_pod) as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        monkeypatch.setattr(kube_serving, "TF_SERVING_IMAGE", "tensorflow/serving:9.9.9")
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=2)
        kube_serving.deploy_serving("crypto", "lightgbm", "model-store", None, model_version=1)
        kube_serving.deploy_serving("crypto", "lightgbm", "model-store", None, model_version=2)
        assert server.used == server.allowed


def test_unknown_model_format():
    with pytest.raises(InputError, match="model_format 'onnx' is not one of tensorflow, lightgbm"):
        kube_serving.serve(None, "sp500", "onnx", "model-store", "kubeflow")
