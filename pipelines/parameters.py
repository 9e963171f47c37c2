"""Pipeline parameters given as text (`name=value`): typed and checked once,
the same way for a local run and for a run or schedule on a cluster."""

import json
import math
from pathlib import Path

from components.common.errors import InputError

KINDS = {"NUMBER_INTEGER": "an integer", "NUMBER_DOUBLE": "a number", "BOOLEAN": "true or false",
         "LIST": "a JSON list", "STRUCT": "a JSON object"}


def convert(name: str, value: object, parameter_type: str) -> object:
    """`value` in the KFP parameter type the pipeline declares (text stays text)."""
    if not isinstance(value, str):  # already typed by the caller
        return value
    try:
        if parameter_type == "NUMBER_INTEGER":
            return int(value)
        if parameter_type == "NUMBER_DOUBLE":
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        if parameter_type == "BOOLEAN":
            return {"true": True, "1": True, "yes": True,
                    "false": False, "0": False, "no": False}[value.strip().lower()]
        if parameter_type in ("LIST", "STRUCT"):
            parsed = json.loads(value)
            if not isinstance(parsed, list if parameter_type == "LIST" else dict):
                raise ValueError(value)
            return parsed
    except (ValueError, KeyError) as error:
        raise InputError(f"parameter {name}={value!r} is not {KINDS[parameter_type]}") from error
    return value


def resolve(pipeline: str, declared: dict[str, dict], given: dict[str, object]) -> dict[str, object]:
    """Typed `given` parameters, after checking every value with the defaults filled in.

    `declared` is the compiled root's inputDefinitions.parameters (name ->
    parameterType, defaultValue). Checks: names exist, types convert, each release
    setting's own check (`components.release.config.check_release_values`), a
    model_name that can name a folder and Kubernetes objects, a model_base_path
    that is not a file, and the registered pipeline's own `check_parameters`.
    """
    from components.cluster.serving import object_name
    from components.release.config import check_release_values
    from components.store.base import check_model_name
    from pipelines import registry

    converted = {}
    for name, value in given.items():
        if name not in declared:
            raise InputError(f"unknown parameter '{name}' for {pipeline}: "
                             f"expected one of {', '.join(sorted(declared))}")
        converted[name] = convert(name, value, declared[name]["parameterType"])
    check_release_values(converted)
    effective = {**{name: spec.get("defaultValue") for name, spec in declared.items()}, **converted}
    if effective.get("model_base_path"):
        check_model_base_path(str(effective["model_base_path"]))
    if "model_name" in effective:
        check_model_name(effective["model_name"])
        object_name(effective["model_name"])  # it also names the serving objects on a cluster
    spec = registry.find(pipeline)
    if spec is not None:  # a package of a pipeline this project does not define is only type-checked
        spec.check_parameters(effective)
    return converted


def check_model_base_path(path: str) -> None:
    """The model store is a folder: a file at `path` or in its way fails now, before training.

    Only what exists on this machine is checked (on a cluster the path is inside the pod).
    """
    for candidate in (Path(path), *Path(path).parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise InputError(f"model_base_path {path}: {candidate} is a file, not a folder")
            return


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """`name=value` words from the command line, as text (typed later by `resolve`)."""
    params = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError(f"parameter '{item}' should be written name=value")
        params[name.strip()] = value
    return params


def declared_by(pipeline_func) -> dict[str, dict]:
    """The parameters a pipeline function declares, as its compiled root lists them."""
    from google.protobuf import json_format

    root = json_format.MessageToDict(pipeline_func.pipeline_spec.root)
    return root.get("inputDefinitions", {}).get("parameters", {})
