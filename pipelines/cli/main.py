"""The `kfp-ml` command line (also `python -m pipelines`): one table of verbs, each a module of pipelines.cli.

    kfp-ml compile [--output-dir compiled]
    kfp-ml run sp500 threshold=0.5 model_type=flat     (locally, or on KFP_HOST when set)
    kfp-ml upload | schedule ...                        (on KFP_HOST)
    kfp-ml serve [...] | predict [...]                  (the local model server, and its client)
    kfp-ml promote | rollback MODEL [...]               (the serving labels)

`kfp-ml VERB --help` lists a verb's options.
"""

import argparse
import sys

from components.common.errors import PipelineError
from pipelines.cli import compile as compile_verb
from pipelines.cli import predict, promote, rollback, schedule, serve, upload
from pipelines.cli import run as run_verb
from pipelines.local import interrupts

# Every verb: a module with HELP (its line in `kfp-ml --help`), add_arguments(parser) and
# run(args) -> exit code; its docstring is its `--help` description. The modules import kfp,
# TensorFlow or the Kubernetes client only in run(), so that building this parser needs none.
VERBS = {
    "compile": compile_verb,
    "run": run_verb,
    "upload": upload,
    "schedule": schedule,
    "serve": serve,
    "predict": predict,
    "promote": promote,
    "rollback": rollback,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kfp-ml", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="run: show kfp's full executor log")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, verb in VERBS.items():
        command = commands.add_parser(name, help=verb.HELP, description=verb.__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
        verb.add_arguments(command)
        command.set_defaults(handler=verb.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb. Ctrl-C or SIGTERM ends any verb with one `interrupted: …` line and exit
    130 or 143 (a local run says which step it stopped; `serve` stops on its own)."""
    argv = sys.argv[1:] if argv is None else argv
    with interrupts.signals_as_keyboard_interrupt() as signals:
        try:
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
