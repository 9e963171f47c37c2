"""The serving manifests components/cluster/serving.py builds and those in deploy/, against the Kubernetes schemas."""

import inspect
from importlib import metadata

import kubernetes_validate
import pytest
import yaml
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
