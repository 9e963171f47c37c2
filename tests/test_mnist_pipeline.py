"""The compiled mnist pipeline: the unrolled sweep, the GPU settings, the gate."""

import pytest
import yaml
from kfp import compiler

from components.errors import InputError
from components.images import gpu_image
from pipelines import mnist


def compile_documents(tmp_path, **options) -> tuple[dict, dict]:
    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(mnist.make_pipeline(**options), str(path))
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def trial_tasks(spec: dict) -> dict[str, dict]:
    return {name: task for name, task in spec["root"]["dag"]["tasks"].items() if name.startswith("train-trial")}


def constant(task: dict, name: str):
    return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]


@pytest.fixture(autouse=True)
def default_environment(monkeypatch):
    for name in ("MNIST_LEARNING_RATES", "MNIST_HIDDEN_LAYERS", "GPU_COUNT", "GPU_NODE_SELECTOR", "GPU_TOLERATION"):
        monkeypatch.delenv(name, raising=False)


def test_sweep_is_unrolled_into_one_train_task_per_grid_point(tmp_path):
    spec, _ = compile_documents(tmp_path, learning_rates=[0.001, 0.01], hidden_layer_counts=[1, 2, 3])
    trials = trial_tasks(spec)
    grid = sorted((constant(t, "learning_rate"), constant(t, "hidden_layers")) for t in trials.values())
    assert grid == [(0.001, 1), (0.001, 2), (0.001, 3), (0.01, 1), (0.01, 2), (0.01, 3)]
    assert all(t["dependentTasks"] == ["preprocess-digits"] for t in trials.values()), "trials run in parallel"
    assert "iteratorPolicy" not in str(spec) and "parameterIterator" not in str(spec), "no ParallelFor"
    select = spec["root"]["dag"]["tasks"]["select-best-trial"]
    assert set(select["dependentTasks"]) == set(trials)
    assert sorted(constant(select, "trial_names")) == sorted(constant(t, "trial_name") for t in trials.values())


def test_default_grid_is_two_by_two_and_evaluates_the_selected_model(tmp_path):
    spec, _ = compile_documents(tmp_path)
    assert len(trial_tasks(spec)) == len(mnist.DEFAULT_LEARNING_RATES) * len(mnist.DEFAULT_HIDDEN_LAYER_COUNTS) == 4
    tasks = spec["root"]["dag"]["tasks"]
    model_input = tasks["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
    assert model_input == {"outputArtifactKey": "best_model", "producerTask": "select-best-trial"}
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["threshold"]["defaultValue"] == 0.7
    assert parameters["source"]["defaultValue"] == ""


def test_deploy_runs_only_when_accuracy_reaches_the_threshold(tmp_path):
    spec, executors = compile_documents(tmp_path)
    tasks = spec["root"]["dag"]["tasks"]
    assert "deploy-model" not in tasks
    gate = tasks["condition-1"]
    assert gate["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--gate-model-Output'] == 'deploy'")
    deploy = spec["components"]["comp-condition-1"]["dag"]["tasks"]["deploy-model"]
    assert deploy["inputs"]["artifacts"]["model"]["componentInputArtifact"] == \
        "pipelinechannel--select-best-trial-best_model"
    assert executors["exec-deploy-model"]["pvcMount"][0]["mountPath"] == "/models"


def test_cpu_variant_requests_no_gpu(tmp_path):
    spec, executors = compile_documents(tmp_path)
    assert "accelerator" not in str(spec["deploymentSpec"])
    assert not any("tolerations" in e or "nodeSelector" in e for e in executors.values())


def test_gpu_variant_trains_every_trial_on_a_tolerated_gpu_node(tmp_path):
    spec, executors = compile_documents(tmp_path, gpu=True)
    assert spec["pipelineInfo"]["name"] == "mnist-gpu"
    trials = trial_tasks(spec)
    assert len(trials) == 4
    trial_labels = {spec["components"][t["componentRef"]["name"]]["executorLabel"] for t in trials.values()}
    for label in trial_labels:
        container = spec["deploymentSpec"]["executors"][label]["container"]
        assert container["image"] == gpu_image()
        assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert int(container["resources"]["accelerator"]["resourceCount"]) == 1
        assert executors[label]["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert executors[label]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    others = [e for label, e in spec["deploymentSpec"]["executors"].items() if label not in trial_labels]
    assert others and not any("accelerator" in e["container"].get("resources", {}) for e in others)


def test_gpu_settings_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GPU_COUNT", "2")
    monkeypatch.setenv("GPU_NODE_SELECTOR", "cloud.google.com/gke-accelerator=nvidia-l4")
    monkeypatch.setenv("GPU_TOLERATION", "")
    spec, executors = compile_documents(tmp_path, gpu=True)
    for task in trial_tasks(spec).values():
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        assert int(spec["deploymentSpec"]["executors"][label]["container"]["resources"]["accelerator"][
            "resourceCount"]) == 2
        assert executors[label]["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
        assert "tolerations" not in executors[label]


@pytest.mark.parametrize("name, value, message", [
    ("GPU_COUNT", "zero", "GPU_COUNT must be a whole number"),
    ("GPU_TOLERATION", "nvidia.com/gpu", "GPU_TOLERATION should look like 'key:value'"),
    ("GPU_NODE_SELECTOR", "=x", "GPU_NODE_SELECTOR should look like 'key=value'"),
])
def test_bad_gpu_settings_are_clear_errors(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=message):
        mnist.make_pipeline(gpu=True)


def test_sweep_grid_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_LEARNING_RATES", "0.01")
    monkeypatch.setenv("MNIST_HIDDEN_LAYERS", "0,1,2")
    spec, _ = compile_documents(tmp_path)
    assert sorted(constant(t, "hidden_layers") for t in trial_tasks(spec).values()) == [0, 1, 2]


def test_empty_sweep_grid_is_a_clear_error(monkeypatch):
    with pytest.raises(InputError, match="the sweep grid is empty"):
        mnist.make_pipeline(learning_rates=[])
    monkeypatch.setenv("MNIST_HIDDEN_LAYERS", "")
    with pytest.raises(InputError, match="the sweep grid is empty"):
        mnist.make_pipeline()


def test_parameters_are_checked_before_a_run():
    defaults = {name: spec.default for name, spec in mnist.make_pipeline().component_spec.inputs.items()}
    mnist.check_parameters(defaults)
    with pytest.raises(InputError, match="validation_fraction \\+ test_fraction"):
        mnist.check_parameters({**defaults, "validation_fraction": 0.5, "test_fraction": 0.6})
    with pytest.raises(InputError, match="epochs must be at least 1"):
        mnist.check_parameters({**defaults, "epochs": 0})
