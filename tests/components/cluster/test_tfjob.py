"""The cluster path of distributed training: the TFJob manifest against the Kubernetes
schemas, and its life (creation, status, failure, missing CRD, cleanup) against the
Kubernetes API stand-in with training-operator 1.9's TFJob resource."""

import pytest
from standins.manifests import role_rules, shipped, validate_part
from standins.training import TFJobStandIn

from components.cluster import serving as kube_serving
from components.cluster import tfjob
from components.settings.gpu import GpuSettings
from pipelines.mnist import cluster_training

COMMAND = ["python3", "-m", "pipelines.mnist.distributed", "gs://bucket/stage/job.json"]


def api_server(cluster_pod, **options) -> TFJobStandIn:
    tls, _, monkeypatch = cluster_pod
    options.setdefault("role_rules", role_rules("kfp-ml-tfjob"))
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
    binding = [doc for doc in shipped() if doc["kind"] == "RoleBinding" and doc["roleRef"]["name"] == "kfp-ml-tfjob"]
    assert [subject["name"] for subject in binding[0]["subjects"]] == ["kfp-ml-deployer"]
