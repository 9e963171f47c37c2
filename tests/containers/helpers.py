"""What the container suite's tests share: running `make` and `docker` as a user
does, and the record of the containers a run started."""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from components.common.images import VERSION

REPO = Path(__file__).resolve().parents[2]


def make(*args: str, cwd: Path = REPO, timeout: float = 1800, **env: str) -> subprocess.CompletedProcess:
    """`make ARGS` as a user runs it, with extra environment."""
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=300).stdout


@dataclass
class Image:
    repository: str  # REGISTRY/kfp-ml-pipelines
    id: str
    build_seconds: float
    build_output: str
    compiled: Path | None = None  # where `make publish` compiled the packages against it

    @property
    def tag(self) -> str:
        return f"{self.repository}:{VERSION}"


def containers_record(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "containers.jsonl").read_text().splitlines()]
