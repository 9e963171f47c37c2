"""What generic code needs to know about one pipeline, in one typed object.

Each pipeline's package defines its `SPEC` in `pipelines/<name>/spec.py`, and
`pipelines.registry` lists them. The command line, the local runner, the
cluster commands and the request client work from a spec and name no pipeline.

A spec is light: reading it imports neither kfp nor TensorFlow nor pandas (the
command line lists the pipelines' names without them). Its functions that need
them (the pipeline function, the parameter checks, the request builders) are
`deferred`: their module is imported when they are first called.
"""

import argparse
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.release.config import ReleaseConfig
from components.settings.resources import StepResources

if TYPE_CHECKING:
    from components.serving.client import Request, Signature


def deferred(module: str, function: str) -> Callable[..., Any]:
    """`module.function`, imported when first called."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), function)(*args, **kwargs)

    call.__qualname__ = call.__name__ = f"{module}.{function}"
    return call


@dataclass(frozen=True)
class DataRequests:
    """Requests that `predict` builds from the pipeline's own data instead of random numbers.

    Attributes:
        options: The options that ask for such a request, each with its `add_argument`
            keywords (`{"--date": {"help": ...}}`). They share one mutually exclusive
            group with `--random`, and are refused for another pipeline's model.
        build: `build(signature, args) -> Request`: the request for the served signature.
        add_arguments: `add_arguments(parser)` adds the options that tune these requests.
    """

    options: Mapping[str, Mapping[str, Any]]
    build: Callable[["Signature", argparse.Namespace], "Request"]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None

    def asked(self, args: argparse.Namespace) -> bool:
        """Whether the command line asked for one of these requests."""
        return any(getattr(args, keywords.get("dest", option.lstrip("-").replace("-", "_")), None)
                   not in (None, False) for option, keywords in self.options.items())


@dataclass(frozen=True)
class PredictSpec:
    """How `predict` asks the pipeline's served model, and how it reads the answer.

    Attributes:
        transport: The default transport, "grpc" or "rest" (some servers speak only REST).
        class_names: What each `predicted_class` means, printed beside it.
        scalar_outputs: Output name -> what it is, for outputs printed as one signed number.
        requests: Requests from the pipeline's own data; None: random ones only.
        signature: The served signature, for servers that do not report it (no
            metadata endpoint); None: such a server's 404 is an error.
    """

    transport: str = "grpc"
    class_names: Mapping[int, str] = field(default_factory=dict)
    scalar_outputs: Mapping[str, str] = field(default_factory=dict)
    requests: DataRequests | None = None
    signature: Callable[[], "Signature"] | None = None


@dataclass(frozen=True)
class PipelineSpec:
    """Everything specific to one pipeline that generic code needs.

    Attributes:
        name: The pipeline's name: the command line's, its package's, its compiled file's.
        make_pipeline: `make_pipeline(gpu)`: the @dsl.pipeline function (of the GPU variant
            when `gpu`).
        check_parameters: `check_parameters(params)` raises InputError on parameters that can
            never work, before anything runs.
        gate_task: The evaluate task, whose single output is the gate metric.
        release: The pipeline's gate, deploy and canary settings with its defaults
            (`components.release.config`): its gate metric and naive baseline too.
        resources: Every step's resources by component name, except the shared steps'
            (`components.settings.resources.SHARED`); a step in neither fails the compile.
        has_gpu_variant: Whether a `<name>-gpu` variant is compiled.
        predict: The request client's side of the served model.
    """

    name: str
    make_pipeline: Callable[..., Callable]
    check_parameters: Callable[[dict], None]
    gate_task: str
    release: ReleaseConfig
    resources: Mapping[str, StepResources]
    has_gpu_variant: bool = True
    predict: PredictSpec = PredictSpec()

    @property
    def gate_metric(self) -> str:
        """The evaluate task's score the gate decides on, for the run summary."""
        return self.release.gate_metric

    @property
    def baseline_metric(self) -> str:
        """The naive baseline's key in the evaluate task's Metrics artifact."""
        return self.release.baseline_metric


def parameter_defaults(pipeline) -> dict[str, object]:
    """The parameter defaults of a @dsl.pipeline function, from its Python signature: the data
    a model was trained on unless told otherwise (the request builders of `predict`)."""
    return {name: parameter.default
            for name, parameter in inspect.signature(pipeline.pipeline_func).parameters.items()}
