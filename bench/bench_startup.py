"""Start-up time of each command-line verb, this checkout beside an earlier commit, in one run.

    python bench/bench_startup.py [--before REF] [--repeats 5]

A verb's start-up is the wall time of `python -m pipelines <verb> ...` from launch
to exit, on arguments that end it right after its first real work would begin:
`predict` against a port nobody listens on, the cluster verbs without KFP_HOST,
`promote`/`rollback` on an empty model store, `serve`/`run`/`compile` with `--help`.
What is measured is what a user waits for before anything happens: interpreter
start, imports (TensorFlow, kfp, the Kubernetes client) and argument parsing.

`--before` is a git ref of the code to compare with (default: `main`; after a merge,
give the commit before it). Its `pipelines/` and `components/` are taken with
`git archive` into a temporary folder; both trees run in this environment, turn
about (before, after, before, ...), so that drift of a shared machine hits both.
Reported per verb: the median and the fastest of `--repeats` runs, and after/before.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from results import recorded  # this script's folder is on the path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def verbs() -> dict[str, list[str]]:
    port = str(free_port())
    return {
        "predict --rest": ["predict", "--model", "sp500", "--rest", "--port", port],
        "predict --grpc": ["predict", "--model", "sp500", "--grpc", "--port", port, "--timeout", "1"],
        "upload": ["upload", "sp500"],
        "schedule list": ["schedule", "list"],
        "promote": ["promote", "sp500", "--model-base-path", "model_store"],
        "rollback": ["rollback", "sp500", "--model-base-path", "model_store"],
        "serve --help": ["serve", "--help"],
        "run --help": ["run", "--help"],
    }


def checkout(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "pipelines", "components"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def seconds(tree: Path, argv: list[str], workdir: Path) -> float:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("KFP_")}
    environment["PYTHONPATH"] = str(tree)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines", *argv], cwd=workdir, env=environment,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=os.environ.get("BENCH_STARTUP_BEFORE", "main"),
                        help="git ref of the code to compare with (default: main)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        before = checkout(args.before, Path(temporary) / "before")
        workdir = Path(temporary) / "work"
        workdir.mkdir()
        trees = {"before": before, "after": ROOT}
        print(f"start-up of each verb, {args.repeats} runs each: before = {args.before}, after = this checkout")
        print(f"{'verb':<16} {'before median':>14} {'(fastest)':>10} {'after median':>13} {'(fastest)':>10} "
              f"{'after/before':>13}")
        for name, argv in verbs().items():
            seconds(ROOT, argv, workdir)  # warm the file cache for both
            seconds(before, argv, workdir)
            times: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(args.repeats):
                for which, tree in trees.items():
                    times[which].append(seconds(tree, argv, workdir))
            b, a = statistics.median(times["before"]), statistics.median(times["after"])
            print(f"{name:<16} {b:>13.2f}s {min(times['before']):>9.2f}s {a:>12.2f}s {min(times['after']):>9.2f}s "
                  f"{a / b:>13.2f}", flush=True)
    return 0


if __name__ == "__main__":
    with recorded("bench_startup", measures=["pipelines/__main__.py", "pipelines/registry.py", "pipelines/cli/*.py"]):
        status = main()
    sys.exit(status)
