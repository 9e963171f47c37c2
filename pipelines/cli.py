"""The `kfp-ml` command line (also `python -m pipelines`): it only assembles the verbs.

    kfp-ml compile [--output-dir compiled]
    kfp-ml run sp500 threshold=0.5 model_type=flat     (locally, or on KFP_HOST when set)
    kfp-ml upload | schedule ...                        (pipelines.cluster.commands)
    kfp-ml serve [...] | predict [...]                  (pipelines.serving)
    kfp-ml promote | rollback MODEL [...]               (pipelines.lifecycle)
"""

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from components.errors import PipelineError
from pipelines import registry
from pipelines.cluster.commands import add_cluster_commands, add_compiled_dir_option
from pipelines.parameters import parse_assignments


def compile_all(output_dir: Path) -> list[Path]:
    """Compile every pipeline variant to `<output_dir>/<name>[-gpu].yaml`, and every
    component they use to `<output_dir>/components/` (pipelines.publish)."""
    from kfp import compiler

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


def _compile(args: argparse.Namespace) -> int:
    for path in compile_all(Path(args.output_dir)):
        print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    params = parse_assignments(args.params)
    if os.environ.get("KFP_HOST"):
        from pipelines.cluster.commands import submit_run

        name = f"{args.pipeline}-gpu" if args.gpu else args.pipeline
        return submit_run(name, params, wait=os.environ.get("WAIT") == "1", compiled_dir=args.compiled_dir)
    if args.gpu:
        raise PipelineError("--gpu (GPU=1) selects the -gpu variant on a cluster: set KFP_HOST; "
                            "a local run trains on this machine")
    from pipelines.local_run import run_local, summary

    containers = None
    if args.runner == "docker":
        from pipelines.container_runner import ContainerSettings

        containers = ContainerSettings(mode=args.container_user)
    result = run_local(args.pipeline, params, verbose=args.verbose, containers=containers)
    print("\n" + summary(result, registry.get(args.pipeline), with_error=False), flush=True)
    if not result.succeeded:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    return 0


# TensorFlow's C++ start-up lines ("I0000 00:00:... cudart_stub.cc:31] Could not find cuda
# drivers", "E0000 ... failed call to cuInit" on a machine without a GPU) are written to fd 2
# at import and at the first look for devices, before absl's logging is set up, whatever
# TF_CPP_MIN_LOG_LEVEL says; runs keep them in run.log, serve and predict drop them.
TENSORFLOW_START_UP = re.compile(r"^(?:[IWE]\d{4} \d\d:\d\d:\S+\s+\d+ \S+:\d+\]|WARNING: All log messages before absl)")


def _import_tensorflow_quietly() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        terminal = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()  # the device search logs once, now
        finally:
            os.dup2(terminal, 2)
            os.close(terminal)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if not TENSORFLOW_START_UP.match(line):  # anything else (an error) still shows
                    print(line, file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    _import_tensorflow_quietly()
    from pipelines.serving import server

    return server.main(args.arguments)


def _predict(args: argparse.Namespace) -> int:
    _import_tensorflow_quietly()
    from pipelines.serving import predict

    return predict.main(args.arguments)


def _promote(args: argparse.Namespace) -> int:
    from pipelines import lifecycle

    return lifecycle.main("promote", args.arguments)


def _rollback(args: argparse.Namespace) -> int:
    from pipelines import lifecycle

    return lifecycle.main("rollback", args.arguments)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kfp-ml", description=__doc__,
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
    run_cmd.add_argument("--runner", choices=("subprocess", "docker"), default="subprocess",
                         help="local run: each step in a subprocess of this environment (default), "
                              "or in a container of its image")
    run_cmd.add_argument("--container-user", choices=("root", "nonroot"), default="root",
                         help="with --runner docker: uid 0 with no capabilities (default), or uid 1000 "
                              "with an fsGroup (docs: containers)")
    add_compiled_dir_option(run_cmd)
    run_cmd.set_defaults(handler=_run)
    add_cluster_commands(commands)
    for name, handler, what in (("serve", _serve, "serve the local model store with TF-Serving's APIs"),
                                ("predict", _predict, "query a served model over gRPC or REST"),
                                ("promote", _promote, "make the canary (or a version) stable for all traffic"),
                                ("rollback", _rollback, "drop the canary, or serve an earlier version as stable")):
        # No option prefix: every word after the verb, options first included, goes to its own parser.
        verb = commands.add_parser(name, help=what, add_help=False, prefix_chars="\0")
        verb.add_argument("arguments", nargs=argparse.REMAINDER, help=f"`kfp-ml {name} --help` lists them")
        verb.set_defaults(handler=handler)
    return parser


# Verbs with their own parsers get the rest of the command line as it is: argparse's
# REMAINDER refuses a remainder that starts with an option (`serve --model-base-path x`).
OWN_PARSERS = {"serve": _serve, "predict": _predict, "promote": _promote, "rollback": _rollback}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in OWN_PARSERS:
        return OWN_PARSERS[argv[0]](argparse.Namespace(arguments=argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
