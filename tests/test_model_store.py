"""The model store's TF-Serving layout: numbered versions, never overwritten."""

import threading

import pytest

from components import model_store
from components.errors import InputError


def make_model(path, content="weights"):
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_text(content)
    return path


def test_versions_count_up_and_earlier_ones_stay(tmp_path):
    store = tmp_path / "store"
    first = model_store.publish_version(make_model(tmp_path / "a", "one"), store, "sp500")
    second = model_store.publish_version(make_model(tmp_path / "b", "two"), store, "sp500")
    assert (first.name, second.name) == ("1", "2")
    assert (first / "saved_model.pb").read_text() == "one"
    assert (second / "saved_model.pb").read_text() == "two"
    assert model_store.versions(store / "sp500") == [1, 2]
    assert sorted(p.name for p in (store / "sp500").iterdir()) == ["1", "2"]


def test_a_single_file_model_is_copied_into_its_version(tmp_path):
    model_file = tmp_path / "model.txt"
    model_file.write_text("tree")
    version = model_store.publish_version(model_file, tmp_path / "store", "crypto")
    assert (version / "model.txt").read_text() == "tree"


def test_concurrent_deploys_get_distinct_versions(tmp_path):
    store = tmp_path / "store"
    sources = [make_model(tmp_path / f"m{i}", str(i)) for i in range(6)]
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(
        model_store.publish_version(s, store, "m"))) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(int(r.name) for r in results) == [1, 2, 3, 4, 5, 6]
    contents = {(r / "saved_model.pb").read_text() for r in results}
    assert contents == {str(i) for i in range(6)}


def test_missing_model_and_bad_name(tmp_path):
    with pytest.raises(InputError, match="model to deploy not found"):
        model_store.publish_version(tmp_path / "nope", tmp_path / "store", "m")
    with pytest.raises(InputError, match="model_name '../x'"):
        model_store.publish_version(make_model(tmp_path / "a"), tmp_path / "store", "../x")
