"""Which container image every step runs in, and the decorators that say so.

The image is chosen when the pipeline is compiled: `IMAGE` and `IMAGE_GPU`
(repositories without a tag, as the Makefile passes them) and the package
version as the tag. Nothing is pip-installed when a step starts: the image
already holds this package and kfp, so `install_kfp_package=False`.
"""

import os
from importlib.metadata import version
from typing import Callable

from kfp import dsl

VERSION = version("kfp-ml-pipelines")
DEFAULT_REPOSITORY = "ghcr.io/kfp-ml-pipelines/kfp-ml-pipelines"


def cpu_image() -> str:
    return f"{os.environ.get('IMAGE') or DEFAULT_REPOSITORY}:{VERSION}"


def gpu_image() -> str:
    return f"{os.environ.get('IMAGE_GPU') or DEFAULT_REPOSITORY + '-gpu'}:{VERSION}"


def cpu_component(func: Callable) -> Callable:
    """A KFP component that runs `func` in the project's CPU image."""
    return dsl.component(func, base_image=cpu_image(), install_kfp_package=False)


def gpu_component(func: Callable) -> Callable:
    """The same kind of component in the GPU image (CUDA-enabled TensorFlow)."""
    return dsl.component(func, base_image=gpu_image(), install_kfp_package=False)
