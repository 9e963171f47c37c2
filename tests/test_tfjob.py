"""The cluster path of distributed training: the TFJob manifest against the Kubernetes
schemas, and its life (creation, status, failure, missing CRD, cleanup) against the
Kubernetes API stand-in with training-operator 1.9's TFJob resource."""

import json
from pathlib import Path

import pytest
from cluster_standins import TFJobStandIn
from manifests import role_rules, shipped, validate_part

from components import kube_serving, tfjob
from components.errors import InputError
from components.gpu import GpuSettings
from components.mnist import cluster_training
from components.mnist.models import TrainConfig


def local(uri: str) -> Path:
    """A file:// URI (the tests' stand-in for gs://) as a path."""
    return Path(uri.removeprefix("file://"))


COMMAND = ["python3", "-m", "components.mnist.distributed", "gs://bucket/stage/job.json"]


def api_server(cluster_pod, **options) -> TFJobStandIn:
    tls, _, monkeypatch = cluster_pod
    options.setdefault("role_rules", role_rules("kfp-ml-trainer"))
    server = TFJobStandIn(tls, "deployer-token", **options)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    return server


def manifest(name: str = "mnist-train-1", workers: int = 2, **options) -> dict:
    return tfjob.tfjob_manifest(name, "kubeflow", "registry.example/kfp-ml-pipelines:0.1.0", COMMAND, workers,
                                timeout_s=600, **options)


# --------------------------------------------------------------------------- the manifest

def test_manifest_parts_validate_against_the_kubernetes_schemas():
    job = manifest(gpus_per_worker=2, node_selector={"nvidia.com/gpu.present": "true"},
                   tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                   env={"A": "1"})
    validate_part(job["metadata"], "objectmeta-meta-v1")
    for replica in job["spec"]["tfReplicaSpecs"].values():
        validate_part(replica["template"], "podtemplatespec-v1")


def test_workers_only_never_restarted_kept_for_their_logs_and_bounded_in_time():
    job = manifest(workers=3)
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "TFJob"
    assert list(job["spec"]["tfReplicaSpecs"]) == ["Worker"], "worker 0 is the chief"
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 3 and worker["restartPolicy"] == "Never"
    assert job["spec"]["runPolicy"] == {"cleanPodPolicy": "None", "backoffLimit": 0, "activeDeadlineSeconds": 600,
                                        "ttlSecondsAfterFinished": tfjob.ORPHAN_TTL_S}
    (container,) = worker["template"]["spec"]["containers"]
    assert container["name"] == "tensorflow" and container["command"] == COMMAND
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_gpu_workers_request_their_accelerators_on_gpu_nodes():
    settings = cluster_training.worker_pod_settings("registry.example/kfp-ml-pipelines-gpu:0.1.0",
                                                    GpuSettings(count=2))
    job = manifest(gpus_per_worker=settings["gpus_per_worker"], node_selector=settings["node_selector"],
                   tolerations=settings["tolerations"])
    pod = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert cluster_training.worker_pod_settings("cpu-image:1", None) == {
        "image": "cpu-image:1", "gpus_per_worker": 0, "node_selector": {}, "tolerations": []}


# --------------------------------------------------------------------------- its life on the API

def test_job_is_created_followed_to_success_its_chief_log_shown_and_deleted(cluster_pod):
    lines = []
    with api_server(cluster_pod) as server:
        tfjob.run_tfjob(kube_serving.kube_api_client(), manifest(), 60, lines.append)
    assert server.errors == []
    text = "\n".join(lines)
    states = [line.split(": ")[1].split(" ")[0] for line in lines if line.startswith("TFJob mnist-train-1: ")]
    assert states == ["Pending", "Created", "Running", "Succeeded"]
    assert "workers {'active': 2}" in text
    assert "kubectl -n kubeflow logs -l training.kubeflow.org/job-name=mnist-train-1" in text
    assert "(mnist-train-1-worker-0)" in text and "(mnist-train-1-worker-1)" not in text
    assert server.deleted == ["mnist-train-1"] and server.tfjobs == {}
    assert lines[-1] == "TFJob mnist-train-1 deleted"


def test_a_failed_job_fails_with_the_operators_reason_shows_every_worker_and_is_deleted(cluster_pod):
    lines = []
    with api_server(cluster_pod, outcome="Failed") as server:
        with pytest.raises(tfjob.TFJobError) as failure:
            tfjob.run_tfjob(kube_serving.kube_api_client(), manifest(workers=3), 60, lines.append)
    assert str(failure.value) == ("TFJob mnist-train-1 failed: TFJob kubeflow/mnist-train-1 has failed because 1 "
                                  "Worker replica(s) failed.")
    assert all(f"(mnist-train-1-worker-{i})" in "\n".join(lines) for i in range(3))
    assert server.deleted == ["mnist-train-1"]


def test_a_job_that_runs_too_long_is_deleted(cluster_pod):
    with api_server(cluster_pod, outcome="Never") as server:
        with pytest.raises(tfjob.TFJobError, match=r"did not finish in 0s \(last state Running\): see kubectl -n "
                                                   r"kubeflow describe tfjob mnist-train-1"):
            tfjob.run_tfjob(kube_serving.kube_api_client(), manifest(), 0.2, lambda line: None)
    assert server.deleted == ["mnist-train-1"]


def test_without_the_tfjob_resource_the_step_says_what_to_install(cluster_pod):
    with api_server(cluster_pod, crd=False) as server:
        with pytest.raises(tfjob.TFJobError) as failure:
            tfjob.run_tfjob(kube_serving.kube_api_client(), manifest(), 60, lambda line: None)
    message = str(failure.value)
    assert "\n" not in message and message == tfjob.INSTALL_HINT
    assert "training-operator v1.9" in message and "kubeflow.org/v1" in message
    assert server.requests == [("POST", "/apis/kubeflow.org/v1/namespaces/kubeflow/tfjobs")]


def test_missing_permission_points_at_the_rbac(cluster_pod):
    with api_server(cluster_pod, role_rules=[]) as server:
        with pytest.raises(tfjob.TFJobError, match=r"cannot create TFJob mnist-train-1 in kubeflow: HTTP 403 .*"
                                                   r"kubectl apply -f deploy/"):
            tfjob.run_tfjob(kube_serving.kube_api_client(), manifest(), 60, lambda line: None)
    assert server.tfjobs == {}


def test_trainer_role_grants_exactly_what_the_tfjob_path_uses(cluster_pod):
    with api_server(cluster_pod) as server:
        tfjob.run_tfjob(kube_serving.kube_api_client(), manifest(), 60, lambda line: None)
    assert server.used == server.allowed
    binding = [doc for doc in shipped() if doc["kind"] == "RoleBinding" and doc["roleRef"]["name"] == "kfp-ml-trainer"]
    assert [subject["name"] for subject in binding[0]["subjects"]] == ["kfp-ml-deployer"]


# --------------------------------------------------------------------------- mnist on a TFJob

def test_mnist_trains_through_shared_storage_and_cleans_up(cluster_pod, tmp_path):
    """The chief's part is played by the stand-in: it reads the staged job and writes what
    the chief writes. The step copies the model and logs out and removes the staging folder."""
    storage = tmp_path / "bucket"
    splits = tmp_path / "splits.npz"
    splits.write_bytes(b"splits")
    seen = {}

    def chief(job):
        command = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"]
        staged = json.loads(local(command[-1]).read_text())
        seen.update(command=command, staged=staged, splits=local(staged["splits_path"]).read_bytes(), job=job)
        written = ((staged["export_dir"], "saved_model.pb"), (staged["tensorboard_dir"] + "/train", "events"))
        for folder, name in written:
            local(folder).mkdir(parents=True)
            (local(folder) / name).write_text(name)
        local(staged["history_path"]).write_text(json.dumps({"val_accuracy": [0.9], "val_loss": [0.3]}))

    with api_server(cluster_pod, on_create=chief) as server:
        history = cluster_training.train_with_tfjob(
            kube_serving.kube_api_client(), "kubeflow", TrainConfig(epochs=2), str(splits), str(tmp_path / "model"),
            str(tmp_path / "logs"), "run-7", 2, f"file://{storage}/", {"image": "img:1", "gpus_per_worker": 0},
            emit=lambda line: None, timeout_s=60)
    assert history == {"val_accuracy": [0.9], "val_loss": [0.3]}
    assert (tmp_path / "model" / "saved_model.pb").read_text() == "saved_model.pb"
    assert (tmp_path / "logs" / "train" / "events").is_file()
    assert seen["splits"] == b"splits" and seen["staged"]["config"]["epochs"] == 2
    assert seen["command"][:3] == ["python3", "-m", "components.mnist.distributed"]
    assert seen["job"]["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["image"] == "img:1"
    assert list(storage.iterdir()) == [], "the staging folder is removed"
    assert server.deleted and server.tfjobs == {}


def test_staging_is_removed_when_the_job_fails(cluster_pod, tmp_path):
    (tmp_path / "splits.npz").write_bytes(b"splits")
    with api_server(cluster_pod, outcome="Failed"):
        with pytest.raises(tfjob.TFJobError, match="failed"):
            cluster_training.train_with_tfjob(
                kube_serving.kube_api_client(), "kubeflow", TrainConfig(), str(tmp_path / "splits.npz"),
                str(tmp_path / "model"), str(tmp_path / "logs"), "run-7", 2, f"file://{tmp_path}/bucket",
                {"image": "img:1"}, emit=lambda line: None, timeout_s=60)
    assert list((tmp_path / "bucket").iterdir()) == []
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("storage", ["", "/mnt/shared", "  "])
def test_workers_on_a_cluster_need_storage_every_pod_reaches(storage):
    with pytest.raises(InputError, match="distributed_storage '.*': workers > 1 on a cluster need a folder every "
                                         "worker pod can reach, e.g. gs://"):
        cluster_training.check_storage(storage)

