"""The compiled crypto pipeline: Kaggle secret as env, bulk data on the workspace, the gate, resources."""

import subprocess
import sys

import pytest
import yaml
from conftest import pipeline_defaults
from kfp import compiler

from components.common.errors import InputError
from components.settings.resources import resources_for
from pipelines import registry
from pipelines.crypto import pipeline as crypto

STEPS = ["download-data", "load-data", "build-features", "train-model", "evaluate"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = tmp_path_factory.mktemp("crypto") / "crypto.yaml"
    compiler.Compiler().compile(crypto.make_pipeline(), str(path))
    text = path.read_text()
    spec, platform = yaml.safe_load_all(text)
    return text, spec, platform["platforms"]["kubernetes"]


def test_kaggle_credentials_come_only_from_the_named_secret_as_env(compiled):
    text, spec, kubernetes = compiled
    secret = kubernetes["deploymentSpec"]["executors"]["exec-download-data"]["secretAsEnv"]
    assert secret == [{
        "keyToEnv": [{"envVar": "KAGGLE_USERNAME", "secretKey": "username"},
                     {"envVar": "KAGGLE_KEY", "secretKey": "key"}],
        "optional": True,  # runs on generated data or a URI need no Secret
        "secretNameParameter": {"componentInputParameter": "kaggle_secret"}}]
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["kaggle_secret"]["defaultValue"] == "kaggle-credentials"
    # Nothing else in the package mentions the variables: no credential or env default was frozen in.
    assert text.count("KAGGLE_KEY") == 1 and text.count("KAGGLE_USERNAME") == 1
    assert not any("env" in e["container"] for e in spec["deploymentSpec"]["executors"].values())


def test_bulk_data_moves_through_the_workspace_as_paths(compiled):
    _, spec, kubernetes = compiled
    assert kubernetes["pipelineConfig"]["workspace"]["size"] == "20Gi"
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["download-data"]["inputs"]["parameters"]["workspace"] == {
        "runtimeValue": {"constant": "{{$.workspace_path}}"}}
    for consumer, parameter, producer in [("load-data", "raw_dir", "download-data"),
                                          ("build-features", "loaded_dir", "load-data"),
                                          ("train-model", "features_path", "build-features"),
                                          ("evaluate", "features_path", "build-features")]:
        assert tasks[consumer]["inputs"]["parameters"][parameter]["taskOutputParameter"]["producerTask"] == producer
    # The bulk tables are never artifacts: the model, metrics and reports are, and one Dataset, the
    # test rows evaluate scored, which the shared gate step reads in every pipeline the same way.
    artifacts = {(name, output): artifact["artifactType"]["schemaTitle"]
                 for name in STEPS
                 for output, artifact in spec["components"][f"comp-{name}"].get("outputDefinitions", {})
                 .get("artifacts", {}).items()}
    assert set(artifacts.values()) == {"system.Model", "system.Metrics", "system.HTML", "system.Dataset"}
    assert [where for where, kind in artifacts.items() if kind == "system.Dataset"] == [("evaluate", "rows")]


def test_deploy_runs_only_inside_the_weighted_correlation_gate(compiled):
    _, spec, kubernetes = compiled
    tasks = spec["root"]["dag"]["tasks"]
    assert "deploy-model" not in tasks
    gate = tasks["condition-1"]
    assert gate["componentRef"]["name"] == "comp-condition-1"
    assert gate["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--gate-model-Output'] == 'deploy'")
    deploy = spec["components"]["comp-condition-1"]["dag"]["tasks"]["deploy-model"]
    assert deploy["inputs"]["parameters"]["model_format"] == {"runtimeValue": {"constant": "lightgbm"}}
    assert deploy["inputs"]["artifacts"]["model"] == {"componentInputArtifact": "pipelinechannel--train-model-model"}
    assert kubernetes["deploymentSpec"]["executors"]["exec-deploy-model"]["pvcMount"][0]["mountPath"] == "/models"
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["threshold"]["defaultValue"] == 0.01


def test_steps_are_uncached_sized_and_not_retried_by_kfp(compiled):
    _, spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    for name in STEPS:
        assert tasks[name]["cachingOptions"] == {}, f"{name} reads or writes the per-run workspace"
        resources = spec["deploymentSpec"]["executors"][f"exec-{name}"]["container"]["resources"]
        row = resources_for(registry.get("crypto").resources, name, "crypto")
        assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"],
                resources["resourceMemoryLimit"]) == (row.cpu, row.memory, row.memory_limit)
    # The download retries its own transient errors; a KFP retry would repeat permanent ones too.
    assert "retryPolicy" not in tasks["download-data"]
    assert "retryPolicy" not in tasks["train-model"]


def test_the_pipeline_defaults_are_the_training_defaults_and_the_source_dates(compiled):
    from pipelines.crypto import models  # here: another test imports this module and counts what it loads

    _, spec, _ = compiled
    defaults = {k: v.get("defaultValue") for k, v in spec["root"]["inputDefinitions"]["parameters"].items()}
    assert {k: defaults[k] for k in ("n_estimators", "learning_rate", "early_stopping_rounds", "num_leaves",
                                     "seed", "start_date", "valid_start", "source")} == {
        "n_estimators": models.N_ESTIMATORS, "learning_rate": models.LEARNING_RATE,
        "early_stopping_rounds": models.EARLY_STOPPING_ROUNDS, "num_leaves": 31,
        "seed": 2022, "start_date": "2020-01-01", "valid_start": "2021-05-01", "source": "generated"}


def test_the_generator_and_lightgbm_have_their_own_seeds(compiled):
    _, spec, _ = compiled
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["download-data"]["inputs"]["parameters"]["data_seed"] == {"componentInputParameter": "data_seed"}
    assert tasks["train-model"]["inputs"]["parameters"]["seed"] == {"componentInputParameter": "seed"}
    assert "seed" not in tasks["download-data"]["inputs"]["parameters"]
    assert spec["root"]["inputDefinitions"]["parameters"]["data_seed"]["defaultValue"] == 2022


def test_there_is_no_gpu_variant():
    assert not registry.get("crypto").has_gpu_variant
    with pytest.raises(InputError, match="no GPU variant"):
        crypto.make_pipeline(gpu=True)


@pytest.mark.parametrize("change, message", [
    ({"valid_start": "May"}, "valid_start 'May' is not a date"),
    ({"generated_end": "2021-04-01"}, "generated_end 2021-04-01 is not after"),
    ({"start_date": "2021-05-01"}, "start_date 2021-05-01 is not before valid_start 2021-05-01"),
    ({"valid_start": "2021-06-01"}, "valid_start 2021-06-01 must lie strictly between generated_start 2021-04-11 "
                                    "and generated_end 2021-05-11"),
    ({"valid_start": "2021-04-11"}, "valid_start 2021-04-11 must lie strictly between"),
    ({"test_fraction": 1.0}, "test_fraction must lie strictly between 0 and 1"),
    ({"learning_rate": -0.1}, "learning_rate must be positive"),
    ({"num_leaves": 1}, "num_leaves at least 2"),
    ({"source": ""}, "source is empty"),
])
def test_parameters_are_checked_before_a_run(change, message):
    crypto.check_parameters(pipeline_defaults("crypto"))
    with pytest.raises(InputError, match=message):
        crypto.check_parameters({**pipeline_defaults("crypto"), **change})


def test_the_generated_range_binds_only_generated_data():
    crypto.check_parameters({**pipeline_defaults("crypto"), "source": "gs://bucket/crypto",
                             "valid_start": "2021-06-01", "generated_end": "2021-04-01"})


def test_the_parameter_check_loads_no_data_libraries():
    code = ("import sys; from tests.conftest import pipeline_defaults; "
            "from pipelines.crypto import pipeline as crypto; "
            "defaults = pipeline_defaults('crypto'); "
            "before = set(sys.modules); crypto.check_parameters(defaults); "
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
            "('numpy', 'pandas', 'pyarrow', 'pipelines')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout == "['pipelines.crypto.definitions']\n"


def test_every_input_of_the_pipeline_and_its_steps_has_a_description(compiled):
    _, spec, _ = compiled
    definitions = {"pipeline": spec["root"]["inputDefinitions"]}
    definitions.update({name: spec["components"][f"comp-{name}"]["inputDefinitions"] for name in STEPS})
    for owner, inputs in definitions.items():
        for kind in ("parameters", "artifacts"):
            for name, declared in inputs.get(kind, {}).items():
                assert declared.get("description", "").strip(), f"{owner}: input {name} has no description"
