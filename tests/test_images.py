"""The container images, checked statically (there is no Docker engine here):
pinned bases, a non-root user, the package installed from the repository with
its pinned dependencies, nothing of the build left in the final stage; and
every task of every compiled package runs in one of those images at the
package version, which is also the tag `make images` builds and pushes.
"""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from components.images import DEFAULT_REPOSITORY, VERSION

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = [REPO / "images" / "Dockerfile", REPO / "images" / "Dockerfile.gpu"]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CPU_IMAGE, GPU_IMAGE = f"{DEFAULT_REPOSITORY}:{VERSION}", f"{DEFAULT_REPOSITORY}-gpu:{VERSION}"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (the first list holds the ARGs before any FROM)."""
    result = [[]]
    for instruction in instructions(path):
        if instruction[0] == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def base_images(path: Path) -> list[str]:
    args = dict(re.match(r"(\w+)=(\S+)", arg).groups() for kind, arg in stages(path)[0] if kind == "ARG")
    return [re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], arg.split()[0])
            for kind, arg in instructions(path) if kind == "FROM"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned_python_311(dockerfile):
    for image in base_images(dockerfile):
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image), image
        python = re.match(r"python:(\d+\.\d+\.\d+)", image)[1]
        assert python in SpecifierSet(PYPROJECT["project"]["requires-python"]), image


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_final_stage_is_non_root_and_holds_no_build_leftovers(dockerfile):
    *builds, final = stages(dockerfile)[1:]
    assert builds, "multi-stage: the install happens in a build stage"
    kinds = [kind for kind, _ in final]
    user = [arg for kind, arg in final if kind == "USER"]
    assert user and kinds.index("USER") > max(i for i, kind in enumerate(kinds) if kind in ("RUN", "COPY"))
    assert user[-1].split(":")[0] not in ("0", "root")
    assert any(kind == "WORKDIR" for kind in kinds)
    env = " ".join(arg for kind, arg in final if kind == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    runs = " ".join(arg for kind, arg in final if kind == "RUN")
    assert "pip install" not in runs, "the final stage copies the built environment, it does not build"
    if "apt-get install" in runs:
        assert "--no-install-recommends" in runs and "rm -rf /var/lib/apt/lists/*" in runs
    assert any(kind == "COPY" and arg.startswith("--from=") for kind, arg in final)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_package_is_installed_from_the_repository(dockerfile):
    build = stages(dockerfile)[1]
    copied = " ".join(arg for kind, arg in build if kind == "COPY")
    for needed in ("pyproject.toml", "README.md", "components", "pipelines"):
        assert needed in copied
    installs = [arg for kind, arg in build if kind == "RUN" and "pip install" in arg]
    assert installs and all(re.search(r"pip install (\S+ )*\.( |$)", arg) for arg in installs)
    assert "-e " not in " ".join(installs), "a regular install: the sources are not in the final image"
    # pip installs pyproject's pinned dependencies; make sure they are pins.
    assert all("==" in requirement for requirement in PYPROJECT["project"]["dependencies"])


def test_gpu_image_adds_cuda_to_the_pinned_tensorflow():
    (pin,) = [r for r in PYPROJECT["project"]["dependencies"] if r.lower().startswith("tensorflow==")]
    runs = " ".join(arg for kind, arg in instructions(DOCKERFILES[1]) if kind == "RUN")
    assert f'"tensorflow[and-cuda]=={pin.split("==")[1]}"' in runs
    assert "and-cuda" not in DOCKERFILES[0].read_text()


def test_build_context_is_the_package_only():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "allow-list: everything is excluded unless named"
    assert {"!pyproject.toml", "!README.md", "!components/", "!pipelines/"} <= set(patterns)


def compiled_packages() -> list[Path]:
    return sorted((REPO / "compiled").glob("*.yaml"))


@pytest.mark.parametrize("package", compiled_packages(), ids=lambda p: p.name)
def test_every_compiled_task_runs_in_a_project_image_at_the_package_version(package):
    spec = next(yaml.safe_load_all(package.read_text()))
    images = {executor["container"]["image"] for executor in spec["deploymentSpec"]["executors"].values()}
    assert images and images <= {CPU_IMAGE, GPU_IMAGE}, images
    if package.stem.endswith("-gpu"):
        assert GPU_IMAGE in images


def make_dry_run(*args: str) -> str:
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    if "No rule to make target" in done.stderr:
        pytest.skip(f"the Makefile has no target {args[0]} yet")
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_images_builds_and_pushes_the_cpu_image_then_compiles_against_it():
    out = make_dry_run("images")
    lines = out.splitlines()
    build = lines.index(f"docker build -f images/Dockerfile -t {CPU_IMAGE} .")
    push = lines.index(f"docker push {CPU_IMAGE}")
    compile_line = next(i for i, line in enumerate(lines) if "-m pipelines compile --output-dir compiled" in line)
    assert build < push < compile_line, "the packages are compiled once the image they name is pushed"
    assert "Dockerfile.gpu" not in out, "the GPU image (several GB of CUDA) only when asked: GPU=1"
    custom = make_dry_run("images", "IMAGE=registry.example/me/kfp")
    assert f"-t registry.example/me/kfp:{VERSION} ." in custom


def test_make_images_with_gpu_builds_and_pushes_both():
    out = make_dry_run("images", "GPU=1")
    for dockerfile, image in (("images/Dockerfile", CPU_IMAGE), ("images/Dockerfile.gpu", GPU_IMAGE)):
        assert f"docker build -f {dockerfile} -t {image} ." in out
        assert f"docker push {image}" in out
    custom = make_dry_run("images", "GPU=1", "IMAGE=registry.example/me/kfp", "IMAGE_GPU=registry.example/me/kfp-gpu")
    assert f"-t registry.example/me/kfp-gpu:{VERSION} ." in custom


@pytest.mark.parametrize("args, command", [
    (["upload", "PIPELINE=sp500"], "-m pipelines upload sp500"),
    (["schedule", "PIPELINE=sp500", "CRON=0 0 6 * * *"], "-m pipelines schedule create sp500"),
    (["schedule-list"], "-m pipelines schedule list"),
    (["schedule-pause", "NAME=sp500"], "-m pipelines schedule pause sp500"),
    (["schedule-resume", "NAME=sp500"], "-m pipelines schedule resume sp500"),
    (["schedule-delete", "NAME=sp500"], "-m pipelines schedule delete sp500"),
])
def test_make_cluster_targets_call_the_cluster_commands(args, command):
    assert command in make_dry_run(*args).replace('"', "")


# --------------------------------------------------------------------------- the image check before upload/run/schedule

@pytest.fixture
def foreign_package(tmp_path, monkeypatch):
    """compiled/sp500.yaml with IMAGE then set to another image, and a cluster that must never be reached."""
    from pipelines.cluster import commands

    compiled = tmp_path / "compiled"
    compiled.mkdir()
    shutil.copy(REPO / "compiled" / "sp500.yaml", compiled / "sp500.yaml")
    monkeypatch.setenv("IMAGE", "registry.example/me/kfp")
    monkeypatch.setenv("IMAGE_GPU", "registry.example/me/kfp-gpu")
    monkeypatch.setenv("KFP_HOST", "http://127.0.0.1:9")

    def no_cluster():
        raise AssertionError("connected although the package runs in the wrong image")

    monkeypatch.setattr(commands, "connect", no_cluster)
    monkeypatch.chdir(tmp_path)
    return compiled / "sp500.yaml"


@pytest.mark.parametrize("argv", [
    ["upload", "sp500"],
    ["run", "sp500", "threshold=0.5"],
    ["schedule", "create", "sp500", "--cron", "0 0 6 * * *"],
], ids=["upload", "run", "schedule"])
def test_a_package_for_another_image_is_refused_in_one_line_before_connecting(foreign_package, capsys, argv):
    from pipelines import cli
    from pipelines.cluster.packages import package_images

    (compiled_for,) = package_images(foreign_package)
    assert cli.main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: compiled/sp500.yaml runs in {compiled_for}, ")
    assert f"not in the configured image registry.example/me/kfp:{VERSION}" in err
    assert "make compile" in err and "IMAGE" in err


def test_a_package_for_the_configured_image_passes_the_check(foreign_package, monkeypatch):
    from pipelines.cluster.packages import check_images, package_images

    (compiled_for,) = package_images(foreign_package)
    monkeypatch.setenv("IMAGE", compiled_for.rsplit(":", 1)[0])
    check_images(foreign_package)
