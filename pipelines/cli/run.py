"""Run a pipeline locally (pipelines.local.run), or on the cluster at KFP_HOST when it is set.

    kfp-ml run sp500 threshold=0.5 model_type=flat [--verbose] [--runner docker]
"""

import argparse
import os
import sys

from components.common.errors import PipelineError
from pipelines import registry
from pipelines.cli.options import add_compiled_dir_option
from pipelines.parameters import parse_assignments

HELP = "run a pipeline locally, or on KFP_HOST when set"

# The registry imports neither kfp nor the pipelines' code, which the other verbs do not need.
PIPELINE_NAMES = registry.names()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", choices=PIPELINE_NAMES)
    parser.add_argument("params", nargs="*", help="pipeline parameters as name=value")
    # Also an option of `kfp-ml` itself (`kfp-ml --verbose run ...`): not reset here when not given.
    parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show kfp's full executor log")
    parser.add_argument("--gpu", action="store_true", help="on KFP_HOST: run the -gpu variant")
    parser.add_argument("--runner", choices=("subprocess", "docker"), default="subprocess",
                        help="local run: each step in a subprocess of this environment (default), "
                             "or in a container of its image")
    parser.add_argument("--container-user", choices=("root", "nonroot"), default="root",
                        help="with --runner docker: uid 0 with no capabilities (default), or uid 1000 "
                             "with an fsGroup (docs: containers)")
    add_compiled_dir_option(parser)


def run(args: argparse.Namespace) -> int:
    params = parse_assignments(args.params)
    if os.environ.get("KFP_HOST"):
        from pipelines.cluster.commands import submit_run

        name = f"{args.pipeline}-gpu" if args.gpu else args.pipeline
        return submit_run(name, params, wait=os.environ.get("WAIT") == "1", compiled_dir=args.compiled_dir)
    if args.gpu:
        raise PipelineError("--gpu (GPU=1) selects the -gpu variant on a cluster: set KFP_HOST; "
                            "a local run trains on this machine")
    from pipelines import registry
    from pipelines.local.report import summary
    from pipelines.local.run import run_local

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
