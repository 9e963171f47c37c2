"""Make a version (default: the canary) stable for all traffic."""

import argparse

from pipelines.cli import lifecycle

HELP = "make the canary (or a version) stable for all traffic"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    lifecycle.add_arguments(parser, version_flag="--version")


def run(args: argparse.Namespace) -> int:
    return lifecycle.run_action("promote", args)
