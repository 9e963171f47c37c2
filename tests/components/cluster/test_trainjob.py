"""The Kubeflow Trainer v2 path of distributed training: the shipped TensorFlow runtime and the
TrainJob against Trainer v2.1's and v2.3's CRD schemas (tests/standins/crds), the runtime's TF_CONFIG
run through its own shell command, and the job's life (creation, status, logs, failure, missing
runtime or CRD, cleanup) against the Kubernetes API stand-in with Trainer's resources."""

import json
import shutil
import subprocess

import jsonschema
import pytest
import yaml
from standins.manifests import CRD_FILES, REPO, role_rules, shipped, validate_custom, validate_part
from standins.training import TrainingStandIn

from components.cluster import serving as kube_serving
from components.cluster import trainjob
from pipelines.mnist import cluster_training
from pipelines.mnist.launcher import tf_config

RUNTIME_FILE = REPO / "deploy" / "trainer-tensorflow-runtime.yaml"
ARGS = ["python3", "-m", "pipelines.mnist.distributed", "gs://bucket/stage/job.json"]


def runtime() -> dict:
    return yaml.safe_load(RUNTIME_FILE.read_text())


def node_container(training_runtime: dict) -> dict:
    (node,) = training_runtime["spec"]["template"]["spec"]["replicatedJobs"]
    (container,) = node["template"]["spec"]["template"]["spec"]["containers"]
    return container


def manifest(name: str = "mnist-train-1", workers: int = 2, **options) -> dict:
    return trainjob.trainjob_manifest(name, "kubeflow", "registry.example/kfp-ml-pipelines:0.1.0", ARGS, workers,
                                      **options)


def api_server(cluster_pod, **options) -> TrainingStandIn:
    tls, _, monkeypatch = cluster_pod
    options.setdefault("role_rules", role_rules("kfp-ml-trainjob"))
    options.setdefault("tfjob", False)
    server = TrainingStandIn(tls, "deployer-token", **options)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    return server


# --------------------------------------------------------------------------- the runtime

@pytest.mark.parametrize("crd_file", CRD_FILES["TrainingRuntime"])
def test_shipped_runtime_validates_against_the_trainingruntime_crd(crd_file):
    validate_custom(runtime(), crd_file)


def test_runtime_is_the_plain_ml_policy_on_one_indexed_node_job_that_never_restarts():
    shipped_runtime = runtime()
    assert shipped_runtime["kind"] == trainjob.RUNTIME_KIND
    assert shipped_runtime["metadata"]["name"] == trainjob.RUNTIME_NAME
    assert shipped_runtime["spec"]["mlPolicy"] == {"numNodes": 1}, "no framework plugin: the plain ML policy"
    (node,) = shipped_runtime["spec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node" and node["replicas"] == 1
    assert node["template"]["metadata"]["labels"] == {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}
    job = node["template"]["spec"]
    assert job["completionMode"] == "Indexed" and job["backoffLimit"] == 0
    assert job["activeDeadlineSeconds"] == cluster_training.JOB_TIMEOUT_S, "the step waits as long"
    validate_part(job["template"], "podtemplatespec-v1")
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    assert node_container(shipped_runtime)["name"] == trainjob.CONTAINER


def run_runtime_command(tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The runtime container's command as the pod runs it, with the TrainJob's args after it:
    here args that print the TF_CONFIG the training program would read."""
    container = node_container(runtime())
    pod_env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    args = [shutil.which("python3"), "-c", "import os; print(os.environ['TF_CONFIG'])"]
    return subprocess.run([*container["command"], *args], env={**pod_env, **env, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, cwd=tmp_path)


def test_runtime_gives_every_node_the_tf_config_of_the_jobsets_host_names(tmp_path):
    container = node_container(runtime())
    sources = {item["name"]: item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
               for item in container["env"]}
    assert sources["TRAIN_JOB_NAME"] == "metadata.labels['jobset.sigs.k8s.io/jobset-name']"
    assert sources["NODE_INDEX"] == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert container["ports"] == [{"name": "tf-worker", "containerPort": 2222}]
    # Trainer's JobSet names pods <trainjob>-<replicated job>-<job index>-<pod index>.<subdomain = trainjob>
    # (pkg/runtime/framework/plugins/jobset IdentifyPodNetwork).
    hosts = [f"mnist-train-7-node-0-{i}.mnist-train-7:2222" for i in range(3)]
    for index in range(3):
        done = run_runtime_command(tmp_path, {"TRAIN_JOB_NAME": "mnist-train-7", "NODE_INDEX": str(index),
                                              "NUM_NODES": "3"})
        assert done.returncode == 0, done.stderr
        config = json.loads(done.stdout)
        assert config == {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        # The same shape as the local launcher's TF_CONFIG, which MultiWorkerMirroredStrategy runs with.
        local = json.loads(tf_config([1, 2, 3], index))
        assert set(config) == set(local) and config["task"] == local["task"]


def test_tensorflow_reads_the_runtimes_tf_config_as_a_cluster_of_workers(tmp_path, monkeypatch):
    import tensorflow as tf

    done = run_runtime_command(tmp_path, {"TRAIN_JOB_NAME": "job", "NODE_INDEX": "1", "NUM_NODES": "2"})
    monkeypatch.setenv("TF_CONFIG", done.stdout.strip())
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    assert resolver.cluster_spec().as_dict() == {"worker": ["job-node-0-0.job:2222", "job-node-0-1.job:2222"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)


def test_runtime_refuses_to_start_without_the_node_count(tmp_path):
    done = run_runtime_command(tmp_path, {"TRAIN_JOB_NAME": "mnist-train-7", "NODE_INDEX": "0"})
    assert done.returncode != 0 and "NUM_NODES" in done.stderr and not done.stdout


# --------------------------------------------------------------------------- the TrainJob

@pytest.mark.parametrize("crd_file", CRD_FILES["TrainJob"])
def test_trainjob_validates_against_trainer_v2_1_and_v2_3(crd_file):
    validate_custom(manifest(gpus_per_worker=2, env={"A": "1"}), crd_file)
    validate_custom(manifest(), crd_file)


def test_a_field_of_one_trainer_release_only_fails_the_other():
    """The strict check catches fields the CRD does not have (Trainer v2.3 renamed pod overrides)."""
    job = manifest()
    job["spec"]["podTemplateOverrides"] = []
    validate_custom(job, "trainer-v2.1.0-trainjobs.yaml.gz")
    with pytest.raises(jsonschema.ValidationError, match="podTemplateOverrides"):
        validate_custom(job, "trainer-v2.3.0-trainjobs.yaml.gz")
    job["spec"]["trainer"]["numNode"] = 2
    with pytest.raises(jsonschema.ValidationError, match="numNode"):
        validate_custom(job, "trainer-v2.1.0-trainjobs.yaml.gz")


def test_trainjob_runs_its_args_on_the_shipped_runtime_with_the_node_count():
    job = manifest(workers=3, gpus_per_worker=1)
    assert job["spec"]["runtimeRef"] == {"name": runtime()["metadata"]["name"], "apiGroup": "trainer.kubeflow.org",
                                         "kind": runtime()["kind"]}
    trainer = job["spec"]["trainer"]
    assert "command" not in trainer, "the runtime's command builds TF_CONFIG, then runs the args"
    assert trainer["args"] == ARGS and trainer["numNodes"] == 3
    assert {"name": "NUM_NODES", "value": "3"} in trainer["env"]
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in manifest()["spec"]["trainer"]["resourcesPerNode"]["limits"]


# --------------------------------------------------------------------------- its life on the API

def test_job_is_created_followed_to_completion_its_chief_log_shown_and_deleted(cluster_pod):
    lines = []
    with api_server(cluster_pod) as server:
        trainjob.run_trainjob(kube_serving.kube_api_client(), manifest(), 60, lines.append)
    assert server.errors == []
    text = "\n".join(lines)
    states = [line.split(": ")[1].split(" ")[0].rstrip(";") for line in lines
              if line.startswith("TrainJob mnist-train-1: ")]
    assert states == ["Pending", "Pending", "Complete"]
    assert "nodes {'active': 2, 'ready': 2}" in text
    assert "kubectl -n kubeflow logs -l jobset.sigs.k8s.io/jobset-name=mnist-train-1" in text
    assert "--- last lines of mnist-train-1-node-0-0-" in text, "the chief, found by its completion index"
    assert "(mnist-train-1-node-0-1-" not in text
    assert server.deleted == ["mnist-train-1"] and server.trainjobs == {}
    assert lines[-1] == "TrainJob mnist-train-1 deleted"


def test_a_failed_job_fails_with_trainers_reason_shows_every_node_and_is_deleted(cluster_pod):
    lines = []
    with api_server(cluster_pod, outcome="Failed") as server:
        with pytest.raises(trainjob.TrainJobError) as failure:
            trainjob.run_trainjob(kube_serving.kube_api_client(), manifest(workers=3), 60, lines.append)
    assert str(failure.value).startswith("TrainJob mnist-train-1 failed: jobset failed: job node-0")
    assert all(f"(mnist-train-1-node-0-{i}-" in "\n".join(lines) for i in range(3))
    assert server.deleted == ["mnist-train-1"]


def test_a_job_that_runs_too_long_is_deleted(cluster_pod):
    with api_server(cluster_pod, outcome="Never") as server:
        with pytest.raises(trainjob.TrainJobError, match=r"did not finish in 0s \(last state Pending\): see kubectl "
                                                         r"-n kubeflow describe trainjob mnist-train-1"):
            trainjob.run_trainjob(kube_serving.kube_api_client(), manifest(), 0.2, lambda line: None)
    assert server.deleted == ["mnist-train-1"]


def test_a_missing_runtime_is_named_with_how_to_install_it(cluster_pod):
    with api_server(cluster_pod, runtime=False):
        with pytest.raises(trainjob.RuntimeMissing) as failure:
            trainjob.check_runtime(kube_serving.kube_api_client(), "kubeflow")
    assert str(failure.value) == ("the TrainingRuntime tensorflow-distributed is not installed in namespace "
                                  "kubeflow: install it with make trainer-runtime NAMESPACE=kubeflow "
                                  "(deploy/trainer-tensorflow-runtime.yaml)")


def test_without_the_trainjob_resource_the_step_says_what_to_install(cluster_pod):
    with api_server(cluster_pod, trainer=False) as server:
        with pytest.raises(trainjob.TrainJobError) as failure:
            trainjob.run_trainjob(kube_serving.kube_api_client(), manifest(), 60, lambda line: None)
    assert str(failure.value) == trainjob.INSTALL_HINT and "\n" not in trainjob.INSTALL_HINT
    assert server.requests == [("POST", "/apis/trainer.kubeflow.org/v1alpha1/namespaces/kubeflow/trainjobs")]


def test_missing_permission_points_at_the_rbac(cluster_pod):
    with api_server(cluster_pod, role_rules=role_rules("kfp-ml-tfjob")) as server:
        with pytest.raises(trainjob.TrainJobError, match=r"cannot create TrainJob mnist-train-1 in kubeflow: HTTP 403 "
                                                         r".*kubectl apply -f deploy/rbac.yaml"):
            trainjob.run_trainjob(kube_serving.kube_api_client(), manifest(), 60, lambda line: None)
    assert server.trainjobs == {}


def test_trainjob_role_grants_exactly_what_the_trainjob_path_uses(cluster_pod):
    with api_server(cluster_pod) as server:
        api = kube_serving.kube_api_client()
        trainjob.check_runtime(api, "kubeflow")
        trainjob.run_trainjob(api, manifest(), 60, lambda line: None)
    assert server.used == server.allowed
    (rule,) = [rule for rule in role_rules("kfp-ml-trainjob") if rule["resources"] == ["trainingruntimes"]]
    assert rule["resourceNames"] == [trainjob.RUNTIME_NAME]
    binding = [doc for doc in shipped() if doc["kind"] == "RoleBinding" and doc["roleRef"]["name"] == "kfp-ml-trainjob"]
    assert [subject["name"] for subject in binding[0]["subjects"]] == ["kfp-ml-deployer"]
