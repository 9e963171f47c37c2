"""The registry of pipeline specs: light to read, each spec's resources matching its compiled
steps, generic code that names no pipeline, and a new pipeline known by its spec alone."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO

from components.common.errors import InputError
from components.release.config import ReleaseConfig
from components.serving.client import Answer, Request, Signature, TensorSpec
from components.settings.resources import SHARED, StepResources
from pipelines import registry
from pipelines.cli import predict
from pipelines.spec import DataRequests, PipelineSpec, PredictSpec


def test_reading_the_registry_imports_no_kfp_tensorflow_or_pandas():
    probe = ("import sys\nfrom pipelines import registry\nregistry.variants()\n"
             "print(' '.join(m for m in ('kfp', 'tensorflow', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                          timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.stdout.split() == []


def test_names_are_unique_and_lookups_keep_their_messages():
    assert len(set(registry.names())) == len(registry.PIPELINES)
    assert registry.get("sp500-gpu") is registry.get("sp500")
    assert registry.find("nasdaq") is None
    with pytest.raises(InputError, match="PIPELINE 'nasdaq' is unknown: choose one of sp500, mnist, crypto"):
        registry.get("nasdaq")


def compiled_rows(spec: PipelineSpec, gpu: bool) -> dict[str, StepResources]:
    """Each step (component name) of the compiled variant in compiled/, with the resources it asks for."""
    document = next(yaml.safe_load_all((REPO / "compiled" / f"{registry.compiled_name(spec, gpu)}.yaml").read_text()))
    return {name.removeprefix("exec-"): StepResources(
        sizes["resourceCpuRequest"], sizes["resourceCpuLimit"], sizes["resourceMemoryRequest"],
        sizes["resourceMemoryLimit"])
        for name, executor in document["deploymentSpec"]["executors"].items()
        for sizes in [executor["container"]["resources"]]}


@pytest.mark.parametrize("spec", registry.PIPELINES, ids=registry.names())
def test_a_specs_resources_are_its_compiled_steps_resources_and_name_no_other_step(spec):
    steps: set[str] = set()
    for gpu in (False, True) if spec.has_gpu_variant else (False,):
        for step, compiled in compiled_rows(spec, gpu).items():
            assert compiled == (spec.resources.get(step) or SHARED[step]), f"{spec.name}: {step}"
            steps.add(step)
    assert set(spec.resources) <= steps, f"{spec.name}: rows for steps it does not have"


# --------------------------------------------------------------------------- generic code names no pipeline

GENERIC = [path for pattern in ("components/**/*.py", "pipelines/cli/*.py", "pipelines/local/*.py",
                                "pipelines/cluster/*.py", "pipelines/*.py")
           for path in sorted(REPO.glob(pattern)) if path != REPO / "pipelines" / "registry.py"]


def code_words(source: str) -> list[tuple[int, str]]:
    """(line, text) of every name and string of the code: docstrings and comments left out."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            words.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            words.append((node.lineno, node.attr))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            words.append((node.lineno, node.name))
        elif isinstance(node, ast.arg):
            words.append((node.lineno, node.arg))
        elif isinstance(node, ast.ImportFrom):
            words.append((node.lineno, node.module or ""))
        elif isinstance(node, ast.alias):
            words.append((node.lineno, f"{node.name} {node.asname or ''}"))
    return words


def pipeline_names_in(source: str) -> list[str]:
    named = re.compile(rf"(?<![a-z0-9])({'|'.join(registry.names())})(?![a-z0-9])", re.IGNORECASE)
    return [f"line {line}: {text!r}" for line, text in code_words(source) if named.search(text)]


def test_the_check_finds_a_pipeline_named_in_code_but_not_in_docstrings_or_comments():
    assert pipeline_names_in('"""Example: `--model sp500`."""\n# mnist\nx = 1\n') == []
    assert pipeline_names_in('CLASS_NAMES = {"sp500": {}}\n') == ["line 1: 'sp500'"]
    assert pipeline_names_in("from pipelines.crypto.definitions import FEATURES\n") != []
    assert pipeline_names_in("def mnist_request(): pass\n") != []
    assert pipeline_names_in('help = f"{x}: mnist only"\n') != []


@pytest.mark.parametrize("path", GENERIC, ids=[str(path.relative_to(REPO)) for path in GENERIC])
def test_generic_code_names_no_pipeline(path: Path):
    assert pipeline_names_in(path.read_text(encoding="utf-8")) == [], (
        f"{path.relative_to(REPO)} names a pipeline: what is specific to one belongs in its spec")


# --------------------------------------------------------------------------- a fourth pipeline

def tide_request(signature: Signature, args) -> Request:
    name, _ = signature.single_input()
    return Request({name: np.full((1, 2), 1.0 if args.tide == "high" else 0.0, np.float32)}, f"tide {args.tide}")


FOURTH = PipelineSpec(
    name="tides", make_pipeline=lambda gpu=False: None, check_parameters=lambda params: None,
    gate_task="evaluate", resources={},
    release=ReleaseConfig(gate_metric="mae", baseline_metric="last_value_mae", model_name="fourth", threshold=0.0),
    predict=PredictSpec(
        transport="rest", class_names={1: "high water"},
        requests=DataRequests(options={"--tide": {"choices": ("high", "low")}}, build=tide_request)))


def test_a_new_pipeline_is_asked_by_predict_through_its_spec_alone(monkeypatch):
    monkeypatch.setattr(registry, "PIPELINES", [*registry.PIPELINES, FOURTH])
    signature = Signature({"levels": TensorSpec("DT_FLOAT", [-1, 2])},
                          {"predicted_class": TensorSpec("DT_INT64", [-1])})
    args = predict.parse_args(["--model", "tides", "--tide", "high"])
    assert (args.transport, args.port) == ("rest", 8501)
    request = predict.build_request(args, FOURTH, signature)
    assert request.about == "tide high" and request.inputs["levels"].tolist() == [[1.0, 1.0]]
    lines = predict.describe_answer(FOURTH, "tides", Answer(3, {"predicted_class": np.array([1])}), None, "REST")
    assert "predicted class: 1 (high water)" in lines
    with pytest.raises(InputError, match="--tide applies to --model tides only"):
        predict.build_request(predict.parse_args(["--model", "sp500", "--tide", "low"]), registry.get("sp500"),
                              signature)
    with pytest.raises(SystemExit):  # one kind of request at a time
        predict.parse_args(["--model", "tides", "--tide", "high", "--random"])
