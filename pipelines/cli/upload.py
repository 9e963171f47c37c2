"""Register compiled/<pipeline>.yaml in the Pipelines UI of the cluster at KFP_HOST (pipelines.cluster)."""

import argparse

from pipelines.cli.options import add_compiled_dir_option

HELP = "register compiled/<pipeline>.yaml in the Pipelines UI (KFP_HOST)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline")
    parser.add_argument("--gpu", action="store_true", help="upload the -gpu variant")
    add_compiled_dir_option(parser)


def run(args: argparse.Namespace) -> int:
    from pipelines.cluster.commands import upload_package  # kfp's client

    upload_package(args.pipeline, args.gpu, args.compiled_dir)
    return 0
