"""Compile every pipeline variant to YAML, and every component they use (pipelines.publish)."""

import argparse
from pathlib import Path

from components.common.errors import PipelineError

HELP = "compile every pipeline to YAML"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="compiled")


def run(args: argparse.Namespace) -> int:
    for path in compile_all(Path(args.output_dir)):
        print(f"wrote {path}")
    return 0


def compile_all(output_dir: Path) -> list[Path]:
    """Compile every pipeline variant to `<output_dir>/<name>[-gpu].yaml`, and every
    component they use to `<output_dir>/components/` (pipelines.publish)."""
    from kfp import compiler

    from pipelines import registry
    from pipelines.publish import publish_all

    if output_dir.exists() and not output_dir.is_dir():
        raise PipelineError(f"--output-dir {output_dir} is a file, not a folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for entry, gpu in registry.variants():
        path = output_dir / f"{registry.compiled_name(entry, gpu)}.yaml"
        compiler.Compiler().compile(entry.make_pipeline(gpu), str(path))
        written.append(path)
    return written + publish_all(output_dir / "components")
