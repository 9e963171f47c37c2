"""The deploy step against the Kubernetes API stand-in: creates, updates, rollouts, credentials, RBAC, profiles."""

import pytest
import yaml
from kube_serving_helpers import DEPLOYMENT, api_server
from standins.kube_api import KubeStandIn
from standins.manifests import REPO, role_rules, validate

from components.cluster import api as kube_api
from components.cluster import serving as kube_serving
from components.common.errors import InputError
from components.common.images import VERSION

SERVICE = "/api/v1/namespaces/kubeflow/services/tf-serving-sp500"


def test_in_cluster(cluster_pod, monkeypatch):
    assert kube_api.in_cluster()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert not kube_api.in_cluster()


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
    with api_server(cluster_pod, rollout_polls=3) as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", "kubeflow")
        updated = kube_serving.deploy_serving("sp500", "tensorflow", "model-store", "kubeflow",
                                              tf_serving_version="9.9.9")
        assert "deployment updated" in updated and "rollout complete (1/1 updated, 1/1 available)" in updated
        assert server.objects[DEPLOYMENT]["metadata"]["generation"] == 2
        reads = [path for method, path in server.requests if method == "GET" and path == DEPLOYMENT]
        assert len(reads) >= 3 + 3, "the rollout was polled until complete, twice"
        assert server.objects[DEPLOYMENT]["metadata"]["labels"]["app.kubernetes.io/version"] == VERSION


def test_rollout_that_never_completes_fails_the_step_in_time(cluster_pod):
    with api_server(cluster_pod, rollout_polls=None):
        with pytest.raises(kube_serving.ServingError, match=r"did not finish in 0s \(0/1 updated"):
            kube_serving.serve(kube_api.kube_api_client(), "sp500", "tensorflow", "model-store",
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
        assert ("InferenceService crypto (lightgbm) in kubeflow: config created, inferenceservice created; "
                "ready at") in summary
        isvc = server.objects["/apis/serving.kserve.io/v1beta1/namespaces/kubeflow/inferenceservices/crypto"]
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == "pvc://model-store/crypto/3"
        newer = kube_serving.deploy_serving("crypto", "lightgbm", "model-store", None, model_version=4)
        assert "config updated, inferenceservice updated;" in newer and isvc["metadata"]["generation"] == 1
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
    with api_server(cluster_pod) as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=2,
                                    tf_serving_version="9.9.9")
        kube_serving.deploy_serving("crypto", "lightgbm", "model-store", None, model_version=1)
        kube_serving.deploy_serving("crypto", "lightgbm", "model-store", None, model_version=2)
        assert server.used == server.allowed


def test_unknown_model_format():
    with pytest.raises(InputError, match="model_format 'onnx' is not one of tensorflow, lightgbm"):
        kube_serving.serve(None, "sp500", "onnx", "model-store", "kubeflow")


# --------------------------------------------------------------------------- multi-user Kubeflow

PROFILE = "team-a"


def rendered(target: str, *settings: str) -> list[dict]:
    import shutil
    import subprocess

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-s", target, *settings], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def rules_of(account: str, namespace: str, documents: list[dict]) -> list[dict]:
    """What `account` may do in `namespace`, from the Roles bound to it there (as the API server's RBAC
    authorizer reads the bindings)."""
    roles = {doc["metadata"]["name"]: doc for doc in documents
             if doc["kind"] == "Role" and doc["metadata"]["namespace"] == namespace}
    rules = []
    for binding in (doc for doc in documents if doc["kind"] == "RoleBinding"):
        subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
        if binding["metadata"]["namespace"] == namespace and subject in binding["subjects"] \
                and binding["roleRef"]["kind"] == "Role":
            rules += roles[binding["roleRef"]["name"]]["rules"]
    return rules


@pytest.fixture
def profile_pod(cluster_pod):
    """The deploy step's pod in a Kubeflow profile: its namespace is the profile's, its own
    token is default-editor's, and the deployer's token Secret may or may not be there."""
    tls, folders, monkeypatch = cluster_pod
    for folder in folders.values():
        (folder / "namespace").write_text(f"{PROFILE}\n")
    documents = rendered("deployer-manifest", f"NAMESPACE={PROFILE}", "PROFILE=1")
    for document in documents:
        validate(document)
    return tls, folders, monkeypatch, documents


def test_profile_manifests_stay_in_the_profile_namespace(profile_pod):
    *_, documents = profile_pod
    assert {doc["metadata"]["namespace"] for doc in documents} == {PROFILE}
    assert {subject["namespace"] for doc in documents if doc["kind"] == "RoleBinding"
            for subject in doc["subjects"]} == {PROFILE}
    assert not [doc for doc in documents if doc["kind"].startswith("Cluster")]
    without_profile = rendered("deployer-manifest", f"NAMESPACE={PROFILE}")
    assert rules_of("default-editor", PROFILE, without_profile) == [], "PROFILE=1 is what binds default-editor"


@pytest.mark.parametrize("account, token", [("kfp-ml-deployer", "deployer-token"), ("default-editor", "pod-token")],
                         ids=["deployer-token", "default-editor"])
def test_the_deploy_step_serves_in_its_profile_namespace(profile_pod, account, token):
    tls, folders, monkeypatch, documents = profile_pod
    if account == "default-editor":
        (folders["deployer"] / "token").unlink()  # no deployer Secret: the pod's own account
    rules = rules_of(account, PROFILE, documents)
    assert rules, f"{account} has no Role in {PROFILE}"
    server = KubeStandIn(tls, token=token, role_rules=rules, namespace=PROFILE)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    with server:
        served = kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        assert f"in {PROFILE}" in served and f"tf-serving-sp500.{PROFILE}.svc:8500" in served
        assert {path.split("/namespaces/")[1].split("/")[0] for path in server.objects} == {PROFILE}
        kube_serving.deploy_serving("mnist", "tensorflow", "model-store", None, model_version=1, kserve=True)
        assert server.used <= server.allowed
        assert not server.errors, server.errors


def test_the_profile_role_grants_nothing_in_another_namespace(profile_pod):
    tls, _, monkeypatch, documents = profile_pod
    server = KubeStandIn(tls, token="deployer-token", role_rules=rules_of("kfp-ml-deployer", PROFILE, documents),
                         namespace=PROFILE)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    with server:
        with pytest.raises(kube_serving.ServingError) as refused:
            kube_serving.deploy_serving("sp500", "tensorflow", "model-store", "kubeflow", model_version=1)
        assert len(str(refused.value).splitlines()) == 1
        assert "in the namespace" in str(refused.value) and "kubeflow" in str(refused.value)
        assert server.objects == {}
