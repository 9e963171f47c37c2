"""Running a training on N worker processes on this machine (what kfp.local does).

One worker trains in the step's own process. More workers each get a process
of their own (`python -m pipelines.mnist.distributed <job.json>`), a loopback
port and a `TF_CONFIG` naming every worker's address, so
`MultiWorkerMirroredStrategy` connects them exactly as it connects the pods
of a TFJob; worker 0 is the chief and exports the SavedModel.

Every worker's lines are passed on to the step's log prefixed `worker <i> |`.
When a worker exits with an error, the others would wait for it forever in
their next all-reduce, so every process is stopped and the step fails with
one line naming the worker, its exit code and its last line of output. The
same happens when the step itself is stopped (its `finally`).

The workers share the machine's cores: each is given cores / workers
TensorFlow threads, so that two workers on two cores do not fight over four.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from components.common.errors import InputError, TrainingError
from pipelines.mnist.distributed import WorkerJob, run_job

STOP_GRACE_S = 5.0
POLL_S = 0.2


class WorkerFailed(TrainingError):
    """A worker process exited with an error: the training cannot finish."""


def free_loopback_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now (the OS picks them)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def tf_config(ports: list[int], index: int) -> str:
    """The TF_CONFIG of worker `index` in a cluster of loopback workers."""
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def check_workers(workers: int) -> None:
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")


# TensorFlow's C++ info and warning lines printed before its logging is set up
# (TF_CPP_MIN_LOG_LEVEL cannot silence them); errors are still passed on.
START_UP_NOISE = re.compile(r"^(?:[IW]\d{4} \d\d:\d\d:|WARNING: All log messages before absl::InitializeLog)")


def _relay(stream, prefix: str, tail: deque, emit: Callable[[str], None]) -> None:
    for raw in stream:
        line = raw.rstrip("\n")
        if START_UP_NOISE.match(line):
            continue
        tail.append(line)
        emit(f"{prefix}{line}")


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM every live worker's process group, then SIGKILL what is left after a grace period."""
    live = [p for p in processes if p.poll() is None]
    for process in live:
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for process in live:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


WORKER_COMMAND = (sys.executable, "-m", "pipelines.mnist.distributed")


def run_local_workers(job: WorkerJob, job_file: Path, workers: int, emit: Callable[[str], None] = print,
                      timeout_s: float | None = None, command: tuple[str, ...] = WORKER_COMMAND) -> None:
    """Run `job` on `workers` processes on loopback (each runs `command` + job file); return
    when all exited cleanly.

    Raises WorkerFailed (one line) when a worker fails or `timeout_s` passes.
    """
    job.save(str(job_file))
    ports = free_loopback_ports(workers)
    processes: list[subprocess.Popen] = []
    tails: list[deque] = []
    relays: list[threading.Thread] = []
    try:
        for index in range(workers):
            env = {**os.environ, "TF_CONFIG": tf_config(ports, index), "TF_CPP_MIN_LOG_LEVEL": "2",
                   "PYTHONUNBUFFERED": "1"}
            process = subprocess.Popen(
                [*command, str(job_file)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True)  # its own process group: stopping it stops its children too
            processes.append(process)
            tails.append(deque(maxlen=20))
            relays.append(threading.Thread(target=_relay, args=(process.stdout, f"worker {index} | ",
                                                                tails[-1], emit), daemon=True))
            relays[-1].start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            running = [p.poll() for p in processes].count(None)  # poll() every process: it sets returncode
            failed = [(i, p.returncode) for i, p in enumerate(processes) if p.returncode not in (None, 0)]
            if failed:
                index, code = failed[0]
                _stop(processes)
                relays[index].join(timeout=STOP_GRACE_S)
                raise WorkerFailed(f"worker {index} of {workers} exited with code {code}: "
                                   f"{_last_line(tails[index])}")
            if not running:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise WorkerFailed(f"the {workers} workers did not finish in {timeout_s:.0f}s")
            time.sleep(POLL_S)
    finally:
        _stop(processes)
        for relay in relays:
            relay.join(timeout=STOP_GRACE_S)


def _last_line(tail: deque) -> str:
    lines = [line for line in tail if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def train_locally(job: WorkerJob, workers: int, scratch: Path, emit: Callable[[str], None] = print) -> dict:
    """Train `job` on `workers` local workers (1: in this process); return the chief's history."""
    check_workers(workers)
    if workers == 1:
        return run_job(job, progress=emit)
    job = WorkerJob(**{**job.__dict__, "threads": job.threads or threads_per_worker(workers)})
    run_local_workers(job, scratch / "job.json", workers, emit)
    history_path = Path(job.history_path)
    if not history_path.is_file():
        raise WorkerFailed(f"the chief (worker 0) finished without writing {history_path}")
    return json.loads(history_path.read_text())
