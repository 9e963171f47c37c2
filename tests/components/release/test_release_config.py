"""The release parameters are declared once (components.release.config) and every pipeline
shows each of them, typed, with its default and that one description: in its function's
signature and docstring, and in its compiled package."""

import dataclasses
import inspect
from pathlib import Path

import docstring_parser
import pytest
import yaml
from conftest import REPO
from kfp import compiler, dsl

from components.common.errors import InputError
from components.common.images import cpu_component
from components.release.config import (
    LIGHTGBM,
    TENSORFLOW,
    ReleaseConfig,
    check_release_values,
    release_inputs,
    release_parameters,
)
from pipelines.crypto.spec import SPEC as crypto
from pipelines.mnist.spec import SPEC as mnist
from pipelines.sp500.spec import SPEC as sp500

MODULES = {"sp500": sp500, "mnist": mnist, "crypto": crypto}
PACKAGES = sorted((REPO / "compiled").glob("*.yaml"))
KFP_TYPES = {str: "STRING", float: "NUMBER_DOUBLE", int: "NUMBER_INTEGER", bool: "BOOLEAN"}
EVERY_PARAMETER = {f.name for f in dataclasses.fields(ReleaseConfig) if "description" in f.metadata}
# What a pipeline of each model format leaves out: the one setting its servers cannot use.
LEFT_OUT = {TENSORFLOW: {"kserve_deployment_mode"}, LIGHTGBM: {"use_kserve"}}


def release_of(package: Path) -> ReleaseConfig:
    return MODULES[package.stem.removesuffix("-gpu")].release


def test_every_compiled_pipeline_is_checked():
    assert {p.stem.removesuffix("-gpu") for p in PACKAGES} == set(MODULES)
    assert EVERY_PARAMETER >= {"threshold", "tolerance", "require_beat_baseline", "model_name", "model_base_path",
                               "model_store_pvc", "serving_namespace", "canary_percent"}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.stem)
def test_a_compiled_pipeline_shows_every_release_parameter_as_declared(package):
    release = release_of(package)
    declared = next(yaml.safe_load_all(package.read_text()))["root"]["inputDefinitions"]["parameters"]
    assert EVERY_PARAMETER - declared.keys() == LEFT_OUT[release.model_format]
    for parameter in release.parameters():
        shown = declared[parameter.name]
        assert shown["parameterType"] == KFP_TYPES[parameter.type], parameter.name
        assert shown.get("defaultValue") == parameter.default, parameter.name
        assert shown["description"] == parameter.description, parameter.name


@pytest.mark.parametrize("name", MODULES)
def test_a_pipeline_function_takes_every_release_parameter_as_declared(name):
    release = MODULES[name].release
    function = MODULES[name].make_pipeline().pipeline_func
    signature = inspect.signature(function)
    described = {p.arg_name: p.description for p in docstring_parser.parse(inspect.getdoc(function)).params}
    assert "release" not in signature.parameters and "release" not in described
    assert EVERY_PARAMETER - signature.parameters.keys() == LEFT_OUT[release.model_format]
    for parameter in release.parameters():
        assert signature.parameters[parameter.name].default == parameter.default
        assert signature.parameters[parameter.name].annotation is parameter.type
        assert described[parameter.name] == parameter.description


def test_each_pipeline_keeps_its_own_defaults_and_gate():
    assert (sp500.release.model_name, sp500.release.threshold, sp500.release.gate_metric) == ("sp500", 0.7, "accuracy")
    assert (mnist.release.model_name, mnist.release.threshold) == ("mnist", 0.7)
    assert (crypto.release.model_name, crypto.release.threshold, crypto.release.model_format) == \
        ("crypto", 0.01, LIGHTGBM)
    threshold = {p.name: p.description for p in crypto.release.parameters()}["threshold"]
    assert "the least weighted correlation on the held-out test data" in threshold
    with pytest.raises(ValueError, match="model_format 'onnx'"):
        dataclasses.replace(crypto.release, model_format="onnx")


RELEASE = ReleaseConfig(gate_metric="accuracy", baseline_metric="baseline", model_name="toy", threshold=0.5)


def toy(epochs: int = 3, *, release: ReleaseConfig):
    """A toy pipeline.

    Args:
        epochs: Passes.
        release: Where the release parameters go.
    """
    return epochs, release


def test_the_decorated_function_hands_the_parameters_on_as_one_config():
    function = release_parameters(RELEASE)(toy)
    assert list(inspect.signature(function).parameters)[:3] == ["epochs", "threshold", "model_name"]
    epochs, release = function(5, canary_percent=20)
    assert epochs == 5
    assert release == dataclasses.replace(RELEASE, canary_percent=20)
    described = docstring_parser.parse(inspect.getdoc(function))
    assert [p.arg_name for p in described.params][:3] == ["epochs", "threshold", "model_name"]
    assert described.short_description == "A toy pipeline."


def test_kfp_compiles_the_parameters_and_the_body_gets_their_channels(tmp_path):
    @cpu_component
    def score(threshold: float, name: str) -> float:
        return threshold

    @dsl.pipeline(name="toy")
    @release_parameters(RELEASE)
    def toy_pipeline(epochs: int = 3, *, release: ReleaseConfig):
        """A toy pipeline.

        Args:
            epochs: Passes.
            release: Where the release parameters go.
        """
        assert release.gate_metric == "accuracy"
        score(threshold=release.threshold, name=release.model_name)

    compiler.Compiler().compile(toy_pipeline, str(tmp_path / "toy.yaml"))
    spec = next(yaml.safe_load_all((tmp_path / "toy.yaml").read_text()))
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert set(declared) == {"epochs"} | {p.name for p in RELEASE.parameters()}
    assert declared["epochs"]["description"] == "Passes."
    assert declared["model_name"]["defaultValue"] == "toy"
    inputs = spec["root"]["dag"]["tasks"]["score"]["inputs"]["parameters"]
    assert inputs["threshold"] == {"componentInputParameter": "threshold"}
    assert inputs["name"] == {"componentInputParameter": "model_name"}


def no_release(epochs: int = 3):
    """No release.

    Args:
        epochs: Passes.
    """


def declares_threshold(threshold: float = 0.5, *, release: ReleaseConfig):
    """Its own threshold.

    Args:
        threshold: Mine.
        release: The rest.
    """


def describes_threshold(*, release: ReleaseConfig):
    """A second description.

    Args:
        release: The rest.
        threshold: Described a second time.
    """


def release_undescribed(epochs: int = 3, *, release: ReleaseConfig):
    """No place for the release parameters.

    Args:
        epochs: Passes.
    """


@pytest.mark.parametrize("function, message", [
    (no_release, "takes no `release` argument"),
    (declares_threshold, "declares release parameters itself: threshold"),
    (describes_threshold, "describes release parameters itself (threshold)"),
    (release_undescribed, "no `Args:` entry for `release`"),
])
def test_a_second_declaration_or_a_missing_place_is_refused(function, message):
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        release_parameters(RELEASE)(function)


# --------------------------------------------------------------------------- the steps' release parameters

@pytest.mark.parametrize("values, message", [
    ({"threshold": 1.5}, "threshold must be between 0 and 1, got 1.5"),
    ({"tolerance": -0.1}, "tolerance must be between 0 and 1, got -0.1"),
    ({"confidence": 0.0}, "confidence must be strictly between 0 and 1, got 0"),
    ({"confidence": 1.0}, "confidence must be strictly between 0 and 1, got 1"),
    ({"max_drift": -0.01}, "max_drift must be at least 0, got -0.01"),
    ({"canary_percent": 0}, "canary_percent must be between 1 and 100"),
])
def test_each_setting_has_one_check(values, message):
    with pytest.raises(InputError, match=message):
        check_release_values(values)


def test_values_inside_the_ranges_and_other_names_pass():
    check_release_values({"threshold": 0.0, "tolerance": 1.0, "confidence": 0.999, "max_drift": 0.0,
                          "canary_percent": 100, "epochs": -5, "model_name": "anything"})


def test_the_new_settings_are_declared_with_their_defaults():
    assert (RELEASE.confidence, RELEASE.max_drift, RELEASE.deploy_if_champion_incomparable) == (0.95, 0.25, False)


def test_the_gate_and_deploy_steps_describe_their_release_parameters_from_the_declaration():
    from components.release.deploy import deploy_model
    from components.release.gate_step import gate_model

    declared = {p.name: p.description for p in
                dataclasses.replace(RELEASE, gate_metric="the gate metric").parameters()}
    for step, names in ((gate_model, {"threshold", "tolerance", "require_beat_baseline", "confidence", "max_drift",
                                      "deploy_if_champion_incomparable", "model_name", "model_base_path",
                                      "serving_namespace"}),
                        (deploy_model, {"model_name", "model_base_path", "model_store_pvc", "serving_namespace",
                                        "use_kserve", "canary_percent"})):
        inputs = step.component_spec.inputs
        for name in names:
            assert inputs[name].description == declared[name], (step.name, name)
    assert "kserve_deployment_mode" in deploy_model.component_spec.inputs


def wrong_default(epochs: int, tolerance: float = 0.1):
    """A step.

    Args:
        epochs: Passes.
    """


def wrong_type(confidence: int):
    """A step.

    Args:
        confidence: A level.
    """


def describes_its_own(confidence: float):
    """A step.

    Args:
        confidence: My own words.
    """


def no_args_section(confidence: float):
    """A step with no arguments described."""


@pytest.mark.parametrize("function, message", [
    (wrong_default, "wrong_default(tolerance=0.1): components.release.config declares its default as 0.0"),
    (wrong_type, "wrong_type(confidence: <class 'int'>): components.release.config declares it float"),
    (describes_its_own, "describes_its_own describes release parameters itself (confidence)"),
    (no_args_section, "no `Args:` section"),
])
def test_a_step_that_disagrees_with_the_declaration_is_refused_at_import(function, message):
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        release_inputs(function)


def test_a_step_gets_the_declared_description_in_its_args():
    def step(epochs: int, confidence: float = 0.95):
        """A step.

        Args:
            epochs: Passes.

        Returns:
            Output: Nothing.
        """
    described = docstring_parser.parse(release_inputs(step).__doc__)
    assert {p.arg_name: p.description for p in described.params} == {
        "epochs": "Passes.", "confidence": RELEASE.parameters()[[p.name for p in RELEASE.parameters()]
                                                                 .index("confidence")].description}
    assert described.returns is not None
