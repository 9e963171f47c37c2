"""Compiled packages: where they are, what they declare, and their parameters."""


from pathlib import Path

import yaml

from components.errors import InputError

DEFAULT_COMPILED_DIR = Path("compiled")  # relative to the working directory, as `make compile` writes it


def package_path(pipeline: str, gpu: bool = False, compiled_dir: Path = DEFAULT_COMPILED_DIR) -> Path:
    """<compiled_dir>/<pipeline>.yaml, or the -gpu variant; an error if it was never compiled."""
    name = pipeline if pipeline.endswith("-gpu") or not gpu else f"{pipeline}-gpu"
    path = Path(compiled_dir) / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"{shown_path(path)} not found: run `make compile` first "
                         f"(or check the pipeline name '{pipeline}')")
    return path


def shown_path(path: Path) -> Path:
    """`path` as the user would type it: relative to the working directory when inside it."""
    path = Path(path).absolute()
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def pipeline_spec(package: Path) -> dict:
    documents = list(yaml.safe_load_all(package.read_text()))
    if not documents or "root" not in documents[0]:
        raise InputError(f"{package} is not a compiled KFP pipeline (no root)")
    return documents[0]


def pipeline_name(package: Path) -> str:
    return pipeline_spec(package)["pipelineInfo"]["name"]


def declared_parameters(package: Path) -> dict[str, dict]:
    """The pipeline's parameters as the compiled root declares them (type, default)."""
    return pipeline_spec(package)["root"].get("inputDefinitions", {}).get("parameters", {})


def convert_parameters(package: Path, params: dict[str, object]) -> dict[str, object]:
    """Parameters given as text (`key=value`) in the types the package declares, checked."""
    from pipelines import parameters

    return parameters.resolve(package.stem, declared_parameters(package), params)


