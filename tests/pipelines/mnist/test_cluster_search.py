"""The mnist search step on a cluster: the Katib Experiment it creates (trial template, objective,
algorithm), staging, the best trial's model and every trial's results collected, cleanup on
success and on failure, against the Katib stand-in; and one trial as its pod runs it, its
metrics line read the way Katib's StdOut collector reads it."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from standins.katib import KatibStandIn, check_experiment
from standins.manifests import REPO, role_rules

from components.cluster import katib
from components.cluster import serving as kube_serving
from pipelines.mnist import cluster_search, search, sweep
from pipelines.mnist.trials import TrialSettings

# Katib v0.19.0's default metrics filter (pkg/metricscollector/v1beta1/common/const.go, DefaultFilter).
KATIB_DEFAULT_FILTER = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")
PLAN = search.make_plan("bayesian", 1e-3, 0.03, 1, 2, 4, 2, 7)
SETTINGS = TrialSettings(hidden_units=8, epochs=1, batch_size=64, seed=7,
                         worker_pod={"image": "img:1", "gpus_per_worker": 0})


@pytest.fixture
def tiny_splits(tmp_path) -> Path:
    """A few hundred of the shipped digits, saved as the preprocess step saves them."""
    from pipelines.mnist import data, preprocess

    made = preprocess.make_splits(data.load_sample(), 0.1, 0.2, seed=0)
    head = lambda split, count: preprocess.Split(split.images[:count], split.labels[:count])  # noqa: E731
    path = tmp_path / "splits.npz"
    preprocess.save_splits(preprocess.Splits(head(made.train, 320), head(made.validation, 100),
                                             head(made.test, 100)), path)
    return path


def local(uri: str) -> Path:
    """A file:// URI (the tests' stand-in for gs://) as a path."""
    return Path(uri.removeprefix("file://"))


def play_the_trials(names: list[str]):
    """Katib's trials, played at creation: each writes what run_trial writes, the later ones better."""
    def trials(experiment):
        command = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
            "command"]
        staged = json.loads(local(command[4]).read_text())
        for rank, name in enumerate(names):
            folder = local(staged["trials_dir"]) / name
            (folder / "model").mkdir(parents=True)
            (folder / "model" / "saved_model.pb").write_text(name)
            (folder / "tensorboard" / "train").mkdir(parents=True)
            (folder / "tensorboard" / "train" / "events").write_text(name)
            result = sweep.TrialResult(name, 0.01, 1, 8, 1, 0.8 + rank / 100, 0.5, 3.0)
            (folder / "result.json").write_text(json.dumps({
                "result": result.as_metadata(),
                "history": {"loss": [0.9], "accuracy": [0.7], "val_loss": [0.5], "val_accuracy": [0.8 + rank / 100]}}))
    return trials


def api_server(cluster_pod, **options) -> KatibStandIn:
    tls, _, monkeypatch = cluster_pod
    server = KatibStandIn(tls, "deployer-token", role_rules("kfp-ml-katib"), **options)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    return server


def run_search(tmp_path, lines: list | None = None) -> cluster_search.ClusterSearch:
    splits = tmp_path / "splits.npz"
    splits.write_bytes(b"splits")
    return cluster_search.search_on_cluster(
        kube_serving.kube_api_client(), "kubeflow", PLAN, SETTINGS, str(splits), f"file://{tmp_path}/bucket/",
        "img:1", str(tmp_path / "best"), str(tmp_path / "logs"), (lines if lines is not None else []).append, 60)


def test_experiment_for_a_plan_passes_katibs_checks_and_runs_the_trial_command():
    experiment = cluster_search.experiment_for("mnist-search-1", "kubeflow", PLAN, "img:1", "gs://b/stage")
    check_experiment(experiment)
    spec = experiment["spec"]
    assert spec["algorithm"] == {"algorithmName": "multivariate-tpe", "algorithmSettings": [
        {"name": "n_startup_trials", "value": "2"}, {"name": "random_state", "value": "7"}]}
    assert (spec["maxTrialCount"], spec["parallelTrialCount"]) == (4, 2)
    assert spec["objective"]["objectiveMetricName"] == "val_accuracy" and spec["objective"]["type"] == "maximize"
    (container,) = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "img:1"
    assert container["command"][:5] == ["python3", "-m", "pipelines.mnist.cluster_search", "trial",
                                        "gs://b/stage/search.json"]


def test_random_search_runs_katibs_random_with_the_seed_and_no_tpe_setting():
    plan = search.make_plan("random", 1e-3, 0.03, 0, 3, 5, 5, 11)
    spec = cluster_search.experiment_for("s", "ns", plan, "img:1", "gs://b/s")["spec"]
    assert spec["algorithm"] == {"algorithmName": "random",
                                 "algorithmSettings": [{"name": "random_state", "value": "11"}]}


def test_the_best_trials_model_and_every_trials_results_come_back_and_staging_goes(cluster_pod, tmp_path):
    names = ["mnist-search-trial-a", "mnist-search-trial-b", "mnist-search-trial-c"]
    lines = []
    with api_server(cluster_pod, best_trial=names[1], best_parameters={"learning_rate": "0.01"},
                    on_create=play_the_trials(names)) as server:
        found = run_search(tmp_path, lines)
    assert server.errors == [] and len(server.checked) == 1
    assert [result.name for result in found.results] == names
    assert found.best.name == names[1], "Katib's best trial, not the step's own pick"
    assert (tmp_path / "best" / "saved_model.pb").read_text() == names[1]
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == names
    assert found.histories[names[2]]["val_accuracy"] == [pytest.approx(0.82)]
    assert list((tmp_path / "bucket").iterdir()) == [], "the staging folder is removed"
    assert server.deleted and server.experiments == {}
    assert any(line.startswith(f"Katib's best trial: {names[1]}") for line in lines)


def test_a_failed_search_removes_its_staging_and_its_experiment(cluster_pod, tmp_path):
    lines = []
    with api_server(cluster_pod, outcome="Failed") as server:
        with pytest.raises(katib.ExperimentError, match="max failed count"):
            run_search(tmp_path, lines)
    assert any(line.startswith("--- last lines of mnist-search-") for line in lines)
    assert list((tmp_path / "bucket").iterdir()) == [] and server.experiments == {}
    assert not (tmp_path / "best").exists()


def test_a_best_trial_without_results_is_an_error(cluster_pod, tmp_path):
    with api_server(cluster_pod, best_trial="mnist-search-gone", on_create=play_the_trials(["other"])):
        with pytest.raises(katib.ExperimentError, match="the best trial mnist-search-gone left no result.json"):
            run_search(tmp_path)
    assert list((tmp_path / "bucket").iterdir()) == []


def test_a_trial_pod_trains_leaves_its_result_and_prints_what_katib_collects(tmp_path, tiny_splits):
    trials_dir = tmp_path / "stage" / "trials"
    job = cluster_search.TrialJob({**SETTINGS.__dict__, "worker_pod": None}, str(tiny_splits), str(trials_dir))
    search_file = tmp_path / "stage" / "search.json"
    search_file.parent.mkdir()
    search_file.write_text(json.dumps(job.__dict__))
    done = subprocess.run([sys.executable, "-m", "pipelines.mnist.cluster_search", "trial", str(search_file),
                           "--learning-rate=0.01", "--hidden-layers=1", "--trial-name=mnist-search-x-abc"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    collected = {name: float(value) for line in done.stdout.splitlines()
                 for name, value, *_ in KATIB_DEFAULT_FILTER.findall(line)}
    written = json.loads((trials_dir / "mnist-search-x-abc" / "result.json").read_text())
    assert collected["val_accuracy"] == pytest.approx(written["result"]["val_accuracy"], abs=1e-6)
    assert collected["val_loss"] == pytest.approx(written["result"]["val_loss"], abs=1e-6)
    assert written["result"]["learning_rate"] == 0.01 and written["result"]["hidden_layers"] == 1
    assert (trials_dir / "mnist-search-x-abc" / "model" / "saved_model.pb").is_file()


def test_make_search_manifest_prints_an_experiment_katib_accepts():
    import yaml

    done = subprocess.run(["make", "-s", "search-manifest", "NAMESPACE=team-a", "IMAGE=registry.example/k:1",
                           "SEARCH_STORAGE=gs://bucket/stage", "SEARCH_ARGS=--sweep random --trials 8"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    experiment = yaml.safe_load(done.stdout)
    check_experiment(experiment)
    assert experiment["metadata"]["namespace"] == "team-a"
    assert experiment["spec"]["algorithm"]["algorithmName"] == "random" and experiment["spec"]["maxTrialCount"] == 8


def test_the_manifest_command_refuses_a_bad_plan_in_one_line():
    done = subprocess.run([sys.executable, "-m", "pipelines.mnist.cluster_search", "manifest", "--image", "i:1",
                           "--trials", "2", "--parallelism", "3"], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "error: parallelism must be a whole number from 1 to trials (2), got 3\n"
