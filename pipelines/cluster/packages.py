"""Compiled packages: where they are, what they declare, and their parameters."""


from pathlib import Path

import yaml

from components.common.errors import InputError
from pipelines import registry

DEFAULT_COMPILED_DIR = Path("compiled")  # relative to the working directory, as `make compile` writes it


def package_path(pipeline: str, gpu: bool = False, compiled_dir: Path = DEFAULT_COMPILED_DIR) -> Path:
    """<compiled_dir>/<pipeline>.yaml, or the -gpu variant; an error if it was never compiled."""
    name = pipeline if pipeline.endswith("-gpu") or not gpu else f"{pipeline}-gpu"
    path = Path(compiled_dir) / f"{name}.yaml"
    if not path.is_file():
        if gpu and not _has_gpu_variant(pipeline):
            raise InputError(f"{pipeline} has no GPU variant (it trains on CPUs): leave out GPU=1 (--gpu)")
        raise InputError(f"{shown_path(path)} not found: run `make compile` first "
                         f"(or check the pipeline name '{pipeline}')")
    return path


def _has_gpu_variant(pipeline: str) -> bool:
    spec = registry.find(pipeline)
    return spec is None or spec.has_gpu_variant


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


def package_images(package: Path) -> set[str]:
    """The container images the package's steps run in."""
    executors = pipeline_spec(package).get("deploymentSpec", {}).get("executors", {})
    return {executor["container"]["image"] for executor in executors.values() if "container" in executor}


def check_images(package: Path) -> None:
    """Refuse a package compiled for other images than the configured IMAGE / IMAGE_GPU.

    An uploaded pipeline version cannot be changed, and a run of a package whose
    image was never pushed fails at its first step: both are stopped here,
    before anything is sent to the cluster.
    """
    from components.common.images import cpu_image, gpu_image

    configured = {cpu_image(), gpu_image()}
    foreign = sorted(package_images(package) - configured)
    if foreign:
        raise InputError(f"{shown_path(package)} runs in {foreign[0]}, not in the configured image "
                         f"{cpu_image()}: run `make compile` (or `make image publish` to build and push it first), "
                         "with IMAGE set in local.mk")
    check_published(package)


def check_published(package: Path) -> None:
    """Refuse a package whose image tag its registry says it does not have (a registry that
    cannot be asked from here gets one warning line: the cluster may still reach it)."""
    from pipelines.cluster.image_registry import check_image

    for image in sorted(package_images(package)):
        answer = check_image(image)
        if answer.found is False:
            raise InputError(f"{shown_path(package)} runs in {image}, which its registry does not have "
                             f"({answer.detail}): run `make image publish IMAGE={image.rsplit(':', 1)[0]}` first")
        if answer.found is None:
            print(f"warning: could not check that {image} is published: {answer.detail}", flush=True)
