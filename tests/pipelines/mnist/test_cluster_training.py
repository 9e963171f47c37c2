"""The mnist train step on a cluster with workers > 1: which engine runs it (a Trainer v2
TrainJob, a training-operator TFJob, or a one-line failure before anything starts) on
Kubernetes API stand-ins that offer one, the other, both or neither; staging, the chief's
outputs and cleanup on each."""

import json
from pathlib import Path

import pytest
from standins.manifests import role_rules, validate_custom
from standins.training import TrainingStandIn

from components.cluster import engine as training_engine
from components.cluster import serving as kube_serving
from components.cluster import tfjob, trainjob
from components.common.errors import InputError, TrainingError
from pipelines.mnist import cluster_training
from pipelines.mnist.models import TrainConfig


def local(uri: str) -> Path:
    """A file:// URI (the tests' stand-in for gs://) as a path."""
    return Path(uri.removeprefix("file://"))


def api_server(cluster_pod, **options) -> TrainingStandIn:
    tls, _, monkeypatch = cluster_pod
    options.setdefault("role_rules", role_rules("kfp-ml-tfjob") + role_rules("kfp-ml-trainjob"))
    server = TrainingStandIn(tls, "deployer-token", **options)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    return server


def chief_args(job: dict) -> list[str]:
    """The worker command of either kind of job."""
    if job["kind"] == "TrainJob":
        return job["spec"]["trainer"]["args"]
    return job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"]


def play_the_chief(seen: dict):
    """The chief's part, played at job creation: read the staged job, write what the chief writes."""
    def chief(job):
        args = chief_args(job)
        staged = json.loads(local(args[-1]).read_text())
        seen.update(args=args, staged=staged, splits=local(staged["splits_path"]).read_bytes(), job=job)
        written = ((staged["export_dir"], "saved_model.pb"), (staged["tensorboard_dir"] + "/train", "events"))
        for folder, name in written:
            local(folder).mkdir(parents=True)
            (local(folder) / name).write_text(name)
        local(staged["history_path"]).write_text(json.dumps({"val_accuracy": [0.9], "val_loss": [0.3]}))
    return chief


def train(tmp_path, engine: str = "auto", lines: list | None = None, workers: int = 2) -> dict:
    splits = tmp_path / "splits.npz"
    splits.write_bytes(b"splits")
    return cluster_training.train_on_cluster(
        kube_serving.kube_api_client(), "kubeflow", TrainConfig(epochs=2), str(splits), str(tmp_path / "model"),
        str(tmp_path / "logs"), "run-7", workers, f"file://{tmp_path}/bucket/",
        {"image": "img:1", "gpus_per_worker": 0}, engine=engine,
        emit=(lines if lines is not None else []).append, timeout_s=60)


def job_requests(server) -> list[tuple[str, str]]:
    return [(method, path) for method, path in server.requests if "jobs" in path]


# --------------------------------------------------------------------------- which engine

@pytest.mark.parametrize("engine", ["auto", "trainjob"])
def test_workers_on_a_trainer_v2_cluster_run_through_a_trainjob(cluster_pod, tmp_path, engine):
    seen = {}
    with api_server(cluster_pod, tfjob=False, on_create=play_the_chief(seen)) as server:
        history = train(tmp_path, engine)
    assert server.errors == []
    assert history == {"val_accuracy": [0.9], "val_loss": [0.3]}
    assert seen["job"]["kind"] == "TrainJob" and seen["job"]["spec"]["trainer"]["numNodes"] == 2
    validate_custom(seen["job"], "trainer-v2.3.0-trainjobs.yaml.gz")
    assert seen["args"][:3] == ["python3", "-m", "pipelines.mnist.distributed"]
    assert seen["splits"] == b"splits" and seen["staged"]["config"]["epochs"] == 2
    assert (tmp_path / "model" / "saved_model.pb").read_text() == "saved_model.pb"
    assert (tmp_path / "logs" / "train" / "events").is_file()
    assert list((tmp_path / "bucket").iterdir()) == [], "the staging folder is removed"
    assert server.deleted and server.trainjobs == {} and server.tfjobs == {}
    assert not [path for _, path in server.requests if "/tfjobs" in path]


def test_a_trainer_v2_1_cluster_accepts_the_same_trainjob(cluster_pod, tmp_path):
    with api_server(cluster_pod, tfjob=False, trainer_crd="v2.1.0", on_create=play_the_chief({})) as server:
        train(tmp_path)
    assert server.errors == [] and server.deleted


def test_workers_on_a_training_operator_cluster_run_through_a_tfjob(cluster_pod, tmp_path):
    seen = {}
    with api_server(cluster_pod, trainer=False, on_create=play_the_chief(seen)) as server:
        history = train(tmp_path)
    assert server.errors == [] and history["val_accuracy"] == [0.9]
    assert seen["job"]["kind"] == "TFJob"
    assert seen["job"]["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["image"] == "img:1"
    assert list((tmp_path / "bucket").iterdir()) == []
    assert server.deleted and server.tfjobs == {}
    assert not [path for _, path in server.requests if "trainer.kubeflow.org/v1alpha1/namespaces" in path]


def test_on_a_cluster_with_neither_it_fails_in_one_line_before_anything_starts(cluster_pod, tmp_path):
    with api_server(cluster_pod, tfjob=False, trainer=False) as server:
        with pytest.raises(TrainingError) as failure:
            train(tmp_path)
    message = str(failure.value)
    assert "\n" not in message and message == training_engine.NEITHER
    assert "Trainer v2" in message and "TFJob" in message and "make trainer-runtime" in message
    assert not [method for method, _ in server.requests if method != "GET"], "nothing created"
    assert not (tmp_path / "bucket").exists(), "nothing staged"


def test_trainer_without_the_runtime_names_it_before_anything_starts(cluster_pod, tmp_path):
    with api_server(cluster_pod, tfjob=False, runtime=False) as server:
        with pytest.raises(trainjob.RuntimeMissing, match=r"^the TrainingRuntime tensorflow-distributed is not "
                                                          r"installed in namespace kubeflow: install it with make "
                                                          r"trainer-runtime NAMESPACE=kubeflow"):
            train(tmp_path)
    assert job_requests(server) == []
    assert not (tmp_path / "bucket").exists()


def test_auto_uses_the_tfjob_when_trainer_lacks_the_runtime_and_says_so(cluster_pod, tmp_path):
    lines = []
    with api_server(cluster_pod, runtime=False, on_create=play_the_chief({})) as server:
        train(tmp_path, "auto", lines)
    assert any("TrainingRuntime tensorflow-distributed is not installed" in line and "TFJob" in line
               for line in lines)
    assert server.deleted and not server.trainjobs
    assert ("POST", "/apis/kubeflow.org/v1/namespaces/kubeflow/tfjobs") in server.requests


def test_auto_prefers_trainer_v2_where_both_are_installed(cluster_pod, tmp_path):
    seen = {}
    with api_server(cluster_pod, on_create=play_the_chief(seen)):
        train(tmp_path)
    assert seen["job"]["kind"] == "TrainJob"


@pytest.mark.parametrize("engine, offered, hint", [
    ("tfjob", {"tfjob": False}, tfjob.INSTALL_HINT),
    ("trainjob", {"trainer": False}, trainjob.INSTALL_HINT),
])
def test_a_chosen_engine_that_is_missing_says_what_to_install(cluster_pod, tmp_path, engine, offered, hint):
    with api_server(cluster_pod, **offered) as server:
        with pytest.raises(TrainingError) as failure:
            train(tmp_path, engine)
    assert str(failure.value) == hint
    assert job_requests(server) == []


def test_the_engine_setting_is_checked():
    assert training_engine.check_engine("auto") == "auto"
    with pytest.raises(InputError, match="distributed_engine 'mpijob' is not one of auto, trainjob, tfjob"):
        training_engine.check_engine("mpijob")


# --------------------------------------------------------------------------- staging

@pytest.mark.parametrize("outcome_options", [{"trainer": False}, {"tfjob": False}], ids=["tfjob", "trainjob"])
def test_staging_is_removed_when_the_job_fails(cluster_pod, tmp_path, outcome_options):
    with api_server(cluster_pod, outcome="Failed", **outcome_options):
        with pytest.raises(TrainingError, match="failed"):
            train(tmp_path)
    assert list((tmp_path / "bucket").iterdir()) == []
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("storage", ["", "/mnt/shared", "  "])
def test_workers_on_a_cluster_need_storage_every_pod_reaches(storage):
    with pytest.raises(InputError, match="distributed_storage '.*': workers > 1 on a cluster need a folder every "
                                         "worker pod can reach, e.g. gs://"):
        cluster_training.check_storage(storage)
