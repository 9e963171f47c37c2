"""The container suite's set-up: the engine and registry that tests/containers/suite.sh
found or started (DOCKER_HOST, REGISTRY), and the image built and published once
for the whole suite, through the same Make targets a user runs.

This folder is a package, so this conftest.py does not shadow tests/conftest.py
(the tests there import helpers `from conftest`)."""

import os
import time

import pytest

from containers.helpers import Image, docker, make


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
    image = Image(repository, "", time.monotonic() - started, result.stdout + result.stderr)
    image.id = docker("image", "inspect", "--format", "{{.Id}}", image.tag).strip()
    return image


@pytest.fixture(scope="session")
def published_image(built_image, tmp_path_factory) -> Image:
    """`make publish`: pushed to the loopback registry and compiled against it (into a scratch folder)."""
    compiled = tmp_path_factory.mktemp("compiled")
    result = make("publish", f"IMAGE={built_image.repository}", f"COMPILED={compiled}")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    built_image.compiled = compiled
    return built_image
