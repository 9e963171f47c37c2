"""TF-Serving's configuration files for a labelled model: the model config and the monitoring config.

The model config (`--model_config_file`) names the versions to serve
(`model_version_policy { specific { ... } }`) and the version labels
(`version_labels { key: "stable" value: N }`, `canary`), which clients ask for
over REST (`/v1/models/<m>/labels/<label>`) or gRPC (`ModelSpec.version_label`).
A request without version or label gets the highest version served, as in
TF-Serving: while a canary is out, that is the canary.

The monitoring config turns on TF-Serving's Prometheus endpoint on the REST port.
"""

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.store.serving_labels import ServingLabels

MONITORING_PATH = "/monitoring/prometheus/metrics"


def version_labels(labels: ServingLabels) -> dict[str, int]:
    """TF-Serving's `version_labels` for `labels`: stable and, while one is out, canary."""
    return {name: version for name, version in (("stable", labels.stable), ("canary", labels.canary))
            if version is not None}


def model_config_text(model_name: str, base_path: str, labels: ServingLabels,
                      also_serve: tuple[int, ...] = ()) -> str:
    """The `ModelServerConfig` text proto for one model; no labels: serve the latest version.

    `also_serve`: versions to load beside the labelled ones (a version must be
    loaded before TF-Serving lets an existing label move to it).
    """
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name=model_name, base_path=base_path, model_platform="tensorflow")
    if labels.stable is not None:
        model.model_version_policy.specific.versions.extend(sorted({*labels.served(), *also_serve}))
        model.version_labels.update(version_labels(labels))
    return text_format.MessageToString(config)


def monitoring_config_text() -> str:
    # tensorflow-serving-api ships no monitoring_config_pb2, so this one-field
    # MonitoringConfig text proto is written out by hand.
    return f'prometheus_config {{\n  enable: true\n  path: "{MONITORING_PATH}"\n}}\n'
