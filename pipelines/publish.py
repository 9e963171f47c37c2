"""Every component the registered pipelines use, compiled on its own, and a catalog of them.

`make compile` writes each one to `compiled/components/<name>.yaml`, so anyone
can load it into their own pipeline with `kfp.components.load_component_from_file`
(or `load_component_from_url`), and writes `compiled/components/README.md`, one
line per component: its Python import path, inputs, outputs and image.

The list is discovered, not written down: every step of every registered
pipeline variant is matched to the module-level component in `components.*`
that produced it (same image, command and arguments), so a new step is
published by the next `make compile`. Names: a shared component keeps its
Python name (`components.release.deploy.deploy_model` -> `deploy-model`); a pipeline's
step is prefixed with its package (`pipelines.sp500.steps.evaluate` ->
`sp500-evaluate`), because kfp's own component names repeat between pipelines
(each has an `evaluate`).
"""

import sys
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format
from kfp.dsl.base_component import BaseComponent

from components.common.errors import PipelineError
from pipelines import registry

CATALOG = "README.md"


@dataclass(frozen=True)
class PublishedComponent:
    name: str  # the file stem under compiled/components/
    import_path: str  # e.g. pipelines.sp500.steps.download_prices
    component: BaseComponent


def _executor_key(image: str, command, args) -> tuple:
    """What tells components apart once compiled: the function's source is in `command`."""
    return image, tuple(command or ()), tuple(args or ())


def _module_components() -> dict[tuple, tuple[str, BaseComponent]]:
    """Executor key -> (import path, component) of every component defined at module
    level in an imported module of `components` or of a pipeline's package (the pipelines import them all)."""
    found = {}
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith(("components.", "pipelines.")) or module is None:
            continue
        for attribute, value in vars(module).items():
            if not isinstance(value, BaseComponent) or value.component_spec.implementation.container is None:
                continue
            defined_in = getattr(getattr(value, "python_func", None), "__module__", module_name)
            if defined_in != module_name:  # imported from elsewhere: listed where it is defined
                continue
            container = value.component_spec.implementation.container
            found[_executor_key(container.image, container.command, container.args)] = (
                f"{module_name}.{attribute}", value)
    return found


def published_name(import_path: str) -> str:
    """`components.release.deploy.deploy_model` -> `deploy-model`; `pipelines.sp500.steps.train_model_gpu`
    -> `sp500-train-model-gpu`."""
    parts = import_path.split(".")
    package = [parts[1]] if parts[0] == "pipelines" else []
    return "-".join(package + [parts[-1]]).replace("_", "-")


def used_components() -> list[PublishedComponent]:
    """Every component a registered pipeline variant runs, sorted by name."""
    specs = {registry.compiled_name(entry, gpu): entry.make_pipeline(gpu).pipeline_spec
             for entry, gpu in registry.variants()}
    candidates = _module_components()  # after the builds: a pipeline may import its steps as it builds
    used: dict[str, PublishedComponent] = {}
    for pipeline_name, spec in specs.items():
        for executor_name, executor in json_format.MessageToDict(spec.deployment_spec)["executors"].items():
            container = executor["container"]
            match = candidates.get(_executor_key(container["image"], container.get("command"),
                                                 container.get("args")))
            if match is None:
                raise PipelineError(f"{pipeline_name}: step {executor_name} is not a "
                                    "module-level component of components/ or of its pipeline's package, "
                                    "so it cannot be published")
            import_path, component = match
            name = published_name(import_path)
            if name in used and used[name].import_path != import_path:
                raise PipelineError(f"{import_path} and {used[name].import_path} would both publish {name}")
            used[name] = PublishedComponent(name, import_path, component)
    return [used[name] for name in sorted(used)]


def publish_all(output_dir: Path) -> list[Path]:
    """Compile every used component to `<output_dir>/<name>.yaml` and write the catalog;
    a YAML file there of a component no pipeline uses any more is removed (the folder
    holds only what this writes)."""
    from kfp import compiler

    output_dir.mkdir(parents=True, exist_ok=True)
    published = used_components()
    for stale in set(output_dir.glob("*.yaml")) - {output_dir / f"{item.name}.yaml" for item in published}:
        stale.unlink()
    written = []
    for item in published:
        path = output_dir / f"{item.name}.yaml"
        compiler.Compiler().compile(item.component, str(path))
        written.append(path)
    catalog = output_dir / CATALOG
    catalog.write_text(catalog_markdown(output_dir, {item.name: item.import_path for item in published}),
                       encoding="utf-8")
    return written + [catalog]


def _interface(specs: dict | None) -> str:
    """`name` (Type), ... as the loaded component declares them (`system.Model@0.0.1` -> Model)."""
    return ", ".join(f"`{name}` ({spec.type.split('@')[0].removeprefix('system.')})"
                     for name, spec in sorted((specs or {}).items())) or "-"


def catalog_markdown(components_dir: Path, import_paths: dict[str, str]) -> str:
    """The catalog, read back from the compiled YAML in `components_dir` with kfp's own loader."""
    from kfp.components import load_component_from_file

    lines = ["# Published components", "",
             "Generated by `make compile` from the YAML beside this file: do not edit by hand. "
             "Load a file with `kfp.components.load_component_from_file` (or `load_component_from_url`), "
             "or import the component from Python by the path given. The input and output "
             "descriptions are in each file.", "",
             "| component | what it does | Python import | inputs | outputs | image |",
             "|---|---|---|---|---|---|"]
    for name, import_path in sorted(import_paths.items()):
        spec = load_component_from_file(str(components_dir / f"{name}.yaml")).component_spec
        summary = (spec.description or "").split("\n")[0].replace("|", "\\|")
        lines.append(f"| [{name}]({name}.yaml) | {summary} | `{import_path}` | {_interface(spec.inputs)} "
                     f"| {_interface(spec.outputs)} | `{spec.implementation.container.image}` |")
    return "\n".join(lines) + "\n"
