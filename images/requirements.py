"""Write the image's pip requirements into a folder that the Dockerfile copies:
pyproject.toml's pinned dependencies with TensorFlow swapped for the build the
image needs, and its build requirements (the package itself is then installed
offline, without build isolation), in `requirements.txt`; what is installed
without its dependencies in `no-deps.txt`: tensorflow-serving-api (below) and
requirements-no-deps.txt's pins, as `make setup` installs them.

The `tensorflow` wheel carries CUDA kernels the CPU image never uses (1.9 GB of
its 3.4 GB); `tensorflow-cpu` is the same release without them, and the GPU
image asks for `tensorflow[and-cuda]`. `tensorflow-serving-api` declares a
dependency on `tensorflow` by that name, which would pull the full wheel back
in, so it is left out here and installed with `--no-deps` (its other needs,
grpcio and protobuf, come with TensorFlow).

    python3 images/requirements.py tensorflow-cpu images/.requirements

A folder of its own, not pyproject.toml itself, goes into the build: the
dependency layer is then rebuilt only when a pin changes.
"""

import re
import sys
import tomllib
from pathlib import Path

INSTALLED_WITHOUT_DEPS = "tensorflow-serving-api"


def requirements(tensorflow: str, pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())
    pins = project["project"]["dependencies"]
    lines = list(project["build-system"]["requires"])
    for pin in pins:
        name = re.match(r"[A-Za-z0-9_.\-]+", pin)[0].lower()
        if name == INSTALLED_WITHOUT_DEPS:
            continue
        lines.append(tensorflow + pin[len(name):] if name == "tensorflow" else pin)
    return lines


def without_deps(pyproject: Path) -> list[str]:
    pins = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    serving_api = next(pin for pin in pins if pin.lower().startswith(INSTALLED_WITHOUT_DEPS + "=="))
    listed = (pyproject.parent / "requirements-no-deps.txt").read_text().splitlines()
    return [serving_api] + [line for line in listed if line.strip() and not line.startswith("#")]


def write(tensorflow: str, folder: Path, pyproject: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text("\n".join(requirements(tensorflow, pyproject)) + "\n")
    (folder / "no-deps.txt").write_text("\n".join(without_deps(pyproject)) + "\n")


if __name__ == "__main__":
    write(sys.argv[1], Path(sys.argv[2]), Path(__file__).resolve().parents[1] / "pyproject.toml")
