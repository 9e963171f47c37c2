"""Build the step image with whatever Docker engine DOCKER_HOST (or the default
socket) reaches: `make image` (CPU) and `make image GPU=1` (also the GPU image).

    python3 images/build.py --tag IMAGE:VERSION [--gpu] [--base PYTHON_IMAGE]

Three things a plain `docker build` gets wrong on many machines, handled here:

- **The base image.** PYTHON_IMAGE (default python:3.11.14-slim-bookworm) is
  pulled if it is not already present. Where its registry cannot be reached
  (an air-gapped or proxied machine), this says so in one line and builds an
  equivalent base from Debian's own packages instead (mmdebstrap: Debian 12,
  python3 3.11 and its venv module), imported as BASE_FALLBACK.
- **The package index and its CA.** pip inside the build uses the host pip's
  configured index (`pip config`) and CA bundle, given to the build as BuildKit
  secrets: mounted for the one install command, never written into a layer.
  PIP_INDEX_URL and PIP_CA_BUNDLE override what pip's configuration says.
- **BuildKit.** Secrets need BuildKit: the `docker` client is used through
  `buildx` when it has it, or with DOCKER_BUILDKIT=1 when it is a classic
  client (before 23) that carries BuildKit itself; otherwise another `docker`
  on PATH that can (Debian's docker.io client can), or one line saying what to
  install.

Only the standard library is used: this runs before any virtual environment.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requirements  # images/requirements.py, beside this file

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "images" / ".requirements"  # written here, copied by the Dockerfile (git-ignored)
DEFAULT_BASE = "python:3.11.14-slim-bookworm"
BASE_FALLBACK = "kfp-ml-pipelines-base:bookworm-python3.11"
PULL_TIMEOUT_S = 120


class BuildError(Exception):
    """A reason the build cannot go on, said in one line."""


@dataclass
class Docker:
    """A docker client that can build with BuildKit, and how to ask it to."""
    executable: str
    build: list[str]  # the words after the executable: ["buildx", "build", "--load"] or ["build"]
    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout: float | None = None,
            quiet: bool = True) -> subprocess.CompletedProcess:
        output = subprocess.PIPE if quiet else None
        try:
            result = subprocess.run([self.executable, *args], env={**os.environ, **self.env}, text=True,
                                    stdout=output, stderr=output, timeout=timeout)
        except subprocess.TimeoutExpired as timed_out:
            raise BuildError(f"'docker {' '.join(args)}' did not finish within {timeout:.0f}s") from timed_out
        if check and result.returncode != 0:
            detail = (result.stderr or "").strip().splitlines()
            raise BuildError(f"'docker {' '.join(args[:2])}' failed: {detail[-1] if detail else 'exit ' + str(result.returncode)}")
        return result


def docker_clients() -> list[str]:
    """DOCKER (default `docker`) first, then every other docker on PATH, then Debian's."""
    first = os.environ.get("DOCKER") or "docker"
    found = [shutil.which(first) or first]
    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        candidate = os.path.join(folder, "docker")
        if os.access(candidate, os.X_OK) and os.path.realpath(candidate) not in map(os.path.realpath, found):
            found.append(candidate)
    return found


def find_buildkit_client() -> Docker:
    for executable in docker_clients():
        if not shutil.which(executable):
            continue
        probe = subprocess.run([executable, "buildx", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return Docker(executable, ["buildx", "build", "--load"], {})
        version = subprocess.run([executable, "version", "--format", "{{.Client.Version}}"],
                                 capture_output=True, text=True).stdout.strip()
        if version and version.split(".")[0].isdigit() and int(version.split(".")[0]) < 23:
            return Docker(executable, ["build"], {"DOCKER_BUILDKIT": "1"})
    raise BuildError("no docker client with BuildKit found: install the buildx plugin (docker-buildx) "
                     "or Debian's docker.io client")


def check_engine(docker: Docker) -> str:
    result = docker.run("version", "--format", "{{.Server.Version}}", check=False, timeout=30)
    if result.returncode != 0:
        where = os.environ.get("DOCKER_HOST") or "the default socket (/var/run/docker.sock)"
        raise BuildError(f"no Docker engine answers at {where}: start dockerd or set DOCKER_HOST")
    return result.stdout.strip()


def ensure_base(docker: Docker, base: str) -> str:
    """The base image to build on: `base` if present or pullable, else the Debian-built equivalent."""
    if docker.run("image", "inspect", base, check=False).returncode == 0:
        return base
    try:
        pulled = docker.run("pull", base, check=False, timeout=PULL_TIMEOUT_S)
        reason = (pulled.stderr or "").strip().splitlines()[-1:] if pulled.returncode else None
    except BuildError as timed_out:
        reason = [str(timed_out)]
    if reason is None:
        return base
    print(f"base image {base} cannot be pulled ({reason[0] if reason else 'unknown error'}); "
          f"using {BASE_FALLBACK}, built from Debian's packages", flush=True)
    if docker.run("image", "inspect", BASE_FALLBACK, check=False).returncode != 0:
        build_debian_base(docker)
    return BASE_FALLBACK


def build_debian_base(docker: Docker) -> None:
    """Debian 12 (bookworm) minbase with python3 and python3-venv, imported as BASE_FALLBACK."""
    if not shutil.which("mmdebstrap"):
        raise BuildError("mmdebstrap is needed to build a base image from Debian's packages "
                         "(apt-get install mmdebstrap), or set PYTHON_IMAGE to an image you can pull")
    with tempfile.TemporaryDirectory() as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        started = time.monotonic()
        made = subprocess.run(["mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                               "bookworm", str(rootfs)], capture_output=True, text=True)
        if made.returncode != 0:
            raise BuildError(f"mmdebstrap failed: {made.stderr.strip().splitlines()[-1:]}")
        docker.run("import", "--change", "CMD [\"python3\"]", str(rootfs), BASE_FALLBACK)
        print(f"built {BASE_FALLBACK} in {time.monotonic() - started:.0f}s", flush=True)


def host_pip_settings() -> tuple[str, Path | None]:
    """(pip.conf text for the build, CA bundle path) from the host pip's configuration.

    Only what reaches the index from inside a build goes in: the index URL and
    http(s) extra indexes; local find-links and file:// indexes stay on the host.
    """
    config: dict[str, str] = {}
    listed = None
    # This Python's pip, else the pip on PATH (Debian's python3 often comes without pip).
    for command in ([sys.executable, "-m", "pip"], ["pip3"], ["pip"]):
        if command[0] == sys.executable or shutil.which(command[0]):
            listed = subprocess.run([*command, "config", "list"], capture_output=True, text=True)
            if listed.returncode == 0:
                break
    for line in (listed.stdout if listed and listed.returncode == 0 else "").splitlines():
        key, _, value = line.partition("=")
        config[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    index = os.environ.get("PIP_INDEX_URL") or config.get("index-url", "")
    extra = [url for url in (os.environ.get("PIP_EXTRA_INDEX_URL") or config.get("extra-index-url", "")).split()
             if url.startswith(("http://", "https://"))]
    ca = os.environ.get("PIP_CA_BUNDLE") or os.environ.get("PIP_CERT") or config.get("cert", "")
    lines = ["[global]"]
    if index:
        lines.append(f"index-url = {index}")
    if extra:
        lines.append(f"extra-index-url = {' '.join(extra)}")
    ca_path = None
    if ca:
        ca_path = Path(ca)
        if not ca_path.is_file():
            raise BuildError(f"PIP_CA_BUNDLE '{ca}' is not a file")
        lines.append("cert = /run/secrets/pipca")
    return "\n".join(lines) + "\n", ca_path


def build(tag: str, gpu: bool, base: str) -> None:
    docker = find_buildkit_client()
    engine = check_engine(docker)
    base = ensure_base(docker, base)
    pip_conf, ca = host_pip_settings()
    variant = "gpu" if gpu else "cpu"
    requirements.write("tensorflow[and-cuda]" if gpu else "tensorflow-cpu", REQUIREMENTS / variant,
                       REPO / "pyproject.toml")
    with tempfile.TemporaryDirectory() as scratch:
        conf_file = Path(scratch) / "pip.conf"
        conf_file.write_text(pip_conf)
        command = [*docker.build, "--network", "host", "-f", str(REPO / "images" / "Dockerfile"),
                   "--build-arg", f"PYTHON_IMAGE={base}",
                   "--build-arg", f"REQUIREMENTS={REQUIREMENTS.relative_to(REPO) / variant}",
                   "--secret", f"id=pipconf,src={conf_file}", "-t", tag]
        if ca:
            command += ["--secret", f"id=pipca,src={ca}"]
        index = next((line.split("= ", 1)[1] for line in pip_conf.splitlines() if line.startswith("index-url")),
                     "pip's default index")
        print(f"building {tag} on {base} with {docker.executable} {' '.join(docker.build)} "
              f"(engine {engine}); pip: {index}, CA bundle: {ca or 'the one pip carries'}", flush=True)
        started = time.monotonic()
        result = docker.run(*command, str(REPO), check=False, quiet=False)
        if result.returncode != 0:
            raise BuildError(f"building {tag} failed (the build's output is above)")
    size = int(docker.run("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    print(f"built {tag}: {size / 1e9:.2f} GB in {time.monotonic() - started:.0f}s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the pipelines' step image.")
    parser.add_argument("--tag", required=True, help="IMAGE:VERSION")
    parser.add_argument("--gpu", action="store_true", help="the GPU image (tensorflow[and-cuda])")
    parser.add_argument("--base", default=os.environ.get("PYTHON_IMAGE") or DEFAULT_BASE,
                        help=f"the Python base image (default {DEFAULT_BASE})")
    args = parser.parse_args(argv)
    try:
        build(args.tag, args.gpu, args.base)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: image build stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
