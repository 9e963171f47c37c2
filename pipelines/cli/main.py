"""The `kfp-ml` command line (also `python -m pipelines`): it only assembles the verbs.

    kfp-ml compile [--output-dir compiled]
    kfp-ml run sp500 threshold=0.5 model_type=flat     (locally, or on KFP_HOST when set)
    kfp-ml upload | schedule ...                        (pipelines.cluster.commands)
    kfp-ml serve [...] | predict [...]                  (components.serving)
    kfp-ml promote | rollback MODEL [...]               (pipelines.cli.lifecycle)
"""

import argparse
import os
import sys
from pathlib import Path

from components.common.errors import PipelineError
from pipelines import registry
from pipelines.local import interrupts
from pipelines.parameters import parse_assignments

# The registry imports neither kfp nor the pipelines' code, which the other verbs do not need.
PIPELINE_NAMES = registry.names()


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
    from pipelines.local.run import run_local, summary

    containers = None
    if args.runner == "docker":
        from pipelines.local.containers import ContainerSettings

        containers = ContainerSettings(mode=args.container_user)
    result = run_local(args.pipeline, params, verbose=args.verbose, containers=containers)
    if result.interrupted:  # one line: what was stopped, and where the rest is
        print(f"interrupted: {result.error} by {result.interrupted}; what finished is in "
              f"{result.run_dir / 'index.html'}", file=sys.stderr, flush=True)
        return result.exit_code
    print("\n" + summary(result, registry.get(args.pipeline), with_error=False), flush=True)
    if not result.succeeded:
        print(f"error: {result.error}", file=sys.stderr)
    return result.exit_code


def _serve(args: argparse.Namespace) -> int:
    from components.serving import server  # TensorFlow once its arguments are checked

    return server.main(args.arguments)


def _predict(args: argparse.Namespace) -> int:
    from pipelines.cli import predict  # TensorFlow only for gRPC (components.serving.client)

    return predict.main(args.arguments)


def _promote(args: argparse.Namespace) -> int:
    from pipelines.cli import lifecycle

    return lifecycle.main("promote", args.arguments)


def _rollback(args: argparse.Namespace) -> int:
    from pipelines.cli import lifecycle

    return lifecycle.main("rollback", args.arguments)


def build_parser() -> argparse.ArgumentParser:
    # The cluster verbs' modules import kfp: not needed by serve, predict, promote, rollback.
    from pipelines.cluster.commands import add_cluster_commands, add_compiled_dir_option

    parser = argparse.ArgumentParser(prog="kfp-ml", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="run: show kfp's full executor log")
    commands = parser.add_subparsers(dest="command", required=True)
    compile_cmd = commands.add_parser("compile", help="compile every pipeline to YAML")
    compile_cmd.add_argument("--output-dir", default="compiled")
    compile_cmd.set_defaults(handler=_compile)
    run_cmd = commands.add_parser("run", help="run a pipeline locally, or on KFP_HOST when set")
    run_cmd.add_argument("pipeline", choices=PIPELINE_NAMES)
    run_cmd.add_argument("params", nargs="*", help="pipeline parameters as name=value")
    run_cmd.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="show kfp's full executor log")
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
    """Run one verb. Ctrl-C or SIGTERM ends any verb with one `interrupted: …` line and exit
    130 or 143 (a local run says which step it stopped; `serve` stops on its own)."""
    argv = sys.argv[1:] if argv is None else argv
    with interrupts.signals_as_keyboard_interrupt() as signals:
        try:
            if argv and argv[0] in OWN_PARSERS:
                return OWN_PARSERS[argv[0]](argparse.Namespace(arguments=argv[1:]))
            args = parse_args(build_parser(), argv)
            return args.handler(args)
        except PipelineError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            verb = argv[0] if argv else "kfp-ml"
            print(f"interrupted: {verb} stopped by {signals.name} before it finished", file=sys.stderr, flush=True)
            return signals.exit_code


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`parser.parse_args`, except that `run`'s name=value parameters may come before or after
    its options (`run sp500 --verbose threshold=0.5`)."""
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        args.params += [word for word in extra if "=" in word and not word.startswith("-")]
        extra = [word for word in extra if word not in args.params]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


if __name__ == "__main__":
    sys.exit(main())
