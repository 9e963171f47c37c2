"""The model store on object storage, against gcp-storage-emulator.

The emulator ignores GCS preconditions, so the fixture adds the one rule the
store relies on, as GCS documents it: a write (upload or copy) with
`ifGenerationMatch=0` fails with 412 Precondition Failed when the object
exists. Every write is recorded, so the tests can check the order a polling
server would see the objects appear in.
"""

from http import HTTPStatus
from pathlib import Path

import pytest
from conftest import free_port

from components.common.errors import InputError
from components.store import bucket as gcs_model_store
from components.store import open_store
from components.store.bucket import BucketStore
from components.store.serving_labels import ServingLabels

BUCKET = "models"


def with_create_only_precondition(handler, writes: list[str]):
    def handle(request, response, storage, *args, **kwargs):
        bucket = request.params.get("dest_bucket_name") or request.params["bucket_name"]
        name = request.params.get("dest_object_id")
        if name is None:  # an upload: the name is in the query or in the multipart metadata
            name = request.query.get("name", [None])[0] or request.data["meta"].get("name")
        if request.query.get("ifGenerationMatch") == ["0"]:
            try:
                storage.get_file_obj(bucket, name)
            except Exception:  # NotFound: the precondition holds
                pass
            else:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "conditionNotMet"}})
                return
        writes.append(name)
        return handler(request, response, storage, *args, **kwargs)
    return handle


@pytest.fixture
def gcs(monkeypatch):
    """gcp-storage-emulator with bucket `models`; yields (bucket, the object names in the order written)."""
    from gcp_storage_emulator import server as emulator
    from gcp_storage_emulator.handlers import objects
    from google.cloud import storage

    writes: list[str] = []
    for _, handlers in emulator.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler in (objects.insert, objects.copy, objects.rewrite):
                monkeypatch.setitem(handlers, method, with_create_only_precondition(handler, writes))
    monkeypatch.setattr(objects, "insert", with_create_only_precondition(objects.insert, writes))
    port = free_port()
    server = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    yield storage.Client.create_anonymous_client().bucket(BUCKET), writes
    server.stop()


@pytest.fixture
def saved_model(tmp_path) -> Path:
    """A folder shaped like a SavedModel (the store copies files; it does not parse them)."""
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "assets").mkdir()
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "fingerprint.pb").write_bytes(b"fp")
    (model / "variables" / "variables.index").write_bytes(b"index")
    (model / "variables" / "variables.data-00000-of-00001").write_bytes(b"weights" * 100)
    (model / "assets" / "vocabulary.txt").write_text("a\nb\n")
    return model


def names(bucket, prefix: str) -> list[str]:
    return sorted(blob.name[len(prefix):] for blob in bucket.client.list_blobs(bucket, prefix=prefix))


def test_publishes_numbered_versions_with_every_file(gcs, saved_model):
    bucket, _ = gcs
    first = BucketStore("gs://models/serving").publish(saved_model, "sp500")
    second = open_store("gs://models/serving").publish(saved_model, "sp500")  # the store's front
    assert (str(first), first.name, str(second), second.name) == (
        "gs://models/serving/sp500/1", "1", "gs://models/serving/sp500/2", "2")
    expected = sorted(p.relative_to(saved_model).as_posix() for p in saved_model.rglob("*") if p.is_file())
    assert names(bucket, "serving/sp500/1/") == expected == names(bucket, "serving/sp500/2/")
    assert bucket.blob("serving/sp500/2/variables/variables.data-00000-of-00001").download_as_bytes() == \
        b"weights" * 100
    # Nothing of the staging is left; only versions and their claims remain.
    assert {name.split("/")[0] for name in names(bucket, "serving/sp500/")} == {"1", "2", ".claims"}


def test_a_polling_server_sees_the_graph_only_after_everything_it_needs(gcs, saved_model):
    bucket, writes = gcs
    BucketStore("gs://models/m").publish(saved_model, "mnist")
    in_version = [name for name in writes if name.startswith("m/mnist/1/")]
    assert len(in_version) == 5
    assert in_version[-1] == "m/mnist/1/saved_model.pb", "the SavedModel's graph appears last"
    first_visible = writes.index(in_version[0])
    assert all(name.startswith("m/mnist/1/") for name in writes[first_visible:]), \
        "once the version folder exists, only copies into it follow (no uploads in between)"
    assert writes[0] == "m/mnist/.claims/1", "the number is claimed before anything is written"


def test_an_existing_version_is_never_overwritten(gcs, saved_model):
    bucket, _ = gcs
    bucket.blob("m/sp500/1/saved_model.pb").upload_from_string(b"someone else's model")
    bucket.blob("m/sp500/3/saved_model.pb").upload_from_string(b"published by another tool")
    version = BucketStore("gs://models/m").publish(saved_model, "sp500")
    assert version.number == 4
    assert bucket.blob("m/sp500/1/saved_model.pb").download_as_bytes() == b"someone else's model"
    assert bucket.blob("m/sp500/3/saved_model.pb").download_as_bytes() == b"published by another tool"


def test_a_number_claimed_meanwhile_is_skipped(gcs, saved_model, monkeypatch):
    """Two deploys at once: the other one claims N between this one's listing and its claim."""
    bucket, _ = gcs
    real_versions = gcs_model_store.taken_numbers

    def listing_then_race(bucket_, model_prefix):
        found = real_versions(bucket_, model_prefix)
        bucket_.blob(f"{model_prefix}/.claims/1").upload_from_string(b"", if_generation_match=0)
        return found

    monkeypatch.setattr(gcs_model_store, "taken_numbers", listing_then_race)
    assert BucketStore("gs://models/m").publish(saved_model, "sp500").number == 2
    assert names(bucket, "m/sp500/1/") == []


def test_a_folder_in_the_way_of_a_claimed_number_is_left_alone(gcs, saved_model, monkeypatch):
    bucket, _ = gcs
    monkeypatch.setattr(gcs_model_store, "taken_numbers", lambda bucket_, prefix: [])
    bucket.blob("m/sp500/1/variables/variables.index").upload_from_string(b"half of another model")
    assert BucketStore("gs://models/m").publish(saved_model, "sp500").number == 2
    assert names(bucket, "m/sp500/1/") == ["variables/variables.index"]


def test_a_single_model_file_and_a_bucket_root(gcs, tmp_path):
    bucket, _ = gcs
    model = tmp_path / "model.bst"
    model.write_text("tree")
    version = BucketStore("gs://models").publish(model, "crypto")
    assert str(version) == "gs://models/crypto/1"
    assert names(bucket, "crypto/1/") == ["model.bst"]


@pytest.mark.parametrize("uri, message", [
    ("gs://", "is not a gs://bucket/path URI"),
    ("s3://models/x", "is not a gs://bucket/path URI"),
    ("gs://models/a//b", "is not a plain gs://bucket/path URI"),
])
def test_bad_uris_name_the_parameter(saved_model, uri, message):
    with pytest.raises(InputError, match=f"model_base_path '{uri}' {message}"):
        BucketStore(uri).publish(saved_model, "sp500")


def test_missing_model_and_bad_name_fail_before_any_request(tmp_path, monkeypatch):
    monkeypatch.setattr(gcs_model_store, "gcs_client", lambda *_: pytest.fail("no request expected"))
    with pytest.raises(InputError, match="model to deploy not found"):
        BucketStore("gs://models/m").publish(tmp_path / "nope", "sp500")
    (tmp_path / "m").mkdir()
    with pytest.raises(InputError, match="model_name '../x' is not a valid folder name"):
        BucketStore("gs://models/m").publish(tmp_path / "m", "../x")


def test_a_copy_never_replaces_an_object_but_accepts_its_own_repeat(gcs, saved_model, monkeypatch):
    """A writer that ignores claims puts an object where this deploy copies; and a copy the
    client library repeated after a lost response finds its own object there."""
    bucket, _ = gcs
    monkeypatch.setattr(gcs_model_store, "claim_version", lambda bucket_, prefix: 1)
    bucket.blob("m/sp500/1/variables/variables.index").upload_from_string(b"index")  # same bytes
    assert BucketStore("gs://models/m").publish(saved_model, "sp500").number == 1
    monkeypatch.setattr(gcs_model_store, "claim_version", lambda bucket_, prefix: 2)
    bucket.blob("m/sp500/2/fingerprint.pb").upload_from_string(b"another model's")
    with pytest.raises(InputError, match="gs://models/m/sp500/2/fingerprint.pb already exists"):
        BucketStore("gs://models/m").publish(saved_model, "sp500")
    assert bucket.blob("m/sp500/2/fingerprint.pb").download_as_bytes() == b"another model's"
    assert "saved_model.pb" not in names(bucket, "m/sp500/2/"), "the graph never joins a broken version"


def test_on_a_cluster_the_server_reads_the_bucket_with_no_claim():
    from components.cluster import labels as kube_labels
    from components.cluster import serving as kube_serving

    deployment = kube_serving.tf_serving_deployment("sp500", "model-store", "team-a", 3,
                                                    model_store_uri="gs://models/serving")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert [m["name"] for m in container["volumeMounts"]] == ["serving-config", "tmp"]
    config = kube_labels.serving_config_map("sp500", "team-a", ServingLabels(stable=3),
                                            model_store_uri="gs://models/serving")
    assert 'base_path: "gs://models/serving/sp500"' in config["data"]["models.config"]
    import kubernetes_validate

    kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)
    service = kube_serving.kserve_inference_service("sp500", "tensorflow", "model-store", "team-a",
                                                    model_store_uri="gs://models/serving")
    assert service["spec"]["predictor"]["model"]["storageUri"] == "gs://models/serving/sp500"


def test_the_deploy_step_in_a_cluster_publishes_to_the_bucket_and_serves_from_it(gcs, saved_model, monkeypatch):
    import json

    from kfp.dsl import Markdown, Model

    from components.cluster import api as kube_api
    from components.cluster import serving as kube_serving
    from components.release.deploy import deploy_model

    bucket, _ = gcs
    monkeypatch.setattr(kube_api, "in_cluster", lambda: True)
    monkeypatch.setattr(kube_serving, "labels_in_cluster", lambda *args: None)
    served = []
    monkeypatch.setattr(kube_serving, "deploy_serving", lambda **kwargs: served.append(kwargs) or "ok")
    verdict = Markdown(name="verdict", uri="/unused")
    verdict.metadata.update(decision="deploy", reason="first deploy", comparisons=[],
                            evaluation={"metrics": {"accuracy": 0.6}, "test_set": "2018"})
    version = deploy_model.python_func(model=Model(name="model", uri=str(saved_model)), verdict=verdict,
                                       model_name="sp500", model_base_path="gs://models/serving",
                                       model_store_pvc="model-store")
    assert version == "gs://models/serving/sp500/1"
    assert "saved_model.pb" in names(bucket, "serving/sp500/1/")
    record = json.loads(bucket.blob("serving/sp500/1/evaluation.json").download_as_bytes())
    assert record["metrics"] == {"accuracy": 0.6} and record["gate"]["decision"] == "deploy"
    assert open_store("gs://models/serving").evaluation("sp500", 1) == record
    labels = open_store("gs://models/serving").serving_labels("sp500")
    assert labels == ServingLabels(stable=1, known_versions=(1,))
    (call,) = served
    assert (call["model_store_uri"], call["model_version"]) == ("gs://models/serving", 1)


def test_a_versions_local_copy_is_downloaded_and_removed_after_use(gcs, saved_model):
    store = BucketStore("gs://models/store")
    store.publish(saved_model, "sp500", {"metrics": {"accuracy": 0.6}})
    with store.local_copy("sp500", 1) as folder:
        copied = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert copied == ["assets/vocabulary.txt", "evaluation.json", "fingerprint.pb", "saved_model.pb",
                          "variables/variables.data-00000-of-00001", "variables/variables.index"]
        assert (folder / "variables" / "variables.data-00000-of-00001").read_bytes() == b"weights" * 100
    assert not folder.exists()
    with pytest.raises(InputError, match="gs://models/store/sp500/2/: no such version"), \
            store.local_copy("sp500", 2):
        pass


def test_extra_files_travel_with_the_version_before_its_graph(gcs, saved_model, tmp_path):
    bucket, writes = gcs
    (tmp_path / "statistics.json").write_text('{"rows": 3}')
    store = open_store("gs://models/serving")
    store.publish(saved_model, "sp500", extra_files={"statistics.json": tmp_path / "statistics.json"})
    assert store.version_file("sp500", 1, "statistics.json") == b'{"rows": 3}'
    assert store.version_file("sp500", 1, "schema.json") is None
    in_version = [name for name in writes if name.startswith("serving/sp500/1/")]
    assert "serving/sp500/1/statistics.json" in in_version and in_version[-1] == "serving/sp500/1/saved_model.pb"


def test_validation_reads_the_champions_statistics_from_the_bucket(gcs, saved_model, tmp_path, monkeypatch):
    """What a later run's validation step does on a cluster with a gs:// store: the deploy stored the
    first run's statistics and schema in version 1, and the next run is checked and scored against them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from kfp.dsl import HTML, Artifact, Dataset, Markdown, Model

    from components.cluster import api as kube_api
    from components.release.deploy import deploy_model
    from components.release.validation_step import validate_data

    monkeypatch.setattr(kube_api, "in_cluster", lambda: False)

    def validate(run: str, scale: float) -> Artifact:
        pq.write_table(pa.table({"r": np.random.default_rng(1).normal(0, scale, 1000)}), tmp_path / run)
        statistics = Artifact(name="statistics", uri=str(tmp_path / f"{run}-statistics"))
        validate_data.python_func(model_name="sp500", model_base_path="gs://models/serving", serving_namespace="",
                                  skip_validation=False, statistics=statistics,
                                  report=HTML(name="report", uri=str(tmp_path / f"{run}.html")),
                                  data=Dataset(name="data", uri=str(tmp_path / run)))
        return statistics

    verdict = Markdown(name="verdict", uri="/unused")
    verdict.metadata.update(decision="deploy", reason="", comparisons=[], evaluation={})
    deploy_model.python_func(model=Model(name="model", uri=str(saved_model)), verdict=verdict, model_name="sp500",
                             model_base_path="gs://models/serving", model_store_pvc="model-store",
                             statistics=validate("first", 0.01))
    bucket, _ = gcs
    assert {"statistics.json", "schema.json", "saved_model.pb"} <= set(names(bucket, "serving/sp500/1/"))
    drift = validate("second", 0.05).metadata["drift"]
    assert drift["champion_version"] == 1 and drift["scores"]["r"] > 1
