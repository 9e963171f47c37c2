"""The Katib path of the hyperparameter search: the Experiment against Katib v0.19.0's CRD and
Katib's API models (as the Kubeflow SDK builds them), and its life (creation, status, the best
or failed trials' logs, timeout, missing CRD, missing Role rules, cleanup) against the
Kubernetes API stand-in with Katib's resource."""

import pytest
from standins.katib import KatibStandIn, check_experiment
from standins.manifests import role_rules

from components.cluster import katib
from components.cluster import serving as kube_serving

COMMAND = ["python3", "-m", "trainer", "--lr=${trialParameters.learningRate}", "--name=${trialParameters.trialName}"]


def manifest(name: str = "search-1", algorithm: str = "multivariate-tpe", **options) -> dict:
    job = katib.trial_job("registry.example/kfp-ml-pipelines:0.1.0", COMMAND,
                          {"requests": {"cpu": "1"}}, {"A": "1"}, **options)
    return katib.experiment_manifest(
        name, "kubeflow", algorithm, [katib.Parameter("lr", "double", 1e-4, 0.1, log=True),
                                      katib.Parameter("layers", "int", 1, 3)],
        katib.Objective("val_accuracy", "maximize", ("val_loss",)), job,
        {"learningRate": "lr", "trialName": "${trialSpec.Name}"}, 6, 2, 1, {"random_state": "7"})


def api_server(cluster_pod, **options) -> KatibStandIn:
    tls, _, monkeypatch = cluster_pod
    options.setdefault("role_rules", role_rules("kfp-ml-katib"))
    server = KatibStandIn(tls, "deployer-token", **options)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    return server


# --------------------------------------------------------------------------- the object

@pytest.mark.parametrize("options", [{}, {"node_selector": {"gpu": "yes"}, "deadline_s": 60,
                                          "tolerations": [{"key": "gpu", "operator": "Exists",
                                                           "effect": "NoSchedule"}]}])
def test_experiment_passes_the_crd_katibs_models_and_a_strict_job_schema(options):
    check_experiment(manifest(**options))


def test_the_checks_refuse_what_katib_would_refuse():
    misspelled = manifest()
    misspelled["spec"]["maxTrialCounts"] = 6
    with pytest.raises(AssertionError, match="drops or changes fields"):
        check_experiment(misspelled)
    undeclared = manifest()
    undeclared["spec"]["trialTemplate"]["trialParameters"].pop()
    with pytest.raises(AssertionError, match="placeholders"):
        check_experiment(undeclared)
    bad_job = manifest()
    bad_job["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["restartPolicy"] = 3
    with pytest.raises(Exception, match="3"):
        check_experiment(bad_job)


def test_objective_is_the_last_value_not_katibs_default_best_one():
    objective = manifest()["spec"]["objective"]
    assert objective["metricStrategies"] == [{"name": "val_accuracy", "value": "latest"},
                                             {"name": "val_loss", "value": "latest"}]
    assert objective["additionalMetricNames"] == ["val_loss"]


def test_parameters_say_log_scale_and_types_as_katib_spells_them():
    low, layers = manifest()["spec"]["parameters"]
    assert low == {"name": "lr", "parameterType": "double",
                   "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"}}
    assert layers["feasibleSpace"] == {"min": "1", "max": "3"}


def test_trials_never_restart_keep_their_pods_and_skip_istio():
    spec = manifest()["spec"]
    job = spec["trialTemplate"]["trialSpec"]
    assert spec["trialTemplate"]["retain"] is True and spec["maxFailedTrialCount"] == 1
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["name"] == spec["trialTemplate"]["primaryContainerName"] == katib.CONTAINER
    assert container["command"] == COMMAND and "args" not in container


# --------------------------------------------------------------------------- its life

def test_a_successful_experiment_shows_the_best_trials_log_and_is_deleted(cluster_pod):
    lines = []
    with api_server(cluster_pod, best_trial="search-1-trial3", best_parameters={"lr": "0.01"}) as server:
        finished = katib.run_experiment(kube_serving.kube_api_client(), manifest(), 60, lines.append)
    assert server.errors == []
    assert katib.best_trial(finished) == katib.BestTrial("search-1-trial3", {"lr": "0.01"}, {"val_accuracy": "0.9"})
    assert lines[0].startswith("Experiment search-1 created in kubeflow: multivariate-tpe, 6 trials, 2 at a time")
    assert "Experiment search-1: Running (Experiment is running); trials running 2" in lines
    assert "--- last lines of search-1-trial3-x7k2p ---" in lines
    assert lines[-1] == "Experiment search-1 deleted"
    assert server.deleted == ["search-1"] and server.experiments == {}
    assert server.used == {("kubeflow.org", "experiments", verb) for verb in ("create", "get", "delete")} | \
        {("", "pods", "list"), ("", "pods/log", "get")}


def test_a_failed_trial_shows_its_last_lines_then_the_experiment_is_deleted(cluster_pod):
    lines = []
    with api_server(cluster_pod, outcome="Failed") as server:
        with pytest.raises(katib.ExperimentError, match=r"^Experiment search-1 failed: Experiment has failed because "
                                                         r"max failed count has reached$"):
            katib.run_experiment(kube_serving.kube_api_client(), manifest(), 60, lines.append)
    shown = lines.index("--- last lines of search-1-failed-x7k2p ---")
    assert "val_accuracy=0.850000" in lines[shown + 1]
    assert lines[-1] == "Experiment search-1 deleted" and server.experiments == {}


def test_an_experiment_past_its_time_limit_is_deleted(cluster_pod):
    with api_server(cluster_pod, outcome="Never") as server:
        with pytest.raises(katib.ExperimentError, match=r"did not finish in 0s \(last state \w+\): see kubectl -n "
                                                         r"kubeflow describe experiment search-1"):
            katib.run_experiment(kube_serving.kube_api_client(), manifest(), 0.2, lambda line: None)
    assert server.deleted == ["search-1"]


def test_without_katib_it_says_what_to_install(cluster_pod):
    with api_server(cluster_pod, crd=False) as server:
        with pytest.raises(katib.ExperimentError) as failure:
            katib.run_experiment(kube_serving.kube_api_client(), manifest(), 60, lambda line: None)
    assert str(failure.value) == katib.INSTALL_HINT and "sweep=grid" in str(failure.value)
    assert server.deleted == []


def test_without_the_role_it_names_the_rbac_file(cluster_pod):
    with api_server(cluster_pod, role_rules=role_rules("kfp-ml-trainjob")):
        with pytest.raises(katib.ExperimentError, match=r"cannot create Experiment search-1 in kubeflow: HTTP 403 .*"
                                                         r"deploy/rbac.yaml"):
            katib.run_experiment(kube_serving.kube_api_client(), manifest(), 60, lambda line: None)


def test_an_experiment_without_a_best_trial_is_an_error():
    with pytest.raises(katib.ExperimentError, match="finished without a best trial"):
        katib.best_trial({"metadata": {"name": "search-1"}, "status": {"currentOptimalTrial": {}}})


def test_the_katib_role_grants_exactly_what_the_experiment_path_uses(cluster_pod):
    from standins.manifests import shipped

    with api_server(cluster_pod, best_trial="search-1-trial0") as server:
        katib.run_experiment(kube_serving.kube_api_client(), manifest(), 60, lambda line: None)
    assert server.used == server.allowed
    binding = [doc for doc in shipped() if doc["kind"] == "RoleBinding" and doc["roleRef"]["name"] == "kfp-ml-katib"]
    assert [subject["name"] for subject in binding[0]["subjects"]] == ["kfp-ml-deployer"]
