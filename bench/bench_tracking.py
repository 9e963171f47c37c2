"""What MLflow tracking costs a step (components.common.tracking), off and on.

Off (no MLFLOW_RUN_ID / MLFLOW_TRACKING_URI): a fresh process imports the module, gets its
run and makes every call; it must not import mlflow. On: a fresh process makes its first
call (importing MLflow's client and one request) against a loopback `mlflow server`
(SQLite store, started here from .venv-mlflow), then the cost of a flush of one epoch's
figures and of a report upload. Median of REPEATS fresh processes each.

    .venv/bin/python bench/bench_tracking.py
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from results import recorded  # this script's folder is on the path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REPEATS = 3

STEP = """
import json, sys, time
started = time.perf_counter()
from components.common import tracking
run = tracking.task_run()
run.set_tags({"bench": "first call"})
first = time.perf_counter() - started
started = time.perf_counter()
run.log_metrics({"loss": 0.5, "accuracy": 0.7, "val_loss": 0.6, "val_accuracy": 0.65}, step=1)
run.flush()
flush = time.perf_counter() - started
started = time.perf_counter()
run.log_artifact(sys.argv[1], "report.html")
upload = time.perf_counter() - started
print(json.dumps({"first_call_s": first, "flush_s": flush, "upload_s": upload, "active": run.active,
                  "mlflow_imported": "mlflow" in sys.modules}))
"""


def step_process(environment: dict, report: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", STEP, str(report)], cwd=REPO, capture_output=True, text=True,
                          env={**environment, "PYTHONPATH": str(REPO)}, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def median(results: list[dict], name: str) -> float:
    return statistics.median(result[name] for result in results)


def main() -> int:
    from pipelines.local.mlflow_server import parse_store, serving

    plain = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.html"
        report.write_text("<html>" + "x" * 200_000 + "</html>")  # about a report's size
        off = [step_process(plain, report) for _ in range(REPEATS)]
        assert not any(r["mlflow_imported"] or r["active"] for r in off), off
        print(f"tracking off: import + every call {median(off, 'first_call_s') * 1000:.1f} ms, "
              f"flush {median(off, 'flush_s') * 1000:.2f} ms; mlflow imported: no")
        store = parse_store(str(Path(folder) / "store"))
        with serving(store, Path(folder) / "server.log") as uri:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(uri)
            experiment = client.create_experiment("bench")
            on = []
            for _ in range(REPEATS):
                run_id = client.create_run(experiment).info.run_id
                on.append(step_process({**plain, "MLFLOW_TRACKING_URI": uri, "MLFLOW_RUN_ID": run_id}, report))
    assert all(r["active"] for r in on), on
    print(f"tracking on:  first call (MLflow's client imported, one request) {median(on, 'first_call_s'):.2f} s, "
          f"an epoch's flush {median(on, 'flush_s') * 1000:.1f} ms, "
          f"a 200 kB report {median(on, 'upload_s') * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    with recorded("bench_tracking", measures=["components/common/tracking.py", "pipelines/local/mlflow_server.py"]):
        status = main()
    sys.exit(status)
