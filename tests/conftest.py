"""Shared test set-up: quiet TensorFlow, and helpers to run the command line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m pipelines ...` as a user runs it, in `cwd` (where runs/ and model_store/ go)."""
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def cli(tmp_path):
    return lambda *args: run_cli(*args, cwd=tmp_path)
