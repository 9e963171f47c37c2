"""Which engine runs distributed training on this cluster: a Trainer v2 TrainJob or a TFJob.

    auto      a TrainJob when the cluster has Trainer v2 and the TensorFlow runtime,
              else a TFJob when it has the training operator
    trainjob  Kubeflow Trainer v2 (trainer.kubeflow.org/v1alpha1; Kubeflow 26.03 and later)
    tfjob     training-operator v1.9 (kubeflow.org/v1; Kubeflow up to 26.03.x)

What the cluster offers is read from the API server's discovery documents
(`/apis/<group>/<version>`), which every authenticated account may read
(the built-in `system:discovery` role): no Role rule is needed for it. The
choice is made, and a missing resource or runtime reported in one line,
before anything is staged or any pod created.
"""

import json
from typing import Callable

from components.cluster import tfjob, trainjob
from components.common.errors import InputError, TrainingError

ENGINES = ("auto", "trainjob", "tfjob")
NEITHER = ("this cluster has neither Kubeflow Trainer v2 (TrainJob, trainer.kubeflow.org/v1alpha1) nor the training "
           "operator (TFJob, kubeflow.org/v1) to run workers > 1: install Trainer v2 and its TensorFlow runtime "
           "(kubectl apply --server-side -k \"github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=v2.3.0\"; "
           "make trainer-runtime), or train with workers=1")


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise InputError(f"distributed_engine '{engine}' is not one of {', '.join(ENGINES)}")
    return engine


def offers(api, group: str, version: str, plural: str) -> bool:
    """True when the API server serves `plural` in `group/version` (its CRD is installed)."""
    from kubernetes.client.exceptions import ApiException

    try:
        response = api.call_api(f"/apis/{group}/{version}", "GET", header_params={"Accept": "application/json"},
                                auth_settings=["BearerToken"], _return_http_data_only=True, _preload_content=False,
                                _request_timeout=30)
    except ApiException as error:
        if error.status == 404:
            return False
        raise TrainingError(f"cannot read the API server's discovery of {group}/{version}: HTTP {error.status} "
                            f"{error.reason}") from error
    return plural in {resource["name"] for resource in json.loads(response.data).get("resources", [])}


def choose_engine(api, namespace: str, engine: str, emit: Callable[[str], None] = print) -> str:
    """'trainjob' or 'tfjob' for `engine` on this cluster; TrainingError (one line) when it has no way."""
    check_engine(engine)
    if engine == "tfjob":
        if not offers(api, tfjob.GROUP, tfjob.VERSION, tfjob.PLURAL):
            raise tfjob.TFJobError(tfjob.INSTALL_HINT)
        return "tfjob"
    has_trainer = offers(api, trainjob.GROUP, trainjob.VERSION, trainjob.PLURAL)
    if engine == "trainjob" or (has_trainer and engine == "auto"):
        if not has_trainer:
            raise trainjob.TrainJobError(trainjob.INSTALL_HINT)
        try:
            trainjob.check_runtime(api, namespace)
            return "trainjob"
        except trainjob.RuntimeMissing as missing:
            if engine == "trainjob" or not offers(api, tfjob.GROUP, tfjob.VERSION, tfjob.PLURAL):
                raise
            emit(f"{missing}; using the TFJob of the training operator instead")
            return "tfjob"
    if offers(api, tfjob.GROUP, tfjob.VERSION, tfjob.PLURAL):
        return "tfjob"
    raise TrainingError(NEITHER)
