"""The release settings of a pipeline (gate, deploy, canary): declared once, carried by one typed object.

`ReleaseConfig` is what the gate and deploy steps of a pipeline take
(`components.release.deploy.add_gated_deploy`), as TFX's Evaluator and Pusher
take one config. Its fields are of two kinds:

- fixed when the pipeline is written: `gate_metric`, `baseline_metric`, `model_format`;
- pipeline parameters, set per run in the Pipelines UI or with `PARAMS=`: every field
  declared with `parameter(description, ...)`. Each is declared here and only here:
  its name, its type, its default (`model_name` and `threshold` have none: each
  pipeline gives its own) and its one description.

A pipeline module declares its `ReleaseConfig` (`RELEASE`, with its gate metric and
defaults), and decorates its pipeline function with `release_parameters(RELEASE)`
below `@dsl.pipeline`. The function takes one keyword-only `release: ReleaseConfig`;
the decorator gives it, in place of that argument, one parameter per release
parameter, so that the UI still lists each with its type, default and description.

Why a decorator that rewrites the signature, rather than a parameter per field in
every pipeline or one parameter holding them all: kfp 2.17 reads a pipeline's inputs
from `inspect.signature` of its function and their descriptions from the `Args:`
section of `inspect.getdoc` (docstring_parser, `kfp.dsl.component_factory.
extract_component_interface`), then calls the function once with a channel per
input. Writing the parameters out in each signature repeats nine names, defaults and
descriptions per pipeline; one dict or struct parameter would show the UI one JSON box,
untyped and undescribed. The decorator sets `__signature__` (which `inspect.signature`
honours) and the docstring, and builds the `ReleaseConfig` from the channels when KFP
calls the function.

A pipeline offers the parameters its model format can use (`ReleaseConfig.parameters`):
`use_kserve` only for a TensorFlow model (a LightGBM model is always served by KServe),
`kserve_deployment_mode` only for a LightGBM model (a TensorFlow model served through
`use_kserve` assumes KServe's default mode, Knative).
"""

import dataclasses
import functools
import inspect
import typing
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

TENSORFLOW, LIGHTGBM = "tensorflow", "lightgbm"


def parameter(description: str, default: object = dataclasses.MISSING,
              model_formats: tuple[str, ...] = (TENSORFLOW, LIGHTGBM)):
    """A `ReleaseConfig` field that is a pipeline parameter, offered by the pipelines of `model_formats`.
    `{gate_metric}` in the description stands for the pipeline's gate metric."""
    return field(default=default, metadata={"description": description, "model_formats": model_formats})


@dataclass(frozen=True, kw_only=True)
class ReleaseConfig:
    """One pipeline's gate, deploy and canary settings. In a pipeline module, the values
    are the pipeline's defaults; inside its pipeline function, the parameters are the
    run's (KFP channels)."""

    gate_metric: str  # the evaluate step's score the gate decides on (higher is better)
    baseline_metric: str  # the naive baseline's score beside it in the evaluate step's Metrics
    model_format: str = TENSORFLOW  # or LIGHTGBM: which servers can serve the model
    # The pipeline parameters, in the order the signatures list them.
    threshold: float = parameter(
        "Deploy gate: the least {gate_metric} on the held-out test data that the model must reach to be deployed.")
    model_name: str = parameter(
        "Name of the served model: its folder in the model store and, on a cluster, the name of its serving "
        "objects (a Kubernetes name).")
    model_base_path: str = parameter(
        "Root of the model store, a folder or gs://bucket/folder; versions go to <model_base_path>/<model_name>/<N>/. "
        "On a cluster a folder store must be /models, where model_store_pvc is mounted.", "/models")
    model_store_pvc: str = parameter(
        "PersistentVolumeClaim holding the model store, mounted at /models in the validation, gate and deploy steps "
        "(cluster only; it must exist even for a gs:// store).", "model-store")
    serving_namespace: str = parameter("Namespace of the serving objects; empty means the pod's own.", "")
    use_kserve: bool = parameter(
        "Serve through a KServe InferenceService instead of a TF-Serving Deployment.", False, (TENSORFLOW,))
    tolerance: float = parameter(
        "How much worse than the serving champion (the version labelled stable) the model may score and still "
        "deploy; 0: at least as good.", 0.0)
    require_beat_baseline: bool = parameter("Also require the model to beat the naive baseline.", False)
    skip_validation: bool = parameter(
        "Let data that breaks the serving model's schema (a missing or new column, a changed type or domain, "
        "more missing values) through the validation step, for a deliberate change; it still reports.", False)
    canary_percent: int = parameter(
        "100 deploys the model as stable; below 100 it goes out as the canary: KServe sends it this share of "
        "traffic, TF-Serving gives it the label `canary`.", 100)
    kserve_deployment_mode: str = parameter(
        'The mode the cluster\'s KServe runs: "Knative" (canaries possible) or "Standard" (no traffic split).',
        "Knative", (LIGHTGBM,))

    def __post_init__(self):
        if self.model_format not in (TENSORFLOW, LIGHTGBM):
            raise ValueError(f"model_format '{self.model_format}': expected '{TENSORFLOW}' or '{LIGHTGBM}'")

    def parameters(self) -> tuple["ReleaseParameter", ...]:
        """The release parameters this pipeline offers, with its defaults, in signature order."""
        types = typing.get_type_hints(ReleaseConfig)
        return tuple(
            ReleaseParameter(spec.name, types[spec.name], getattr(self, spec.name),
                             spec.metadata["description"].format(gate_metric=self.gate_metric.replace("_", " ")))
            for spec in dataclasses.fields(self)
            if "description" in spec.metadata and self.model_format in spec.metadata["model_formats"])


class ReleaseParameter(NamedTuple):
    """A release parameter as a pipeline signature shows it."""

    name: str
    type: type
    default: object
    description: str


def release_parameters(config: ReleaseConfig) -> Callable[[Callable], Callable]:
    """Give a pipeline function the release parameters of `config` (apply it below `@dsl.pipeline`).

    The function takes the release as one keyword-only argument, `release: ReleaseConfig`,
    described in its docstring's `Args:` like its own parameters (and the release
    parameters nowhere). The decorated function has the release parameters in that
    argument's place, in the signature with `config`'s defaults and in `Args:` with
    their descriptions; it calls the function with `release`: `config` with its
    parameters set to what it was called with.
    """
    offered = config.parameters()
    names = [p.name for p in offered]

    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)
        if "release" not in signature.parameters:
            raise TypeError(f"{func.__name__} takes no `release` argument to receive its ReleaseConfig")
        own = [p for p in signature.parameters.values() if p.name != "release"]
        if clash := sorted({p.name for p in own} & set(names)):
            raise TypeError(f"{func.__name__} declares release parameters itself: {', '.join(clash)}")
        whole = signature.replace(parameters=own + [
            inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default, annotation=p.type)
            for p in offered])

        @functools.wraps(func)
        def with_release(*args, **kwargs):
            bound = whole.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            release = dataclasses.replace(config, **{name: arguments.pop(name) for name in names})
            return func(**arguments, release=release)

        with_release.__signature__ = whole
        with_release.__doc__ = documented(inspect.getdoc(func) or "", offered, func.__name__)
        return with_release

    return decorate


def documented(docstring: str, offered: tuple[ReleaseParameter, ...], owner: str) -> str:
    """`docstring` (cleaned, Google style) with its `Args:` entry for `release` replaced by a line
    per release parameter."""
    import docstring_parser  # kfp's own docstring parser: what it reads is what the UI shows

    described = {p.arg_name for p in docstring_parser.parse(docstring).params}
    if clash := sorted(described & {p.name for p in offered}):
        raise TypeError(f"{owner} describes release parameters itself ({', '.join(clash)}): their descriptions "
                        "are declared once, in components.release.config")
    if "release" not in described:
        raise TypeError(f"{owner}'s docstring has no `Args:` entry for `release`, where the release parameters go")
    lines = docstring.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("release:"))
    indent = lines[start][:len(lines[start]) - len(lines[start].lstrip())]
    end = start + 1  # past the entry's continuation lines, indented deeper
    while end < len(lines) and lines[end].startswith(indent + " "):
        end += 1
    return "\n".join(lines[:start] + [f"{indent}{p.name}: {p.description}" for p in offered] + lines[end:])
