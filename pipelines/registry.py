"""Every pipeline the command line knows, and what its run summary reports."""

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class PipelineEntry:
    name: str
    module: str  # pipelines.<name>, which defines make_pipeline(gpu: bool)
    gate_task: str  # the evaluate task whose single output is the gate metric
    gate_metric: str  # what that output is, for the summary
    baseline_metric: str  # key in the evaluate task's Metrics artifact
    has_gpu_variant: bool = True

    def make_pipeline(self, gpu: bool = False) -> Callable:
        return importlib.import_module(self.module).make_pipeline(gpu)


PIPELINES: dict[str, PipelineEntry] = {
    entry.name: entry for entry in [
        PipelineEntry("sp500", "pipelines.sp500", "evaluate", "accuracy", "always_up_accuracy"),
        PipelineEntry("mnist", "pipelines.mnist", "evaluate", "accuracy", "majority_class_accuracy"),
        PipelineEntry("crypto", "pipelines.crypto", "evaluate", "weighted_correlation",
                      "weighted_correlation_reversal_baseline", has_gpu_variant=False),
    ]
}


def get(name: str) -> PipelineEntry:
    from components.errors import InputError

    if name not in PIPELINES:
        raise InputError(f"PIPELINE '{name}' is unknown: choose one of {', '.join(PIPELINES)}")
    return PIPELINES[name]


def variants() -> list[tuple[PipelineEntry, bool]]:
    """Every (pipeline, gpu) pair that is compiled into compiled/."""
    return [(entry, gpu) for entry in PIPELINES.values()
            for gpu in ((False, True) if entry.has_gpu_variant else (False,))]


def compiled_name(entry: PipelineEntry, gpu: bool) -> str:
    return f"{entry.name}-gpu" if gpu else entry.name
