"""What a step costs in a container: the container runner against the in-process
runner, side by side in one run (`make bench`; needs `make image` first and a
Docker engine at DOCKER_HOST, skipped with a message otherwise).

1. Start-up: a Python process that imports the package (what every step does
   before its work), in a hardened container of the image against a subprocess
   of this environment, in alternating pairs; the median of each and the
   container's overhead.
2. A whole sp500 run (3 epochs) with each runner, one after the other, each into
   a model store of its own (both make the same first deploy): each
   step's wall time from the run summary, and the difference per step.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import recorded  # this script's folder is on the path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.common.images import cpu_image  # noqa: E402
from pipelines.local.containers import ContainerSettings  # noqa: E402

PAIRS = 5
IMPORTS = "import components.common.images, pipelines.registry"
HEAVY_IMPORTS = "import tensorflow, lightgbm, polars"


def hardened_run(image: str, code: str) -> list[str]:
    args = ContainerSettings().run_args()
    return ["docker", "run", "--rm", "--network", "none", "--user", args["user"], "--read-only",
            "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--entrypoint", "python3", image, "-c", code]


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - started


def start_up(image: str) -> None:
    print(f"start-up, {PAIRS} alternating pairs (median s)")
    print(f"  {'what':<34} {'in-process':>10} {'container':>10} {'overhead':>9}")
    for label, code in (("python + the package", IMPORTS), ("+ tensorflow, lightgbm, polars", HEAVY_IMPORTS)):
        local, container = [], []
        timed([sys.executable, "-c", code])  # warm the page cache on both sides
        timed(hardened_run(image, code))
        for _ in range(PAIRS):
            local.append(timed([sys.executable, "-c", code]))
            container.append(timed(hardened_run(image, code)))
        a, b = statistics.median(local), statistics.median(container)
        print(f"  {label:<34} {a:>10.2f} {b:>10.2f} {b - a:>+9.2f}")


def step_times(output: str) -> dict[str, float]:
    summary = output[output.rindex("pipeline sp500:"):]
    return {name: float(seconds) for name, seconds in re.findall(r"^  (\S+)\s+SUCCESS\s+([\d.]+)s", summary, re.M)}


def whole_run() -> None:
    results = {}
    for runner in ("subprocess", "docker"):
        # Each run into a model store of its own, so that both make the same first deploy.
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "pipelines", "run", "sp500", "epochs=3", "threshold=0.0",
                                   "--runner", runner], cwd=scratch, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
            if done.returncode != 0:
                print(f"sp500 with --runner {runner} failed:\n{done.stderr[-2000:]}")
                return
            results[runner] = (step_times(done.stdout), time.perf_counter() - started)
    (local, local_total), (container, container_total) = results["subprocess"], results["docker"]
    print("\nsp500 (3 epochs), each step's wall time (s)")
    print(f"  {'step':<18} {'in-process':>10} {'container':>10} {'overhead':>9}")
    for step, seconds in local.items():
        if step not in container:
            print(f"  {step:<18} {seconds:>10.1f} {'did not run':>10}")
            continue
        print(f"  {step:<18} {seconds:>10.1f} {container[step]:>10.1f} {container[step] - seconds:>+9.1f}")
    print(f"  {'whole run':<18} {local_total:>10.1f} {container_total:>10.1f} {container_total - local_total:>+9.1f}")


def main() -> int:
    image = cpu_image()
    probe = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"skipped: no image {image} in the Docker engine (make image), or no engine at DOCKER_HOST")
        return 0
    with recorded("bench_containers", measures=["images/*", "pipelines/local/containers.py"]):
        start_up(image)
        whole_run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
