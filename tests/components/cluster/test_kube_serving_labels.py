"""Serving labels on the Kubernetes API stand-in: canaries, promote and rollback, TF-Serving's config and loading."""

import pytest
from kube_serving_helpers import DEPLOYMENT, api_server
from standins.kube_api import KubeStandIn
from standins.manifests import role_rules

from components.cluster import api as kube_api
from components.cluster import serving as kube_serving
from components.common.errors import InputError
from components.store.serving_labels import ServingLabels

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
