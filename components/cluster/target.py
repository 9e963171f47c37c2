"""Where a deploy serves: chosen once, by whether the step runs in a Kubernetes pod.

`serving_target()` answers `InCluster` inside a pod: the serving labels are the
cluster's (the `serving-<model>` ConfigMap, `components.cluster.labels`) and a
deploy applies the serving objects (`components.cluster.serving`), which read the
model store by themselves (a bucket) or through its claim. Outside a cluster (a
laptop run through kfp.local) it answers `OutsideCluster`: the model store is the
deployment, with the labels record it keeps.

The gate and deploy steps call a target and a store (`components.store.open_store`)
and never ask where they run or which store they have.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from components.cluster import api as kube_api
from components.cluster import serving
from components.store.base import ModelStore
from components.store.serving_labels import ServingLabels


@dataclass(frozen=True)
class ClusterServing:
    """How a cluster serves the model: the deploy step's serving parameters (see `deploy_model`)."""

    model_format: str = "tensorflow"
    use_kserve: bool = False
    kserve_deployment_mode: str = "Knative"
    tf_serving_version: str = serving.TF_SERVING_VERSION
    model_store_pvc: str = ""


class ServingTarget(ABC):
    @abstractmethod
    def current_labels(self, store: ModelStore, model_name: str) -> ServingLabels:
        """The labels serving now, where this target serves."""

    @abstractmethod
    def check(self, store: ModelStore, model_name: str, canary_percent: int) -> None:
        """Refuse, before anything is published, what this target could never serve."""

    @abstractmethod
    def serve(self, store: ModelStore, model_name: str, version: int, labels: ServingLabels) -> str:
        """Serve `version`, just published, under `labels`; one line saying where."""


class OutsideCluster(ServingTarget):
    def check(self, store: ModelStore, model_name: str, canary_percent: int) -> None:
        """Nothing to refuse: without a server, the store itself is what is served."""

    def current_labels(self, store: ModelStore, model_name: str) -> ServingLabels:
        return store.serving_labels(model_name)

    def serve(self, store: ModelStore, model_name: str, version: int, labels: ServingLabels) -> str:
        return f"not in a Kubernetes pod: {store.record_labels(model_name, labels)}"


@dataclass(frozen=True)
class InCluster(ServingTarget):
    namespace: str | None = None  # None: the pod's own
    options: ClusterServing = field(default_factory=ClusterServing)

    def current_labels(self, store: ModelStore, model_name: str) -> ServingLabels:
        """The cluster's labels; a model never served on this cluster starts from the store's."""
        return serving.labels_in_cluster(model_name, self.namespace) or store.serving_labels(model_name)

    def check(self, store: ModelStore, model_name: str, canary_percent: int) -> None:
        serving.object_name(model_name)
        store.cluster_uri(kube_api.MODEL_STORE_MOUNT)
        if self.options.model_format == "lightgbm" or self.options.use_kserve:
            serving.check_kserve_canary(self.options.model_format, canary_percent, self.options.kserve_deployment_mode)
        serving.check_tf_serving_version(self.options.tf_serving_version)

    def serve(self, store: ModelStore, model_name: str, version: int, labels: ServingLabels) -> str:
        return serving.deploy_serving(
            model_name=model_name, model_format=self.options.model_format, model_store_pvc=self.options.model_store_pvc,
            namespace=self.namespace, model_version=version, kserve=self.options.use_kserve, labels=labels,
            kserve_deployment_mode=self.options.kserve_deployment_mode,
            model_store_uri=store.cluster_uri(kube_api.MODEL_STORE_MOUNT),
            tf_serving_version=self.options.tf_serving_version)


def serving_target(namespace: str = "", options: ClusterServing | None = None) -> ServingTarget:
    """In a pod, the cluster (serving objects in `namespace`, empty: the pod's own, served as
    `options` say); else the store alone."""
    if kube_api.in_cluster():
        return InCluster(namespace or None, options or ClusterServing())
    return OutsideCluster()
