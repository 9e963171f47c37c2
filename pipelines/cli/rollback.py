"""Drop the canary, or with --to N serve version N as stable."""

import argparse

from pipelines.cli import lifecycle

HELP = "drop the canary, or serve an earlier version as stable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    lifecycle.add_arguments(parser, version_flag="--to")


def run(args: argparse.Namespace) -> int:
    return lifecycle.run_action("rollback", args)
