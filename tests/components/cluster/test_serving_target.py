"""The serving target: chosen once from where the step runs, and where it reads the labels."""

from components.cluster import api as kube_api
from components.cluster import serving as kube_serving
from components.cluster.target import ClusterServing, InCluster, OutsideCluster, serving_target
from components.store.folder import FolderStore
from components.store.serving_labels import ServingLabels


def test_in_a_pod_the_cluster_else_the_store_alone(monkeypatch):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: True)
    options = ClusterServing(model_format="lightgbm", model_store_pvc="model-store")
    assert serving_target("team-a", options) == InCluster("team-a", options)
    assert serving_target("") == InCluster(None, ClusterServing()), "empty: the pod's own namespace"
    monkeypatch.setattr(kube_api, "in_cluster", lambda: False)
    assert isinstance(serving_target("team-a", options), OutsideCluster)


def test_the_cluster_labels_come_first_and_a_model_new_to_the_cluster_starts_from_the_store(tmp_path, monkeypatch):
    store = FolderStore(tmp_path)
    store.write_labels("sp500", ServingLabels(stable=1))
    on_cluster = {}
    monkeypatch.setattr(kube_serving, "labels_in_cluster", lambda name, namespace: on_cluster.get((name, namespace)))
    assert InCluster("team-a").current_labels(store, "sp500") == ServingLabels(stable=1)
    on_cluster["sp500", "team-a"] = ServingLabels(stable=4)
    assert InCluster("team-a").current_labels(store, "sp500") == ServingLabels(stable=4)
    assert OutsideCluster().current_labels(store, "sp500") == ServingLabels(stable=1)


def test_outside_a_cluster_the_store_records_the_labels(tmp_path):
    store = FolderStore(tmp_path)
    said = OutsideCluster().serve(store, "sp500", 1, ServingLabels(stable=1))
    assert said == "not in a Kubernetes pod: the model store (with labels.json) is the deployment"
    assert store.stored_labels("sp500") == ServingLabels(stable=1)
