"""What each step of each pipeline uses, beside the requests and limits it asks a cluster for.

    python bench/bench_step_resources.py [sp500 mnist crypto]   (make bench runs all three)

Runs each pipeline locally twice with its default parameters on the shipped data, into a model store
of its own, with threshold=0 so that every step runs: the first run deploys version 1; the second,
with another seed and tolerance=1, has its gate score version 1 as the champion on its own rows
and deploys version 2. A step's row is its larger figure of the two runs.

kfp.local runs every step as its own process, and the local runner reads the kernel's account of
each one when it exits (pipelines.local.attach.Exited: the largest resident memory of
the step's process or of a process it waited for, and the CPU seconds of all of them). The table
puts them beside the step's resources (`resources` in pipelines/<name>/spec.py, the shared steps'
in components/settings/resources.py), and checks that each peak fits under the step's memory
request (a pod above its request may be evicted first; above its limit it is killed). crypto's
rows are sized for the full competition data, which bench_crypto.py's pipeline run measures.
"""

import contextlib
import sys
import tempfile
from pathlib import Path

from kubernetes.utils.quantity import parse_quantity
from results import recorded  # this script's folder is on the path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.settings.resources import resources_for  # noqa: E402
from pipelines import registry  # noqa: E402
from pipelines.local.run import run_local  # noqa: E402


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity (512Mi, 2Gi, 1G...) in MiB, read by the Kubernetes client's parser."""
    return float(parse_quantity(quantity)) / 2**20


def measure(name: str, work: Path) -> tuple[bool, list[str]]:
    """Run `name` twice; its table rows, and whether both succeeded with every peak under its request."""
    spec = registry.get(name)
    runs = []
    for run, extra in enumerate(({}, {"seed": 7, "tolerance": 1.0})):
        params = {"model_base_path": str(work / "model_store"), "threshold": 0.0, **extra}
        with contextlib.redirect_stdout(sys.stderr):  # the run's own lines: on the terminal, not in the results
            runs.append(run_local(name, params, run_dir=work / f"{name}-{run + 1}"))
    by_component: dict[str, list] = {}
    for result in runs:
        for task in result.tasks.values():  # a loop's iterations (`train-trial #2`) share one component
            by_component.setdefault(task.name.split(" #")[0], []).append(task)
    rows, fits = [], all(result.succeeded for result in runs)
    for component, tasks in by_component.items():
        resources = resources_for(spec.resources, component, name)
        peak = max(t.peak_rss_mib for t in tasks)
        wall, cpu = (" - ".join(dict.fromkeys(f"{f(values):.1f}" for f in (min, max)))
                     for values in ([t.seconds for t in tasks], [t.cpu_seconds for t in tasks]))
        cores = max(t.cpu_seconds / max(t.seconds, 0.01) for t in tasks)
        under = peak <= mebibytes(resources.memory)
        fits = fits and under
        label = component + (f" (x{len(tasks) // len(runs)})" if len(tasks) > len(runs) else "")
        rows.append(f"{name:<7} {label:<24} {wall:>11} {cpu:>11} {cores:>6.2f} {peak:>9,.0f}   "
                    f"{resources.cpu:>5} / {resources.cpu_limit:<4} {resources.memory:>6} / "
                    f"{resources.memory_limit:<6} {'yes' if under else 'NO'}")
    rows += [f"{name}: run {i + 1} FAILED: {result.error}" for i, result in enumerate(runs) if not result.succeeded]
    return fits, rows


def main(names: list[str]) -> int:
    print(f"{'':<7} {'step':<24} {'wall s':>11} {'CPU s':>11} {'cores':>6} {'peak MiB':>9}   "
          f"{'CPU request/limit':<17} {'memory request/limit':<20} peak under request")
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="bench-step-resources-") as work:
        for name in names:
            fits, rows = measure(name, Path(work))
            verdicts.append(fits)
            print("\n".join(rows), flush=True)
    print("every step's peak under its memory request: " + ("yes" if all(verdicts) else "NO"))
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    with recorded("bench_step_resources", measures=["pipelines/*/spec.py", "pipelines/*/steps.py",
                                                    "components/settings/resources.py"]):
        status = main(sys.argv[1:] or registry.names())
    sys.exit(status)
