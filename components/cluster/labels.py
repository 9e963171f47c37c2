"""The serving labels on a cluster: the `serving-<model>` ConfigMap and how a label
change reaches TF-Serving.

The ConfigMap holds the model's serving labels (`labels.json`: stable, canary
and its share, the published versions), TF-Serving's model config built from
them (versions served, version labels `stable`/`canary`) and its monitoring
config. The labels record lives there, not in the model store, because promote
and rollback (`pipelines.cli.lifecycle`) run where the store's claim is not mounted.

TF-Serving re-reads the model config every few seconds, but refuses a config
that moves a label already in use to a version it has not loaded
(server_core.cc, UpdateModelVersionLabelMap; its
--allow_version_labels_for_unavailable_models covers only labels not yet in
use). So a change that moves `stable` or `canary` to a version the current
config does not serve (a full deploy, a rollback to an unloaded version, a
second canary) goes in two steps: first a config that serves the old and the
new versions under the old labels (plus any new label), then, once TF-Serving's
model status (REST, through the API server's service proxy) says every new
version is AVAILABLE, the final config. Nothing else needs the wait.
"""

import json
import time
from dataclasses import dataclass

from components.cluster import api as kube_api
from components.cluster.api import (
    MODEL_STORE_MOUNT,
    ROLLOUT_TIMEOUT_S,
    apply,
    labels_of,
    object_name,
    request,
    resource_path,
    serving_name,
)
from components.common.errors import ServingError
from components.store.serving_config import model_config_text, monitoring_config_text, version_labels
from components.store.serving_labels import ServingLabels


def config_map_name(model_name: str) -> str:
    return object_name(model_name, "serving-")


def config_map_path(model_name: str, namespace: str) -> str:
    return resource_path({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": config_map_name(model_name), "namespace": namespace}})


def serving_config_map(model_name: str, namespace: str, labels: ServingLabels,
                       model_store_uri: str = "", also_serve: tuple[int, ...] = ()) -> dict:
    """The serving labels record, where the versions are (`model_store_uri`, or the claim
    mounted at /models when empty), and TF-Serving's model and monitoring configs
    (serving `also_serve` beside the labelled versions)."""
    base_path = f"{model_store_uri or MODEL_STORE_MOUNT}/{model_name}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map_name(model_name), "namespace": namespace,
                     "labels": labels_of(model_name, "serving-config")},
        "data": {"labels.json": json.dumps(labels.to_json(), sort_keys=True),
                 "model_store_uri": model_store_uri,
                 "models.config": model_config_text(model_name, base_path, labels, also_serve),
                 "monitoring.config": monitoring_config_text()},
    }


def labels_from_config_map(config_map: dict) -> ServingLabels:
    return ServingLabels.from_json(json.loads(config_map.get("data", {}).get("labels.json", "{}")))


def config_map_labels(api, model_name: str, namespace: str) -> ServingLabels | None:
    """The serving labels record in the model's ConfigMap, or None before the first deploy."""
    found = request(api, "GET", config_map_path(model_name, namespace))
    return None if found is None else labels_from_config_map(found)


def versions_to_load(before: ServingLabels, after: ServingLabels) -> tuple[int, ...]:
    """Versions that `after` moves a label in use to and that `before` does not serve:
    TF-Serving must report them AVAILABLE before the label may move."""
    old = version_labels(before)
    return tuple(sorted({version for name, version in version_labels(after).items()
                         if name in old and old[name] != version and version not in before.served()}))


def while_loading(before: ServingLabels, after: ServingLabels) -> ServingLabels:
    """The labels to apply while the new versions load: the old assignments, plus a canary
    that `after` adds where none was out (a new label may name an unloaded version)."""
    if before.canary is not None or after.canary is None:
        return ServingLabels(before.stable, before.canary, before.canary_percent, after.known_versions)
    return ServingLabels(before.stable, after.canary, after.canary_percent, after.known_versions)


@dataclass(frozen=True)
class LabelChange:
    """A label change under way: the first ConfigMap is applied, `final` waits for `loading`."""

    model_name: str
    namespace: str
    first: str  # the first apply's outcome: created, updated or unchanged
    final: dict
    loading: tuple[int, ...] = ()


def begin_label_change(api, model_name: str, namespace: str, labels: ServingLabels,
                       model_store_uri: str | None = None, tf_serving: bool = True) -> LabelChange:
    """Apply `labels` at once when TF-Serving allows it, else the config that loads the new
    versions first. `model_store_uri` None keeps the recorded one; `tf_serving` False (KServe
    serves the model, nothing reads the model config) never waits."""
    existing = request(api, "GET", config_map_path(model_name, namespace))
    before = labels_from_config_map(existing) if existing else ServingLabels()
    if model_store_uri is None:  # the store stays where it is
        model_store_uri = (existing or {}).get("data", {}).get("model_store_uri", "")
    final = serving_config_map(model_name, namespace, labels, model_store_uri)
    loading = versions_to_load(before, labels) if tf_serving else ()
    if not loading:
        return LabelChange(model_name, namespace, apply(api, final), final)
    first = serving_config_map(model_name, namespace, while_loading(before, labels), model_store_uri,
                               also_serve=tuple({*before.served(), *labels.served()}))
    return LabelChange(model_name, namespace, apply(api, first), final, loading)


def finish_label_change(api, change: LabelChange, timeout_s: float = ROLLOUT_TIMEOUT_S) -> str:
    """Wait until TF-Serving serves the new versions, then move the labels; '' when the
    change was applied whole."""
    if not change.loading:
        return ""
    for version in change.loading:
        wait_until_available(api, change.model_name, change.namespace, version, timeout_s)
    outcome = apply(api, change.final)
    shown = ", ".join(map(str, change.loading))
    return f"version {shown} AVAILABLE in TF-Serving, then the labels moved (config {outcome})"


def model_status_path(model_name: str, namespace: str, version: int) -> str:
    """TF-Serving's REST model status through the API server's service proxy: the step
    needs no network path to the Service, only `services/proxy` get (deploy/rbac.yaml)."""
    return (f"/api/v1/namespaces/{namespace}/services/{serving_name(model_name)}:http/proxy"
            f"/v1/models/{model_name}/versions/{version}")


def wait_until_available(api, model_name: str, namespace: str, version: int, timeout_s: float) -> None:
    """Poll the version's state until AVAILABLE; one-line ServingError on a failed load or timeout."""
    path = model_status_path(model_name, namespace, version)
    deadline = time.monotonic() + timeout_s
    while True:
        # 404: TF-Serving has not picked the version up yet; 503: no ready pod behind the Service.
        found = request(api, "GET", path, missing=(404, 503)) or {}
        status = (found.get("model_version_status") or [{}])[0]
        state = status.get("state", "not loaded")
        if state == "AVAILABLE":
            return
        error = " ".join(str(status.get("status", {}).get("error_message", "")).split())
        if state == "END" and error:  # the load failed: waiting longer cannot help
            raise ServingError(f"TF-Serving could not load version {version} of {model_name} in namespace "
                               f"{namespace}: {error}; the labels stay where they were")
        if time.monotonic() >= deadline:
            raise ServingError(f"version {version} of {model_name} did not become AVAILABLE in TF-Serving in "
                               f"namespace {namespace} within {timeout_s:.0f}s (state: {state}); the labels "
                               f"stay where they were: see kubectl -n {namespace} logs "
                               f"deployment/{serving_name(model_name)}")
        time.sleep(kube_api.POLL_INTERVAL_S)
