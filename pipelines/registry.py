"""Every pipeline the command line knows, listed explicitly, and what its run summary reports."""

from dataclasses import dataclass
from typing import Callable

from components.common.errors import InputError
from pipelines.crypto import pipeline as crypto
from pipelines.mnist import pipeline as mnist
from pipelines.sp500 import pipeline as sp500


@dataclass(frozen=True)
class PipelineEntry:
    name: str
    make_pipeline: Callable[..., Callable]  # make_pipeline(gpu: bool) -> the @dsl.pipeline function
    check_parameters: Callable[[dict], None]  # raises InputError on parameters that can never work
    gate_task: str  # the evaluate task whose single output is the gate metric
    gate_metric: str  # what that output is, for the summary
    baseline_metric: str  # key in the evaluate task's Metrics artifact
    has_gpu_variant: bool = True


PIPELINES: dict[str, PipelineEntry] = {
    entry.name: entry for entry in [
        PipelineEntry("sp500", sp500.make_pipeline, sp500.check_parameters,
                      "evaluate", "accuracy", "always_up_accuracy"),
        PipelineEntry("mnist", mnist.make_pipeline, mnist.check_parameters,
                      "evaluate", "accuracy", "majority_class_accuracy"),
        PipelineEntry("crypto", crypto.make_pipeline, crypto.check_parameters,
                      "evaluate", "weighted_correlation", "weighted_correlation_reversal_baseline",
                      has_gpu_variant=False),
    ]
}


def get(name: str) -> PipelineEntry:
    """The pipeline called `name` (a -gpu suffix names its GPU variant's pipeline)."""
    entry = PIPELINES.get(name.removesuffix("-gpu"))
    if entry is None:
        raise InputError(f"PIPELINE '{name}' is unknown: choose one of {', '.join(PIPELINES)}")
    return entry


def variants() -> list[tuple[PipelineEntry, bool]]:
    """Every (pipeline, gpu) pair that is compiled into compiled/."""
    return [(entry, gpu) for entry in PIPELINES.values()
            for gpu in ((False, True) if entry.has_gpu_variant else (False,))]


def compiled_name(entry: PipelineEntry, gpu: bool) -> str:
    return f"{entry.name}-gpu" if gpu else entry.name
