"""Every pipeline the command line knows, listed explicitly: one spec per pipeline package.

Reading it imports no kfp, TensorFlow or pandas (pipelines.spec), so every verb may.
"""

from components.common.errors import InputError
from pipelines.crypto import spec as crypto
from pipelines.mnist import spec as mnist
from pipelines.sp500 import spec as sp500
from pipelines.spec import PipelineSpec

PIPELINES: list[PipelineSpec] = [sp500.SPEC, mnist.SPEC, crypto.SPEC]


def names() -> list[str]:
    return [spec.name for spec in PIPELINES]


def find(name: str) -> PipelineSpec | None:
    """The pipeline called `name` (a -gpu suffix names its GPU variant's pipeline), if registered."""
    return next((spec for spec in PIPELINES if spec.name == name.removesuffix("-gpu")), None)


def get(name: str) -> PipelineSpec:
    """The pipeline called `name` (a -gpu suffix names its GPU variant's pipeline)."""
    spec = find(name)
    if spec is None:
        raise InputError(f"PIPELINE '{name}' is unknown: choose one of {', '.join(names())}")
    return spec


def variants() -> list[tuple[PipelineSpec, bool]]:
    """Every (pipeline, gpu) pair that is compiled into compiled/."""
    return [(spec, gpu) for spec in PIPELINES for gpu in ((False, True) if spec.has_gpu_variant else (False,))]


def compiled_name(spec: PipelineSpec, gpu: bool) -> str:
    return f"{spec.name}-gpu" if gpu else spec.name
