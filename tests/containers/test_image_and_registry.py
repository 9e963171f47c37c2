"""`make image` and `make publish` against a real engine and a real registry on
loopback, and the upload guard asking that registry before anything reaches a
cluster."""

import re
import subprocess
import sys

import pytest

from components.common.images import VERSION
from containers.helpers import REPO, docker, make
from pipelines.cluster.image_registry import check_image

pytestmark = pytest.mark.container


def in_image(image: str, script: str) -> str:
    return docker("run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                  "--security-opt", "no-new-privileges", "--entrypoint", "sh", image, "-c", script)


def test_image_holds_the_package_and_no_build_leftovers_or_secrets(built_image):
    print(built_image.build_output[-600:])
    assert re.search(r"built \S+: [\d.]+ GB in \d+s", built_image.build_output)
    config_user = docker("image", "inspect", "--format", "{{.Config.User}}", built_image.tag).strip()
    assert config_user == "1000:1000"
    # The steps' imports work under the hardening the runner uses, as the image's user and as root.
    probe = ("import components, pipelines, kfp, tensorflow, lightgbm, talib, polars, pyarrow, kubernetes; "
             "from kfp.dsl import executor_main; print('imports ok', tensorflow.__version__)")
    assert "imports ok" in in_image(built_image.tag, f"python3 -c \"{probe}\"")
    # Nothing of the build: no sources, no pip configuration, no secrets, no CUDA build of TensorFlow.
    leftovers = in_image(built_image.tag,
                         "ls -d /src /etc/pip.conf /run/secrets /root/.cache/pip 2>/dev/null; "
                         "pip list --format freeze 2>/dev/null | grep -i -E '^(tensorflow|nvidia)' ")
    assert "/src" not in leftovers and "pip.conf" not in leftovers and "/run/secrets" not in leftovers
    assert re.search(r"^tensorflow[-_]cpu==", leftovers, re.M), leftovers
    assert not re.search(r"^(tensorflow==|nvidia)", leftovers, re.M), leftovers
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", built_image.tag)
    assert "BEGIN CERTIFICATE" not in history and "index-url" not in history


def test_publish_pushes_the_tag_and_compiles_the_packages_against_it(published_image):
    answer = check_image(published_image.tag)
    assert answer.found is True, answer.detail
    sp500 = (published_image.compiled / "sp500.yaml").read_text()
    assert f"image: {published_image.tag}" in sp500
    assert "ghcr.io" not in sp500


def upload(compiled_dir, image_repository: str) -> subprocess.CompletedProcess:
    """`upload sp500` as `make upload` runs it, to a Pipelines API that is not there."""
    return subprocess.run([sys.executable, "-m", "pipelines", "upload", "sp500", "--compiled-dir", str(compiled_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "IMAGE": image_repository,
                               "KFP_HOST": "http://127.0.0.1:9"})


def test_a_package_for_a_tag_missing_from_the_registry_is_refused_before_upload(published_image, registry,
                                                                                 tmp_path):
    missing = f"{registry}/kfp-ml-pipelines-never-pushed"
    result = make("compile", f"IMAGE={missing}", f"COMPILED={tmp_path}")
    assert result.returncode == 0, result.stderr
    refused = upload(tmp_path, missing)
    assert refused.returncode != 0
    error = refused.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert error.startswith(f"error: {tmp_path}/sp500.yaml runs in {missing}:{VERSION}, which its registry "
                            "does not have")
    assert "answered 404" in error and "make image publish" in error

    # The published package passes the guard and goes on to the Pipelines API (absent here).
    passed = upload(published_image.compiled, published_image.repository)
    assert "which its registry does not have" not in passed.stderr
    assert "127.0.0.1:9" in passed.stderr
