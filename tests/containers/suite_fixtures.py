"""The container suite's set-up: the engine and registry that tests/containers/suite.sh
found or started (DOCKER_HOST, REGISTRY), and the image built and published once
for the whole suite, through the same Make targets a user runs.

A module of fixtures that the suite's tests import, not a conftest.py: the tests
one folder up import helpers `from conftest`, which a second conftest.py would shadow."""

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.images import VERSION

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

    @property
    def tag(self) -> str:
        return f"{self.repository}:{VERSION}"


@pytest.fixture(scope="session")
def registry() -> str:
    address = os.environ.get("REGISTRY")
    if not address:
        pytest.fail("REGISTRY is not set: run the container suite through `make container-test`")
    return address


@pytest.fixture(scope="session")
def built_image(registry) -> Image:
    """`make image IMAGE=<registry>/kfp-ml-pipelines`: built once for the suite."""
    repository = f"{registry}/kfp-ml-pipelines"
    started = time.monotonic()
    result = make("image", f"IMAGE={repository}")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    image_id = docker("image", "inspect", "--format", "{{.Id}}", f"{repository}:{VERSION}").strip()
    return Image(repository, image_id, time.monotonic() - started, result.stdout + result.stderr)


@pytest.fixture(scope="session")
def published_image(built_image, tmp_path_factory) -> Image:
    """`make publish`: pushed to the loopback registry and compiled against it (into a scratch folder)."""
    compiled = tmp_path_factory.mktemp("compiled")
    result = make("publish", f"IMAGE={built_image.repository}", f"COMPILED={compiled}")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    built_image.compiled = compiled
    return built_image


def containers_record(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "containers.jsonl").read_text().splitlines()]
