"""components/cluster/serving.py and deploy/ against the Kubernetes schemas and a
local stand-in of the Kubernetes API.

There is no cluster here: `standins.kube_api.KubeStandIn` is an HTTPS server on
127.0.0.1 (self-signed certificate) that answers GET and server-side apply the
way the API server does for what the deploy step sends, checks each body
against the `kubernetes` client models, and enforces the Role shipped in
deploy/rbac.yaml. The deploy step's own entry point, `deploy_serving`, runs
unchanged: in-cluster configuration from a service-account folder, TLS with
that folder's CA, the deployer's token.
"""

import inspect
from importlib import metadata

import kubernetes_validate
import pytest
import yaml
from standins.kube_api import KubeStandIn
from standins.manifests import (
    CRD_FILES,
    DEPLOY_FILES,
    REPO,
    role_rules,
    shipped,
    validate,
    validate_any,
    validate_custom,
)

from components.cluster import api as kube_api
from components.cluster import labels as kube_labels
from components.cluster import serving as kube_serving
from components.common.errors import InputError
from components.common.images import VERSION
from components.release import deploy
from components.store.serving_labels import ServingLabels

PROFILE_EXAMPLE = "kubeflow-user-example-com"  # deploy/profile-namespace.yaml's, the Kubeflow manifests' example


# --------------------------------------------------------------------------- manifests

@pytest.mark.parametrize("model_name", ["sp500", "mnist_cnn"])
def test_serving_manifests_validate_against_the_kubernetes_schemas(model_name):
    validate(kube_serving.tf_serving_deployment(model_name, "model-store", "kubeflow", 3))
    validate(kube_serving.tf_serving_deployment(model_name, "model-store", "kubeflow"))
    validate(kube_serving.tf_serving_service(model_name, "kubeflow"))



@pytest.mark.parametrize("crd_file", CRD_FILES["InferenceService"])
@pytest.mark.parametrize("model_format", kube_serving.MODEL_FORMATS)
def test_inference_services_validate_against_kserves_crd(crd_file, model_format):
    for mode in ("Knative", "Standard"):
        validate_custom(kube_serving.kserve_inference_service("mnist_cnn", model_format, "model-store", "kubeflow", 2,
                                                              deployment_mode=mode), crd_file)
    validate_custom(kube_serving.kserve_inference_service("crypto", model_format, "", "kubeflow", 2,
                                                          model_store_uri="gs://bucket/store"), crd_file)
    if model_format == "lightgbm":
        canary = ServingLabels(stable=2, canary=3, canary_percent=20, known_versions=(2, 3))
        validate_custom(kube_serving.kserve_inference_service("crypto", model_format, "store", "ns", 3, canary),
                        crd_file)


def test_kserve_serves_tensorflow_on_the_pinned_tf_serving_release():
    isvc = kube_serving.kserve_inference_service("mnist", "tensorflow", "store", "ns", 2)
    assert isvc["spec"]["predictor"]["model"] == {"modelFormat": {"name": "tensorflow"},
                                                  "storageUri": "pvc://store/mnist", "runtimeVersion": "2.21.0"}
    assert kube_serving.TF_SERVING_VERSION == "2.21.0" == metadata.version("tensorflow-serving-api"), \
        "the TF-Serving release of the pinned tensorflow-serving-api, which loads TF 2.21's SavedModels"
    deploy_default = inspect.signature(deploy.deploy_model.python_func).parameters["tf_serving_version"].default
    assert deploy_default == kube_serving.TF_SERVING_VERSION
    newer = kube_serving.kserve_inference_service("mnist", "tensorflow", "store", "ns", 2, tf_serving_version="2.22.0")
    assert newer["spec"]["predictor"]["model"]["runtimeVersion"] == "2.22.0"
    with pytest.raises(InputError, match="tf_serving_version 'latest please' is not an image tag of tensorflow/"):
        kube_serving.tf_serving_deployment("mnist", "store", "ns", 2, tf_serving_version="latest please")


def test_schema_check_catches_a_misspelled_field():
    deployment = kube_serving.tf_serving_deployment("sp500", "model-store", "kubeflow")
    deployment["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def test_tf_serving_reads_the_model_store_read_only_and_probes_the_model():
    deployment = kube_serving.tf_serving_deployment("sp500", "store", "ns", 4)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"tensorflow/serving:{kube_serving.TF_SERVING_VERSION}"
    assert "--model_config_file=/etc/tf-serving/models.config" in container["args"]
    assert "--monitoring_config_file=/etc/tf-serving/monitoring.config" in container["args"]
    assert {"name": "serving-config", "configMap": {"name": "serving-sp500"}} in pod["volumes"]
    assert {"name": "serving-config", "mountPath": "/etc/tf-serving", "readOnly": True} in container["volumeMounts"]
    # Prometheus finds the metrics through the pod's annotations (no ServiceMonitor needed).
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "8501",
        "prometheus.io/path": "/monitoring/prometheus/metrics"}
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
    assert isvc["spec"]["predictor"] == {"model": {"modelFormat": {"name": "lightgbm"},
                                                   "storageUri": "pvc://store/crypto/3"}}
    assert isvc["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Knative"}
    with pytest.raises(InputError, match="model_version is required"):
        kube_serving.kserve_inference_service("crypto", "lightgbm", "store", "ns")


def test_model_config_names_the_labelled_versions_and_monitoring_is_on():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    labels = ServingLabels(stable=1, canary=2, canary_percent=20, known_versions=(1, 2))
    config_map = kube_labels.serving_config_map("sp500", "ns", labels)
    validate(config_map)
    config = text_format.Parse(config_map["data"]["models.config"], model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("sp500", "/models/sp500", "tensorflow")
    assert list(model.model_version_policy.specific.versions) == [1, 2]
    assert dict(model.version_labels) == {"stable": 1, "canary": 2}
    assert kube_labels.labels_from_config_map(config_map) == labels
    assert config_map["data"]["monitoring.config"] == (
        'prometheus_config {\n  enable: true\n  path: "/monitoring/prometheus/metrics"\n}\n')
    unlabelled = kube_labels.serving_config_map("sp500", "ns", ServingLabels())
    assert "model_version_policy" not in unlabelled["data"]["models.config"], "no labels: the latest version"


@pytest.mark.parametrize("mode", ["Knative", "Serverless"])
def test_kserve_canary_share_is_canary_traffic_percent_in_knative_mode(mode):
    labels = ServingLabels(stable=3, canary=4, canary_percent=25, known_versions=(3, 4))
    isvc = kube_serving.kserve_inference_service("crypto", "lightgbm", "store", "ns", 4, labels, mode)
    assert isvc["spec"]["predictor"] == {"canaryTrafficPercent": 25, "model": {
        "modelFormat": {"name": "lightgbm"}, "storageUri": "pvc://store/crypto/4"}}
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    promoted = kube_serving.kserve_inference_service("crypto", "lightgbm", "store", "ns", 4,
                                                     ServingLabels(stable=4, known_versions=(3, 4)), mode)
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]


@pytest.mark.parametrize("mode", ["Standard", "RawDeployment"])
def test_kserve_standard_mode_has_no_traffic_split(mode):
    labels = ServingLabels(stable=3, canary=4, canary_percent=25, known_versions=(3, 4))
    with pytest.raises(InputError, match="canaryTrafficPercent works only in Knative"):
        kube_serving.kserve_inference_service("crypto", "lightgbm", "store", "ns", 4, labels, mode)
    full = kube_serving.kserve_inference_service("crypto", "lightgbm", "store", "ns", 4,
                                                 ServingLabels(stable=4), mode)
    assert full["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    with pytest.raises(InputError, match="kserve_deployment_mode 'ModelMesh' is not one of"):
        kube_serving.kserve_inference_service("crypto", "lightgbm", "store", "ns", 4, None, "ModelMesh")


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
        validate_any(document)


def test_rbac_is_least_privilege_in_one_namespace():
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for doc in shipped()
               if doc["metadata"]["namespace"] != PROFILE_EXAMPLE}
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
    # What every default storage class binds; ReadWriteMany is a setting (make model-store).
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"], "no class named: the cluster's default binds it"


def rendered_model_store(*settings: str) -> list[dict]:
    import shutil
    import subprocess

    if not shutil.which("make"):
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-s", "model-store-manifest", *settings], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_make_model_store_renders_the_settings_into_valid_manifests():
    documents = rendered_model_store("NAMESPACE=team-a", "MODEL_STORE_ACCESS_MODE=ReadWriteMany",
                                     "MODEL_STORE_STORAGE_CLASS=filestore-rwx", "MODEL_STORE_SIZE=50Gi")
    for document in documents:
        validate(document)
        assert document["metadata"]["namespace"] == "team-a"
    claim, job = documents
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "filestore-rwx"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == \
        claim["metadata"]["name"]


def test_the_ownership_job_makes_the_volume_writable_for_both_step_users():
    (job,) = [doc for doc in shipped() if doc["kind"] == "Job"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    script = " ".join(container["command"])
    # STEP_USER=nonroot writes as the owner (uid 1000), STEP_USER=root (uid 0, no capabilities) through group 0,
    # also into what an earlier version of this Job or another mode left there.
    assert "chown -R 1000:0 /models && chmod -R g+rwX /models" in script
    assert "find /models -type d -exec chmod g+s {} +" in script
    assert "fsGroup" not in pod["securityContext"], "the kubelet would give the files to group 1000"
    assert container["volumeMounts"][0]["mountPath"] == kube_serving.MODEL_STORE_MOUNT
    # root, but with no capability beyond changing ownership and modes
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}
    dockerfile = (REPO / "images" / "Dockerfile").read_text()
    assert "USER 1000:1000" in dockerfile


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
    assert volume["mountPath"] == str(kube_api.DEPLOYER_CREDENTIALS_DIR)
    assert volume["optional"] is True


# --------------------------------------------------------------------------- the API

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


CONFIG_MAP = "/api/v1/namespaces/kubeflow/configmaps/serving-sp500"
CRYPTO_ISVC = "/apis/serving.kserve.io/v1beta1/namespaces/kubeflow/inferenceservices/crypto"


def test_canary_then_promote_and_rollback_on_tf_serving(cluster_pod):
    """The deploy step's labels reach TF-Serving's model config; promote and rollback from a
    workstation rewrite only that config (no restart), idempotently, and refuse unknown versions."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from pipelines.cli import lifecycle

    def served_labels():
        config = text_format.Parse(server.objects[CONFIG_MAP]["data"]["models.config"],
                                   model_server_config_pb2.ModelServerConfig())
        return dict(config.model_config_list.config[0].version_labels)

    with api_server(cluster_pod) as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        assert kube_serving.labels_in_cluster("sp500", None) == ServingLabels(stable=1, known_versions=(1,))
        canary = ServingLabels(stable=1, canary=2, canary_percent=20, known_versions=(1, 2))
        out = kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=2, labels=canary)
        assert "config updated, deployment updated, service unchanged" in out and "canary=2 (20% of traffic)" in out
        assert served_labels() == {"stable": 1, "canary": 2}
        generation = server.objects[DEPLOYMENT]["metadata"]["generation"]

        api = kube_api.kube_api_client()
        promoted = lifecycle.run_cluster("promote", "sp500", None, "kubeflow", api)
        assert promoted.startswith("sp500: stable=2 (was stable=1, canary=2 (20% of traffic))")
        assert served_labels() == {"stable": 2}
        assert lifecycle.run_cluster("promote", "sp500", None, "kubeflow", api) == "sp500: unchanged, stable=2"
        rolled = lifecycle.run_cluster("rollback", "sp500", 1, "kubeflow", api)
        assert rolled.startswith("sp500: stable=1 (was stable=2)") and served_labels() == {"stable": 1}
        assert lifecycle.run_cluster("rollback", "sp500", 1, "kubeflow", api) == "sp500: unchanged, stable=1"
        with pytest.raises(InputError, match=r"version 5 of sp500 is not in the model store \(versions: 1, 2\)"):
            lifecycle.run_cluster("rollback", "sp500", 5, "kubeflow", api)
        assert server.objects[DEPLOYMENT]["metadata"]["generation"] == generation, "labels restart nothing"
        assert not server.errors, server.errors


def tf_serving_configs(server: KubeStandIn) -> list[tuple[list[int], dict[str, int]]]:
    """The TF-Serving model configs applied to sp500's ConfigMap, in order, each once:
    (versions served, version labels)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    configs = []
    for path, config_map in server.applied:
        if path == CONFIG_MAP:
            (model,) = text_format.Parse(config_map["data"]["models.config"],
                                         model_server_config_pb2.ModelServerConfig()).model_config_list.config
            config = (list(model.model_version_policy.specific.versions), dict(model.version_labels))
            if not configs or configs[-1] != config:
                configs.append(config)
    return configs


def status_reads(server: KubeStandIn) -> list[str]:
    return [path for method, path in server.requests if "/proxy/" in path]


STATUS_OF_2 = "/api/v1/namespaces/kubeflow/services/tf-serving-sp500:http/proxy/v1/models/sp500/versions/2"


def test_a_full_deploy_loads_the_new_version_before_moving_stable(cluster_pod):
    with api_server(cluster_pod, model_loads=2) as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        full = ServingLabels(stable=2, known_versions=(1, 2))
        out = kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=2, labels=full)
        assert tf_serving_configs(server) == [([1], {"stable": 1}), ([1, 2], {"stable": 1}), ([2], {"stable": 2})]
        assert status_reads(server) == [STATUS_OF_2, STATUS_OF_2], "polled until AVAILABLE (the second read)"
        assert "rollout complete (1/1 updated, 1/1 available); version 2 AVAILABLE in TF-Serving, then the " \
               "labels moved (config updated); serves sp500 version 2 (stable=2)" in out
        assert kube_serving.labels_in_cluster("sp500", None) == full
        assert not server.errors, server.errors


def test_a_rollback_to_an_unloaded_version_loads_it_first(cluster_pod):
    from pipelines.cli import lifecycle

    with api_server(cluster_pod) as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=2,
                                    labels=ServingLabels(stable=2, known_versions=(1, 2)))
        rolled = lifecycle.run_cluster("rollback", "sp500", 1, "kubeflow", kube_api.kube_api_client())
        assert rolled == ("sp500: stable=1 (was stable=2); serving labels of sp500 in kubeflow: stable=1 "
                          "(configmap updated); version 1 AVAILABLE in TF-Serving, then the labels moved "
                          "(config updated)")
        assert tf_serving_configs(server)[-3:] == [([2], {"stable": 2}), ([1, 2], {"stable": 2}),
                                                  ([1], {"stable": 1})]
        assert status_reads(server)[-1].endswith("/proxy/v1/models/sp500/versions/1")
        assert not server.errors, server.errors


def test_a_version_that_never_loads_fails_in_one_line_and_stable_stays(cluster_pod):
    with api_server(cluster_pod, model_loads=None) as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        with pytest.raises(kube_serving.ServingError) as failed:
            kube_serving.serve(kube_api.kube_api_client(), "sp500", "tensorflow", "model-store", "kubeflow",
                               model_version=2, labels=ServingLabels(stable=2, known_versions=(1, 2)), timeout_s=0.1)
        assert str(failed.value) == (
            "version 2 of sp500 did not become AVAILABLE in TF-Serving in namespace kubeflow within 0s "
            "(state: LOADING); the labels stay where they were: see kubectl -n kubeflow logs "
            "deployment/tf-serving-sp500")
        assert tf_serving_configs(server) == [([1], {"stable": 1}), ([1, 2], {"stable": 1})]
        # The record keeps stable=1 and knows version 2 was published (a later promote may name it).
        assert kube_serving.labels_in_cluster("sp500", None) == ServingLabels(stable=1, known_versions=(1, 2))
        assert not server.errors, server.errors


def test_a_first_deploy_and_a_new_canary_need_one_config_a_second_canary_two(cluster_pod):
    with api_server(cluster_pod) as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        canary = ServingLabels(stable=1, canary=2, canary_percent=20, known_versions=(1, 2))
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=2, labels=canary)
        assert tf_serving_configs(server) == [([1], {"stable": 1}), ([1, 2], {"stable": 1, "canary": 2})]
        assert status_reads(server) == [], "a new label may name a version still loading"
        second = ServingLabels(stable=1, canary=3, canary_percent=20, known_versions=(1, 2, 3))
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=3, labels=second)
        assert tf_serving_configs(server)[2:] == [([1, 2, 3], {"stable": 1, "canary": 2}),
                                                  ([1, 3], {"stable": 1, "canary": 3})]
        assert [path.rsplit("/", 1)[1] for path in status_reads(server)] == ["3"]
        assert not server.errors, server.errors


def test_without_the_service_proxy_grant_a_label_move_is_refused_in_one_line(cluster_pod):
    rules = [rule for rule in role_rules() if rule["resources"] != ["services/proxy"]]
    with api_server(cluster_pod, role_rules=rules) as server:
        kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=1)
        with pytest.raises(kube_serving.ServingError, match=r"^cannot get .*/proxy/v1/models/sp500/versions/2: "
                                                            r"HTTP 403 .*services/proxy.*deploy/rbac.yaml"):
            kube_serving.deploy_serving("sp500", "tensorflow", "model-store", None, model_version=2)
        assert tf_serving_configs(server)[-1] == ([1, 2], {"stable": 1})


def test_kserve_canary_share_then_promote_and_rollback(cluster_pod):
    from pipelines.cli import lifecycle

    with api_server(cluster_pod) as server:
        kube_serving.deploy_serving("crypto", "lightgbm", "model-store", None, model_version=1)
        canary = ServingLabels(stable=1, canary=2, canary_percent=10, known_versions=(1, 2))
        kube_serving.deploy_serving("crypto", "lightgbm", "model-store", None, model_version=2, labels=canary)
        predictor = server.objects[CRYPTO_ISVC]["spec"]["predictor"]
        assert predictor["canaryTrafficPercent"] == 10 and predictor["model"]["storageUri"] == "pvc://model-store/crypto/2"

        api = kube_api.kube_api_client()
        lifecycle.run_cluster("rollback", "crypto", None, "kubeflow", api)  # drop the canary
        predictor = server.objects[CRYPTO_ISVC]["spec"]["predictor"]
        assert "canaryTrafficPercent" not in predictor and predictor["model"]["storageUri"].endswith("/crypto/1")
        lifecycle.run_cluster("promote", "crypto", 2, "kubeflow", api)
        assert server.objects[CRYPTO_ISVC]["spec"]["predictor"]["model"]["storageUri"].endswith("/crypto/2")
        with pytest.raises(InputError, match="model 'mnist' has no serving labels in namespace kubeflow"):
            lifecycle.run_cluster("promote", "mnist", None, "kubeflow", api)
        assert not server.errors, server.errors


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
