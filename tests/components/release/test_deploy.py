"""The shared deploy step's own checks (its cluster path itself is covered with a
stand-in Kubernetes API in test_kube_serving_api.py)."""

import pytest
from kfp.dsl import Markdown, Model

from components.cluster import api as kube_api
from components.cluster import serving as kube_serving
from components.common.errors import InputError
from components.release.deploy import deploy_model
from components.store import folder as model_store
from components.store.serving_labels import ServingLabels


@pytest.fixture
def saved_model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "saved_model.pb").write_text("graph")
    return Model(name="model", uri=str(folder))


EVALUATION = {"metrics": {"accuracy": 0.61}, "test_set": "2017..2018", "run": "run-3"}


GATE = {"decision": "deploy", "reason": "DEPLOY: first deploy", "comparisons": ["threshold: ..."]}


def verdict():
    gate_verdict = Markdown(name="verdict", uri="/unused")
    gate_verdict.metadata.update(GATE, evaluation=EVALUATION)
    return gate_verdict


def deploy(model, base, name="sp500", **options):
    return deploy_model.python_func(model=model, verdict=verdict(), model_name=name, model_base_path=str(base),
                                    model_store_pvc="model-store", **options)


def test_outside_a_cluster_the_model_store_is_the_deployment(saved_model, tmp_path, monkeypatch):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: False)
    assert deploy(saved_model, tmp_path / "store") == str(tmp_path / "store" / "sp500" / "1")
    assert deploy(saved_model, tmp_path / "store") == str(tmp_path / "store" / "sp500" / "2")


@pytest.mark.parametrize("base, name, options, message", [
    ("/elsewhere", "sp500", {}, "on a cluster the model store claim is mounted at .*/store, where"),
    (None, "my.model", {}, "model_name 'my.model' cannot name a Kubernetes object"),
    (None, "sp500", {"tf_serving_version": "2.21 final"}, "tf_serving_version '2.21 final' is not an image tag"),
])
def test_in_a_cluster_what_the_server_cannot_read_is_refused_before_publishing(
        saved_model, tmp_path, monkeypatch, base, name, options, message):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: True)
    served = []
    monkeypatch.setattr(kube_serving, "deploy_serving", lambda **kwargs: served.append(kwargs))
    store = tmp_path / "store"
    monkeypatch.setattr(kube_api, "MODEL_STORE_MOUNT", str(store))
    with pytest.raises(InputError, match=message):
        deploy(saved_model, base or store, name, **options)
    assert not (tmp_path / "elsewhere").exists() and not store.exists() and served == []


def test_in_a_cluster_the_new_version_is_served(saved_model, tmp_path, monkeypatch):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: True)
    served = []
    monkeypatch.setattr(kube_serving, "deploy_serving", lambda **kwargs: served.append(kwargs) or "ok")
    monkeypatch.setattr(kube_api, "MODEL_STORE_MOUNT", str(tmp_path / "store"))
    monkeypatch.setattr(kube_serving, "labels_in_cluster", lambda *args: None)
    deploy(saved_model, tmp_path / "store")
    (call,) = served
    assert call.pop("labels") == ServingLabels(stable=1, known_versions=(1,))
    assert call == dict(model_name="sp500", model_format="tensorflow", model_store_pvc="model-store",
                        namespace=None, model_version=1, kserve=False, kserve_deployment_mode="Knative",
                        model_store_uri="", tf_serving_version=kube_serving.TF_SERVING_VERSION)
    assert not (tmp_path / "store" / "sp500" / "labels.json").exists(), "on a cluster the labels are a ConfigMap"


def test_a_version_carries_its_evaluation_and_a_canary_keeps_the_stable_version(saved_model, tmp_path, monkeypatch):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: False)
    store = tmp_path / "store"
    deploy(saved_model, store, canary_percent=20)
    model_dir = store / "sp500"
    assert model_store.read_evaluation(model_dir, 1) == {**EVALUATION, "gate": GATE}
    assert model_store.read_labels(model_dir).describe() == "stable=1", "a first deploy is stable"
    deploy(saved_model, store, canary_percent=20)
    assert model_store.read_labels(model_dir).describe() == "stable=1, canary=2 (20% of traffic)"
    deploy(saved_model, store)
    assert model_store.read_labels(model_dir).describe() == "stable=3"


@pytest.mark.parametrize("options, message", [
    (dict(canary_percent=0), "canary_percent must be between 1 and 100"),
    (dict(model_format="lightgbm", canary_percent=10, kserve_deployment_mode="Standard"),
     "canaryTrafficPercent works only in Knative"),
    (dict(use_kserve=True, canary_percent=10), "use TF-Serving's labels"),
])
def test_a_canary_the_server_cannot_split_is_refused_before_publishing(saved_model, tmp_path, monkeypatch,
                                                                       options, message):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: True)
    monkeypatch.setattr(kube_api, "MODEL_STORE_MOUNT", str(tmp_path / "store"))
    with pytest.raises(InputError, match=message):
        deploy(saved_model, tmp_path / "store", **options)
    assert not (tmp_path / "store").exists()
