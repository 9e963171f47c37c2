"""The model store's TF-Serving layout: numbered versions, never overwritten."""

import threading
from pathlib import Path

import pytest

from components.common.errors import InputError
from components.store import folder as model_store
from components.store import serving_labels
from components.store.folder import FolderStore


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
    assert model_store.published_versions(store / "sp500") == [1, 2]
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


def test_the_evaluation_is_stored_inside_the_version(tmp_path):
    evaluation = {"metrics": {"accuracy": 0.6}, "test_set": "2017..2018", "run": "run-1"}
    version = model_store.publish_version(make_model(tmp_path / "a"), tmp_path / "store", "sp500", evaluation)
    assert model_store.read_evaluation(tmp_path / "store" / "sp500", 1) == evaluation
    assert (version / "saved_model.pb").read_text() == "weights"
    unrecorded = model_store.publish_version(make_model(tmp_path / "b"), tmp_path / "store", "sp500")
    assert model_store.read_evaluation(tmp_path / "store" / "sp500", int(unrecorded.name)) is None


def test_a_killed_deploys_staging_folder_is_removed_and_a_running_ones_kept(tmp_path, monkeypatch):
    import os
    import socket
    import subprocess
    import time

    model_dir = tmp_path / "store" / "m"
    model_dir.mkdir(parents=True)
    host = socket.gethostname()
    dead = subprocess.Popen(["true"])  # a process id that has ended
    dead.wait()
    killed = model_dir / f".incoming-{host}-{dead.pid}-abc123"
    running = model_dir / f".incoming-{host}-{os.getpid()}-def456"
    other_host_fresh = model_dir / ".incoming-pod-7-12-ghi789"
    other_host_old = model_dir / ".incoming-pod-8-13-jkl012"
    for folder in (killed, running, other_host_fresh, other_host_old):
        folder.mkdir()
        (folder / "saved_model.pb").write_text("partial")
    old = time.time() - model_store.STALE_INCOMING_S - 60
    os.utime(other_host_old, (old, old))

    version = model_store.publish_version(make_model(tmp_path / "a"), tmp_path / "store", "m")
    assert version.name == "1"
    left = sorted(p.name for p in model_dir.iterdir())
    assert left == sorted(["1", running.name, other_host_fresh.name])


def labels(stable=None, canary=None, percent=0, known=()):
    return serving_labels.ServingLabels(stable, canary, percent, tuple(known))


def test_a_first_deploy_is_stable_whatever_the_share_and_a_canary_keeps_stable():
    first = serving_labels.labels_after_deploy(labels(), 1, 20)
    assert first == labels(stable=1, known=[1])
    canary = serving_labels.labels_after_deploy(first, 2, 20)
    assert canary == labels(1, 2, 20, [1, 2]) and canary.served() == [1, 2]
    assert canary.describe() == "stable=1, canary=2 (20% of traffic)"
    # Without a router (the local server) the share is not what happens: unlabelled requests get version 2.
    local = canary.describe(router=False)
    assert "requests without a label get the highest version, 2" in local and "20% of traffic" not in local
    full = serving_labels.labels_after_deploy(canary, 3, 100)
    assert full == labels(stable=3, known=[1, 2, 3])
    with pytest.raises(InputError, match="canary_percent must be between 1 and 100"):
        serving_labels.labels_after_deploy(first, 2, 0)


def test_promote_and_rollback_are_idempotent_and_refuse_unknown_versions():
    out = labels(1, 2, 20, [1, 2])
    promoted = serving_labels.promoted(out, [1, 2], "sp500")
    assert promoted == labels(stable=2, known=[1, 2])
    assert serving_labels.promoted(promoted, [1, 2], "sp500") == promoted, "no canary left: nothing changes"
    dropped = serving_labels.rolled_back(out, [1, 2], "sp500")
    assert dropped == labels(stable=1, known=[1, 2])
    assert serving_labels.rolled_back(dropped, [1, 2], "sp500") == dropped
    back = serving_labels.rolled_back(promoted, [1, 2], "sp500", version=1)
    assert back == labels(stable=1, known=[1, 2]) == serving_labels.rolled_back(back, [1, 2], "sp500", version=1)
    with pytest.raises(InputError, match=r"^version 7 of sp500 is not in the model store \(versions: 1, 2\)$"):
        serving_labels.promoted(out, [1, 2], "sp500", version=7)
    with pytest.raises(InputError, match="version 9 of sp500"):
        serving_labels.rolled_back(out, [1, 2], "sp500", version=9)


def test_labels_record_round_trip_and_the_fallback_without_one(tmp_path):
    model_dir = tmp_path / "m"
    assert FolderStore(tmp_path).serving_labels("m") == labels()
    for number in (1, 2):
        make_model(model_dir / str(number))
    assert FolderStore(tmp_path).serving_labels("m") == labels(stable=2, known=[1, 2]), "TF-Serving serves the latest"
    model_store.write_labels(model_dir, labels(1, 2, 10, [1, 2]))
    assert model_store.read_labels(model_dir) == labels(1, 2, 10, [1, 2])
    (model_dir / "labels.json").write_text("[1")
    with pytest.raises(InputError, match="labels.json is not a labels record"):
        model_store.read_labels(model_dir)


def test_open_store_picks_the_store_by_its_uri(tmp_path):
    from components.store import open_store
    from components.store.bucket import BucketStore

    assert open_store("gs://models/serving") == BucketStore("gs://models/serving")
    assert open_store(str(tmp_path)) == FolderStore(tmp_path) == open_store(tmp_path)


def test_a_folder_store_through_the_front(tmp_path):
    from components.store import PublishedVersion, open_store

    store = open_store(str(tmp_path / "store"))
    evaluation = {"metrics": {"accuracy": 0.6}}
    assert store.publish(make_model(tmp_path / "a"), "sp500", evaluation) == \
        PublishedVersion(1, str(tmp_path / "store" / "sp500" / "1"))
    assert store.published_versions("sp500") == [1] and store.evaluation("sp500", 1) == evaluation
    assert store.stored_labels("sp500") is None and store.serving_labels("sp500") == labels(stable=1, known=[1])
    said = store.record_labels("sp500", labels(1, 2, 10, [1, 2]))
    assert said.startswith("the model store (with labels.json) is the deployment; served locally: stable=1")
    assert store.stored_labels("sp500") == labels(1, 2, 10, [1, 2]) == store.serving_labels("sp500")
    assert store.cluster_uri(str(tmp_path / "store")) == "", "a server mounts the claim"
    with pytest.raises(InputError, match="on a cluster the model store claim is mounted at /models, where"):
        store.cluster_uri("/models")


def test_a_bucket_keeps_no_labels_and_is_read_by_the_server_itself():
    from components.store.bucket import BucketStore

    store = BucketStore("gs://models/serving")
    assert store.stored_labels("sp500") is None
    assert store.record_labels("sp500", labels(stable=1)) == "the bucket is the deployment"
    assert store.cluster_uri("/models") == "gs://models/serving"


def test_a_versions_local_copy_is_its_own_folder(tmp_path):
    store = FolderStore(tmp_path / "store")
    make_model(tmp_path / "model")
    version = store.publish(tmp_path / "model", "sp500", {"metrics": {}})
    with store.local_copy("sp500", version.number) as folder:
        assert folder == tmp_path / "store" / "sp500" / "1"
        assert (folder / "saved_model.pb").is_file()
    assert folder.is_dir(), "a folder store's version is never removed"
    with pytest.raises(InputError, match="sp500/2: no such version"), store.local_copy("sp500", 2):
        pass


def test_extra_files_are_stored_inside_the_version_and_read_back(tmp_path):
    from components.store import open_store

    (tmp_path / "statistics.json").write_text('{"rows": 3}')
    store = open_store(str(tmp_path / "store"))
    version = store.publish(make_model(tmp_path / "a"), "sp500", {"metrics": {}},
                            extra_files={"statistics.json": tmp_path / "statistics.json"})
    assert (Path(version.uri) / "statistics.json").read_text() == '{"rows": 3}'
    assert store.version_file("sp500", 1, "statistics.json") == b'{"rows": 3}'
    assert store.version_file("sp500", 1, "schema.json") is None
    with pytest.raises(InputError, match="cannot store 'evaluation.json' with the model"):
        store.publish(make_model(tmp_path / "b"), "sp500",
                      extra_files={"evaluation.json": tmp_path / "statistics.json"})
    with pytest.raises(InputError, match="file to store with the model not found"):
        store.publish(make_model(tmp_path / "c"), "sp500", extra_files={"schema.json": tmp_path / "nope"})
    assert store.published_versions("sp500") == [1]
