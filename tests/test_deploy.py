"""The shared deploy step's own checks (its cluster path itself is covered with a
stand-in Kubernetes API in test_cluster_kube.py)."""

import pytest
from kfp.dsl import Model

from components import kube_serving
from components.deploy import deploy_model
from components.errors import InputError


@pytest.fixture
def saved_model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "saved_model.pb").write_text("graph")
    return Model(name="model", uri=str(folder))


def deploy(model, base, name="sp500"):
    return deploy_model.python_func(model=model, model_name=name, model_base_path=str(base),
                                    model_store_pvc="model-store")


def test_outside_a_cluster_the_model_store_is_the_deployment(saved_model, tmp_path, monkeypatch):
    monkeypatch.setattr(kube_serving, "in_cluster", lambda: False)
    assert deploy(saved_model, tmp_path / "store") == str(tmp_path / "store" / "sp500" / "1")
    assert deploy(saved_model, tmp_path / "store") == str(tmp_path / "store" / "sp500" / "2")


@pytest.mark.parametrize("base, name, message", [
    ("/elsewhere", "sp500", "on a cluster the model store claim is mounted at .*/store, where"),
    (None, "my.model", "model_name 'my.model' cannot name a Kubernetes object"),
])
def test_in_a_cluster_what_the_server_cannot_read_is_refused_before_publishing(
        saved_model, tmp_path, monkeypatch, base, name, message):
    monkeypatch.setattr(kube_serving, "in_cluster", lambda: True)
    served = []
    monkeypatch.setattr(kube_serving, "deploy_serving", lambda **kwargs: served.append(kwargs))
    store = tmp_path / "store"
    monkeypatch.setattr(kube_serving, "MODEL_STORE_MOUNT", str(store))
    with pytest.raises(InputError, match=message):
        deploy(saved_model, base or store, name)
    assert not (tmp_path / "elsewhere").exists() and not store.exists() and served == []


def test_in_a_cluster_the_new_version_is_served(saved_model, tmp_path, monkeypatch):
    monkeypatch.setattr(kube_serving, "in_cluster", lambda: True)
    served = []
    monkeypatch.setattr(kube_serving, "deploy_serving", lambda **kwargs: served.append(kwargs) or "ok")
    monkeypatch.setattr(kube_serving, "MODEL_STORE_MOUNT", str(tmp_path / "store"))
    deploy(saved_model, tmp_path / "store")
    assert served == [dict(model_name="sp500", model_format="tensorflow", model_store_pvc="model-store",
                           namespace=None, model_version=1, kserve=False, model_store_uri="")]
