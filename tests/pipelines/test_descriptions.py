"""Every input and output of every compiled package carries a description (what
the Pipelines UI shows beside the name), taken from the Google-style `Args:` and
`Returns:` sections of the component's or pipeline's docstring.

kfp 2.17 reads inputs from `Args:` and outputs only from `Returns:` lines of the
form `name: text` (the return value is `Output`; `Output[...]` artifacts belong
there too, not under `Args:`)."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGES = sorted((REPO / "compiled").glob("*.yaml")) + sorted((REPO / "compiled" / "components").glob("*.yaml"))


def undescribed(document: dict) -> list[str]:
    """`component: input|output name` for every one without a description. The
    inner DAGs of `dsl.If` branches are left out: their inputs are channels the
    compiler makes up (`pipelinechannel--…`), described by no docstring."""
    interfaces = {"pipeline (root)": document["root"]}
    interfaces.update({name: spec for name, spec in document["components"].items() if "executorLabel" in spec})
    missing = []
    for owner, spec in interfaces.items():
        for direction in ("inputDefinitions", "outputDefinitions"):
            for kind in ("parameters", "artifacts"):
                for name, definition in spec.get(direction, {}).get(kind, {}).items():
                    if not definition.get("description", "").strip():
                        missing.append(f"{owner}: {direction.removesuffix('Definitions')} {name}")
    return missing


def test_there_are_packages_to_check():
    names = {path.relative_to(REPO / "compiled").as_posix() for path in PACKAGES}
    assert {"sp500.yaml", "components/deploy-model.yaml"} <= names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.relative_to(REPO / "compiled").as_posix())
def test_every_input_and_output_is_described(package):
    document = next(yaml.safe_load_all(package.read_text()))
    missing = undescribed(document)
    assert not missing, f"{package.name}: {len(missing)} without a description:\n  " + "\n  ".join(missing)


def test_the_check_catches_a_missing_description():
    document = {"root": {"inputDefinitions": {"parameters": {"a": {"description": "what a is"}, "b": {}}}},
                "components": {"comp-x": {"executorLabel": "exec-x",
                                          "outputDefinitions": {"artifacts": {"model": {}}}},
                               "comp-condition-1": {"inputDefinitions": {
                                   "parameters": {"pipelinechannel--a": {}}}}}}
    assert undescribed(document) == ["pipeline (root): input b", "comp-x: output model"]
