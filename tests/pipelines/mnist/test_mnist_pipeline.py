"""The compiled mnist pipeline: the run-time sweep, the workers, the GPU settings, the gate."""

import pytest
import yaml
from conftest import compile_documents, pipeline_defaults

from components.common.errors import InputError
from components.common.images import cpu_image, gpu_image
from pipelines.mnist import pipeline as mnist
from pipelines.mnist.sweep import DEFAULT_GRID

GPU_SETTINGS = ("GPU_COUNT", "GPU_NODE_SELECTOR", "GPU_TOLERATION")


def compile_mnist(folder, gpu: bool = False) -> tuple[dict, dict]:
    """(the pipeline spec, the Kubernetes executors) of the (GPU) variant compiled in `folder`."""
    spec, platform = compile_documents("mnist", folder / "pipeline.yaml", gpu)
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[bool, tuple[dict, dict]]:
    """Each variant (gpu: False, True) compiled once with the default GPU settings, for the tests that
    only read it."""
    with pytest.MonkeyPatch.context() as patch:
        for name in GPU_SETTINGS:
            patch.delenv(name, raising=False)
        return {gpu: compile_mnist(tmp_path_factory.mktemp("mnist"), gpu) for gpu in (False, True)}


def branch(spec: dict, sweep: str) -> dict:
    """The tasks of the sweep=grid branch (`grid`) or of the other one (`search`)."""
    branches = spec["root"]["dag"]["tasks"]["condition-branches-1"]["componentRef"]["name"]
    tasks = spec["components"][branches]["dag"]["tasks"]
    (chosen,) = [task for task in tasks.values()
                 if task["triggerPolicy"]["condition"].startswith("!") != (sweep == "grid")]
    return spec["components"][chosen["componentRef"]["name"]]["dag"]["tasks"]


def sweep_loop(spec: dict) -> tuple[dict, dict]:
    """(the ParallelFor task of the grid branch, the train task inside it)."""
    (loop,) = [task for task in branch(spec, "grid").values() if "parameterIterator" in task]
    inner = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    return loop, inner["train-trial"]


def train_executor(spec: dict) -> str:
    _, train = sweep_loop(spec)
    return spec["components"][train["componentRef"]["name"]]["executorLabel"]


@pytest.fixture(autouse=True)
def default_environment(monkeypatch):
    for name in GPU_SETTINGS:
        monkeypatch.delenv(name, raising=False)


def test_sweep_grid_is_a_parameter_iterated_at_run_time_with_a_parallelism_limit(compiled):
    spec, _ = compiled[False]
    grid = spec["root"]["inputDefinitions"]["parameters"]["sweep_grid"]
    assert grid["parameterType"] == "LIST" and grid["defaultValue"] == DEFAULT_GRID
    loop, train = sweep_loop(spec)
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--sweep_grid"}
    assert loop["iteratorPolicy"]["parallelismLimit"] == mnist.SWEEP_PARALLELISM
    item = loop["parameterIterator"]["itemInput"]
    assert train["inputs"]["parameters"]["grid_point"] == {"componentInputParameter": item}


def test_trials_hand_their_models_to_the_select_step_as_collected_artifacts(compiled):
    spec, _ = compiled[False]
    loop, train = sweep_loop(spec)
    assert train["inputs"]["artifacts"]["splits"] == {
        "componentInputArtifact": "pipelinechannel--preprocess-digits-splits"}
    select = branch(spec, "grid")["select-best-trial"]
    assert select["inputs"]["artifacts"]["trial_models"]["taskOutputArtifact"]["producerTask"] == "for-loop-2"
    loop_outputs = spec["components"][loop["componentRef"]["name"]]["dag"]["outputs"]["artifacts"]
    assert list(loop_outputs.values()) == [{"artifactSelectors": [{"outputArtifactKey": "model",
                                                                    "producerSubtask": "train-trial"}]}]
    select_input = spec["components"]["comp-select-best-trial"]["inputDefinitions"]["artifacts"]["trial_models"]
    assert select_input["isArtifactList"] is True


def test_only_steps_that_run_alone_use_the_workspace_and_only_validation_gate_and_deploy_mount_a_claim(compiled):
    spec, executors = compiled[False]
    tasks = spec["root"]["dag"]["tasks"]
    using_workspace = sorted(name for name, task in [*tasks.items(), *branch(spec, "grid").items(),
                                                     *branch(spec, "search").items()]
                             if "{{$.workspace_path}}" in yaml.safe_dump(task.get("inputs", {})))
    # The download, then (one branch or the other) the select or the search step, then the step
    # that takes the best model from there: one after another, never two at once.
    assert using_workspace == ["download-digits", "search-trials", "select-best-trial", "take-best-model"]
    assert tasks["take-best-model"]["dependentTasks"] == ["condition-branches-1"]
    _, train = sweep_loop(spec)
    assert "{{$.workspace_path}}" not in yaml.safe_dump(train)
    mounting = sorted(label for label, executor in executors.items() if "pvcMount" in executor)
    # The model store: the validation reads the champion before training, the gate after the evaluation,
    # then the deploy writes; never at the same time.
    assert mounting == ["exec-deploy-model", "exec-gate-model", "exec-validate-data"]


def test_compiling_twice_gives_the_same_file(tmp_path):
    """The grid's default is written into the file's header too: it must not depend on the process."""
    for name in ("a.yaml", "b.yaml"):
        compile_documents("mnist", tmp_path / name)  # each in a process of its own
    assert (tmp_path / "a.yaml").read_text() == (tmp_path / "b.yaml").read_text()


def test_workers_parameter_reaches_every_trial(compiled):
    spec, executors = compiled[False]
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["workers"]["defaultValue"] == 1 and parameters["workers"]["parameterType"] == "NUMBER_INTEGER"
    assert parameters["distributed_storage"]["defaultValue"] == ""
    assert parameters["distributed_engine"]["defaultValue"] == "auto"
    _, train = sweep_loop(spec)
    assert train["inputs"]["parameters"]["workers"] == {"componentInputParameter": "pipelinechannel--workers"}
    assert train["inputs"]["parameters"]["distributed_engine"] == {
        "componentInputParameter": "pipelinechannel--distributed_engine"}
    worker_pod = train["inputs"]["parameters"]["worker_pod"]["runtimeValue"]["constant"]
    assert worker_pod["image"] == cpu_image() and worker_pod["gpus_per_worker"] == 0
    # The TrainJob and TFJob paths talk to the API with the deployer's credentials.
    assert executors[train_executor(spec)]["secretAsVolume"][0]["secretName"] == "kfp-ml-deployer-token"


def test_every_input_has_a_description(compiled):
    spec, _ = compiled[False]
    for name, parameter in spec["root"]["inputDefinitions"]["parameters"].items():
        assert parameter.get("description"), f"pipeline parameter {name} has no description"
    for component in ("comp-download-digits", "comp-preprocess-digits", "comp-train-trial",
                      "comp-select-best-trial", "comp-search-trials", "comp-take-best-model", "comp-evaluate"):
        definitions = spec["components"][component]["inputDefinitions"]
        for kind in ("parameters", "artifacts"):
            for name, item in definitions.get(kind, {}).items():
                assert item.get("description"), f"{component} input {name} has no description"


def test_deploy_runs_only_when_accuracy_reaches_the_threshold(compiled):
    spec, executors = compiled[False]
    tasks = spec["root"]["dag"]["tasks"]
    assert "deploy-model" not in tasks
    gate = tasks["condition-5"]
    assert gate["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--gate-model-Output'] == 'deploy'")
    deploy = spec["components"]["comp-condition-5"]["dag"]["tasks"]["deploy-model"]
    assert deploy["inputs"]["artifacts"]["model"]["componentInputArtifact"] == \
        "pipelinechannel--take-best-model-best_model"
    assert executors["exec-deploy-model"]["pvcMount"][0]["mountPath"] == "/models"


def test_cpu_variant_requests_no_gpu(compiled):
    spec, executors = compiled[False]
    assert not any("accelerator" in e["container"].get("resources", {})
                   for e in spec["deploymentSpec"]["executors"].values())
    assert not any("tolerations" in e or "nodeSelector" in e for e in executors.values())


def test_gpu_variant_trains_every_trial_and_worker_on_a_tolerated_gpu_node(compiled):
    spec, executors = compiled[True]
    assert spec["pipelineInfo"]["name"] == "mnist-gpu"
    label = train_executor(spec)
    container = spec["deploymentSpec"]["executors"][label]["container"]
    assert container["image"] == gpu_image()
    assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert int(container["resources"]["accelerator"]["resourceCount"]) == 1
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert executors[label]["tolerations"] == [toleration]
    assert executors[label]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    _, train = sweep_loop(spec)
    assert train["inputs"]["parameters"]["worker_pod"]["runtimeValue"]["constant"] == {
        "image": gpu_image(), "gpus_per_worker": 1, "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [toleration]}
    others = [e for name, e in spec["deploymentSpec"]["executors"].items() if name != label]
    assert others and not any("accelerator" in e["container"].get("resources", {}) for e in others)


def test_gpu_settings_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GPU_COUNT", "2")
    monkeypatch.setenv("GPU_NODE_SELECTOR", "cloud.google.com/gke-accelerator=nvidia-l4")
    monkeypatch.setenv("GPU_TOLERATION", "")
    spec, executors = compile_mnist(tmp_path, gpu=True)
    label = train_executor(spec)
    assert int(spec["deploymentSpec"]["executors"][label]["container"]["resources"]["accelerator"][
        "resourceCount"]) == 2
    assert executors[label]["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert "tolerations" not in executors[label]
    _, train = sweep_loop(spec)
    worker_pod = train["inputs"]["parameters"]["worker_pod"]["runtimeValue"]["constant"]
    assert worker_pod["gpus_per_worker"] == 2 and worker_pod["tolerations"] == []


@pytest.mark.parametrize("name, value, message", [
    ("GPU_COUNT", "zero", "GPU_COUNT must be a whole number"),
    ("GPU_TOLERATION", "nvidia.com/gpu", "GPU_TOLERATION should look like 'key:value'"),
    ("GPU_NODE_SELECTOR", "=x", "GPU_NODE_SELECTOR should look like 'key=value'"),
])
def test_bad_gpu_settings_are_clear_errors(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=message):
        mnist.make_pipeline(gpu=True)


def test_parameters_are_checked_before_a_run():
    defaults = pipeline_defaults("mnist")
    mnist.check_parameters(defaults)
    with pytest.raises(InputError, match="validation_fraction \\+ test_fraction"):
        mnist.check_parameters({**defaults, "validation_fraction": 0.5, "test_fraction": 0.6})
    with pytest.raises(InputError, match="epochs must be at least 1"):
        mnist.check_parameters({**defaults, "epochs": 0})
    with pytest.raises(InputError, match="sweep_grid item 0 must be a pair"):
        mnist.check_parameters({**defaults, "sweep_grid": [{"learning_rate": 0.1, "hidden_layers": 1}]})
    with pytest.raises(InputError, match="workers must be between 1 and 32, got 0"):
        mnist.check_parameters({**defaults, "workers": 0})


def test_sweep_chooses_the_grid_branch_or_the_search_step_at_run_time(compiled):
    spec, executors = compiled[False]
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["sweep"]["defaultValue"] == "grid"
    for name in ("learning_rate_min", "learning_rate_max", "hidden_layers_min", "hidden_layers_max", "trials",
                 "parallelism"):
        assert parameters[name]["description"], name
    branches = spec["components"]["comp-condition-branches-1"]["dag"]["tasks"]
    assert sorted(task["triggerPolicy"]["condition"] for task in branches.values()) == [
        "!(inputs.parameter_values['pipelinechannel--sweep'] == 'grid')",
        "inputs.parameter_values['pipelinechannel--sweep'] == 'grid'"]
    searched = branch(spec, "search")["search-trials"]
    for name in ("sweep", "learning_rate_min", "learning_rate_max", "hidden_layers_min", "hidden_layers_max",
                 "trials", "parallelism", "seed", "distributed_storage"):
        assert searched["inputs"]["parameters"][name] == {"componentInputParameter": f"pipelinechannel--{name}"}
    # On a cluster it creates its Experiment with the deployer's credentials.
    label = spec["components"][searched["componentRef"]["name"]]["executorLabel"]
    assert executors[label]["secretAsVolume"][0]["secretName"] == "kfp-ml-deployer-token"
    # Whichever branch ran, its best trial's name picks the model evaluate scores.
    take = spec["root"]["dag"]["tasks"]["take-best-model"]
    assert take["inputs"]["parameters"]["best_trial"]["taskOutputParameter"]["producerTask"] == \
        "condition-branches-1"
    evaluate = spec["root"]["dag"]["tasks"]["evaluate"]
    assert evaluate["inputs"]["artifacts"]["model"]["taskOutputArtifact"] == {
        "outputArtifactKey": "best_model", "producerTask": "take-best-model"}


def test_the_gpu_variant_gives_the_search_trials_the_gpus_not_the_waiting_step(compiled):
    spec, _ = compiled[True]
    searched = branch(spec, "search")["search-trials"]
    label = spec["components"][searched["componentRef"]["name"]]["executorLabel"]
    assert "accelerator" not in spec["deploymentSpec"]["executors"][label]["container"].get("resources", {})
    assert searched["inputs"]["parameters"]["worker_pod"]["runtimeValue"]["constant"]["gpus_per_worker"] == 1


@pytest.mark.parametrize("changes, message", [
    ({"sweep": "hyperband"}, "sweep must be one of grid, random, bayesian, got 'hyperband'"),
    ({"sweep": "bayesian", "trials": 0}, "trials must be a whole number from 1 to 100, got 0"),
    ({"sweep": "random", "learning_rate_min": 0.5, "learning_rate_max": 0.1},
     "learning_rate_min 0.5 is above learning_rate_max 0.1"),
    ({"sweep": "bayesian", "workers": 2}, "workers must be 1 with sweep=bayesian, got 2: a search trains each "
                                          "trial on one worker (sweep=grid trains on several)"),
])
def test_search_parameters_are_checked_before_a_run(changes, message):
    defaults = pipeline_defaults("mnist")
    mnist.check_parameters({**defaults, "sweep": "bayesian"})
    with pytest.raises(InputError) as failure:
        mnist.check_parameters({**defaults, **changes})
    assert str(failure.value) == message


def test_a_search_does_not_check_the_grid_it_does_not_run():
    defaults = pipeline_defaults("mnist")
    mnist.check_parameters({**defaults, "sweep": "random", "sweep_grid": []})
    with pytest.raises(InputError, match="sweep_grid must be a non-empty list"):
        mnist.check_parameters({**defaults, "sweep_grid": []})
