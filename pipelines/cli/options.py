"""Options that more than one verb takes."""

import argparse
from pathlib import Path

from pipelines.cluster.packages import DEFAULT_COMPILED_DIR


def add_compiled_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compiled-dir", type=Path, default=DEFAULT_COMPILED_DIR,
                        help="where the compiled packages are (default: ./compiled)")
