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

Each setting is also checked here, once: `check_release_values` runs the check
declared with it (`pipelines.parameters` before a run, the gate and deploy steps
at run time). The gate and deploy steps list the parameters they take in their
own signatures (KFP serialises a lightweight component's source, so its signature
must name its inputs); `release_inputs` fills in their descriptions from here and
refuses, at import, a type or default that disagrees with the declaration.

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
from typing import Callable, Mapping, NamedTuple

from components.common.errors import InputError

TENSORFLOW, LIGHTGBM = "tensorflow", "lightgbm"
Check = Callable[[str, object], None]


def parameter(description: str, default: object = dataclasses.MISSING,
              model_formats: tuple[str, ...] = (TENSORFLOW, LIGHTGBM), check: Check | None = None):
    """A `ReleaseConfig` field that is a pipeline parameter, offered by the pipelines of `model_formats`.
    `{gate_metric}` in the description stands for the pipeline's gate metric; `check(name, value)`
    raises an InputError for a value the setting cannot take."""
    return field(default=default, metadata={"description": description, "model_formats": model_formats,
                                            "check": check})


def between(low: float, high: float, strictly: bool = False) -> Check:
    """A check that a number lies in [low, high] (`strictly`: in (low, high))."""
    def check(name: str, value: object) -> None:
        inside = low < value < high if strictly else low <= value <= high
        if not inside:
            raise InputError(f"{name} must be {'strictly ' if strictly else ''}between {low:g} and {high:g}"
                             f", got {value:g}")
    return check


def at_least(low: float) -> Check:
    def check(name: str, value: object) -> None:
        if not value >= low:
            raise InputError(f"{name} must be at least {low:g}, got {value:g}")
    return check


def canary_share(name: str, value: object) -> None:
    from components.store.serving_labels import check_canary_percent  # also checked by promote, on the labels

    check_canary_percent(value)


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
        "Deploy gate: the least {gate_metric} on the held-out test data that the model must reach to be deployed.",
        check=between(0, 1))
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
        "How much worse than the serving champion (the version labelled stable) the model may be: the lower bound "
        "of the interval of (model - champion) on the same rows must be at least -tolerance; 0: the whole "
        "interval at or above 0, so a difference within the noise does not replace the champion.", 0.0,
        check=between(0, 1))
    require_beat_baseline: bool = parameter(
        "Also require the model to beat the naive baseline: the lower bound of the interval of (model - baseline) "
        "must be above 0.", False)
    confidence: float = parameter(
        "Level of the gate's paired bootstrap intervals of score differences (0.95: 95% intervals).", 0.95,
        check=between(0, 1, strictly=True))
    max_drift: float = parameter(
        "The largest drift (population stability index of a feature, this run's training data against the "
        "serving champion's) the gate accepts; 0.25 is the usual PSI level for action.", 0.25, check=at_least(0))
    deploy_if_champion_incomparable: bool = parameter(
        "Deploy even when the serving champion cannot be scored on this run's rows (another input width, other "
        "features, an unreadable or missing model); false: such a gate refuses.", False)
    skip_validation: bool = parameter(
        "Let data that breaks the serving model's schema (a missing or new column, a changed type or domain, "
        "more missing values) through the validation step, for a deliberate change; it still reports.", False)
    canary_percent: int = parameter(
        "100 deploys the model as stable; below 100 it goes out as the canary: KServe sends it this share of "
        "traffic, TF-Serving gives it the label `canary`.", 100, check=canary_share)
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


def check_release_values(values: Mapping[str, object]) -> None:
    """Run the check declared with each release setting in `values` (other names are left alone)."""
    for spec in dataclasses.fields(ReleaseConfig):
        check = spec.metadata.get("check")
        if check is not None and spec.name in values:
            check(spec.name, values[spec.name])


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


def release_inputs(func: Callable) -> Callable:
    """Describe a step's release parameters from `ReleaseConfig` (apply it under `@cpu_component`).

    The step's signature lists the release parameters it takes, by their declared names; this adds
    each one's `Args:` entry (the declared description: KFP copies it into the compiled component) and
    refuses, when the module is imported, a parameter whose type differs from the declaration or whose
    default is not the declared one, and a docstring that describes one itself. The function is returned
    as it is otherwise: KFP serialises its source.
    """
    import docstring_parser

    declared = {spec.name: spec for spec in dataclasses.fields(ReleaseConfig) if "description" in spec.metadata}
    types = typing.get_type_hints(ReleaseConfig)
    signature = inspect.signature(func)
    taken = [p for p in signature.parameters.values() if p.name in declared]
    for given in taken:
        spec = declared[given.name]
        if given.annotation is not types[given.name]:
            raise TypeError(f"{func.__name__}({given.name}: {given.annotation!r}): components.release.config "
                            f"declares it {types[given.name].__name__}")
        if given.default is not inspect.Parameter.empty and given.default != spec.default:
            raise TypeError(f"{func.__name__}({given.name}={given.default!r}): components.release.config declares "
                            f"its default as {'none' if spec.default is dataclasses.MISSING else repr(spec.default)}")
    docstring = inspect.getdoc(func) or ""
    if clash := sorted({p.arg_name for p in docstring_parser.parse(docstring).params} & {p.name for p in taken}):
        raise TypeError(f"{func.__name__} describes release parameters itself ({', '.join(clash)}): their "
                        "descriptions are declared once, in components.release.config")
    lines = docstring.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), None)
    if start is None:
        raise TypeError(f"{func.__name__}'s docstring has no `Args:` section for its release parameters")
    indent = lines[start][:len(lines[start]) - len(lines[start].lstrip())] + "    "
    end = start + 1  # past the section's entries, each indented at least one level deeper than `Args:`
    while end < len(lines) and lines[end].startswith(indent):
        end += 1
    entries = [f"{indent}{p.name}: {declared[p.name].metadata['description'].format(gate_metric='the gate metric')}"
               for p in taken]
    func.__doc__ = "\n".join(lines[:end] + entries + lines[end:])
    return func
