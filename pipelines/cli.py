"""Command line: compile, run (locally or on a cluster), and the cluster commands.

    python -m pipelines compile [--output-dir compiled]
    python -m pipelines run sp500 threshold=0.5 model_type=flat
"""

import argparse
import os
import sys
from pathlib import Path

from components.errors import InputError
from pipelines import registry


def compile_all(output_dir: Path) -> list[Path]:
    """Compile every pipeline variant to `<output_dir>/<name>[-gpu].yaml`."""
    from kfp import compiler

    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for entry, gpu in registry.variants():
        path = output_dir / f"{registry.compiled_name(entry, gpu)}.yaml"
        compiler.Compiler().compile(entry.make_pipeline(gpu), str(path))
        written.append(path)
    return written


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    params = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError(f"parameter '{item}' should be written name=value")
        params[name.strip()] = value
    return params


def _compile(args: argparse.Namespace) -> int:
    for path in compile_all(Path(args.output_dir)):
        print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    params = parse_assignments(args.params)
    if os.environ.get("KFP_HOST"):
        from pipelines import cluster

        name = f"{args.pipeline}-gpu" if args.gpu else args.pipeline
        return cluster.submit_run(name, params, wait=os.environ.get("WAIT") == "1")
    if args.gpu:
        raise InputError("--gpu (GPU=1) selects the -gpu variant on a cluster: set KFP_HOST; "
                         "a local run trains on this machine")
    from pipelines.local_run import run_local, summary

    result = run_local(args.pipeline, params, verbose=args.verbose)
    print("\n" + summary(result, registry.get(args.pipeline)), flush=True)
    if not result.succeeded:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    compile_cmd = commands.add_parser("compile", help="compile every pipeline to YAML")
    compile_cmd.add_argument("--output-dir", default="compiled")
    compile_cmd.set_defaults(handler=_compile)
    run_cmd = commands.add_parser("run", help="run a pipeline locally, or on KFP_HOST when set")
    run_cmd.add_argument("pipeline", choices=sorted(registry.PIPELINES))
    run_cmd.add_argument("params", nargs="*", help="pipeline parameters as name=value")
    run_cmd.add_argument("--verbose", action="store_true", help="show kfp's full executor log")
    run_cmd.add_argument("--gpu", action="store_true", help="on KFP_HOST: run the -gpu variant")
    run_cmd.set_defaults(handler=_run)
    try:
        from pipelines.cluster import add_cluster_commands
    except ImportError:  # the cluster commands are optional for a laptop-only checkout
        pass
    else:
        add_cluster_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
