"""Local worker processes: TF_CONFIG on loopback, a dying worker fails the step in one line,
and no process outlives the training."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from components.common.errors import InputError
from pipelines.mnist import launcher
from pipelines.mnist.distributed import WorkerJob

JOB = WorkerJob({"epochs": 1}, "splits.npz", "model", "logs", "history.json", "run-1")


def fake_worker(tmp_path, body: str) -> tuple[str, ...]:
    """A worker command: a small script that sees TF_CONFIG as a real worker does. Each worker
    says it is up by a file `up/<index>` (written whole, then renamed); `all_up()` waits for
    every worker's."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent("""
        import json, os, sys, time
        config = json.loads(os.environ["TF_CONFIG"])
        index = config["task"]["index"]
        up = os.path.join(os.path.dirname(sys.argv[1]), "up")
        os.makedirs(up, exist_ok=True)
        open(os.path.join(up, f".{index}"), "w").write(str(os.getpid()))
        os.rename(os.path.join(up, f".{index}"), os.path.join(up, str(index)))

        def all_up():
            while len([name for name in os.listdir(up) if not name.startswith(".")]) < len(config["cluster"]["worker"]):
                time.sleep(0.01)
    """) + textwrap.dedent(body))
    return (sys.executable, str(script))


@pytest.fixture
def started_pids(monkeypatch) -> list[int]:
    """The pid of every process the launcher starts (each worker's, whether or not it got as
    far as writing anything)."""
    pids = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pids.append(self.pid)

    monkeypatch.setattr(launcher.subprocess, "Popen", Recorded)
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_each_worker_gets_the_cluster_and_its_own_index(tmp_path):
    command = fake_worker(tmp_path, """
        print(json.dumps(config))
        print("threads", json.load(open(sys.argv[1]))["threads"])
        print("I0000 00:00:1795504092.281733   14694 cudart_stub.cc:31] Could not find cuda drivers")
        print("E0000 00:00:1795504237.628065   17357 cuda_platform.cc:52] failed call to cuInit")
    """)
    lines = []
    launcher.run_local_workers(WorkerJob(**{**JOB.__dict__, "threads": 1}), tmp_path / "job.json", 3,
                               lines.append, command=command)
    configs = {}
    for line in lines:
        prefix, _, text = line.partition(" | ")
        if text.startswith("{"):
            configs[int(prefix.removeprefix("worker "))] = json.loads(text)
    assert sorted(configs) == [0, 1, 2]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    for index, config in configs.items():
        assert config == {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    assert lines.count("worker 1 | threads 1") == 1
    # TensorFlow's start-up info lines are dropped, its errors passed on.
    assert not [line for line in lines if "cudart_stub" in line]
    assert len([line for line in lines if "failed call to cuInit" in line]) == 3


def test_a_dying_worker_fails_the_training_in_one_line_and_stops_the_others(tmp_path, started_pids):
    command = fake_worker(tmp_path, """
        all_up()  # the others are running (and would wait for worker 1) when it dies
        if index == 1:
            print("loading shard 1")
            print("RuntimeError: worker 1 ran out of memory")
            sys.exit(3)
        time.sleep(600)  # the chief would wait for worker 1 in its next all-reduce, for ever
    """)
    with pytest.raises(launcher.WorkerFailed) as failure:
        launcher.run_local_workers(JOB, tmp_path / "job.json", 3, lambda line: None, command=command)
    assert str(failure.value) == "worker 1 of 3 exited with code 3: RuntimeError: worker 1 ran out of memory"
    assert sorted(int((tmp_path / "up" / str(i)).read_text()) for i in range(3)) == sorted(started_pids)
    assert not any(alive(pid) for pid in started_pids)


def test_workers_that_do_not_finish_in_time_are_stopped(tmp_path, started_pids):
    command = fake_worker(tmp_path, "time.sleep(600)\n")
    with pytest.raises(launcher.WorkerFailed, match="the 2 workers did not finish in 1s"):
        launcher.run_local_workers(JOB, tmp_path / "job.json", 2, lambda line: None, timeout_s=1,
                                   command=command)
    assert len(started_pids) == 2  # stopped wherever they were: started, or already sleeping
    assert not any(alive(pid) for pid in started_pids)


def test_a_real_training_that_cannot_start_fails_with_the_workers_error(tmp_path):
    job = WorkerJob({"epochs": 1}, str(tmp_path / "missing.npz"), str(tmp_path / "model"), str(tmp_path / "logs"),
                    str(tmp_path / "history.json"), "run-1")
    with pytest.raises(launcher.WorkerFailed,
                       match=r"^worker \d of 2 exited with code 1: error: .*missing.npz: not a splits file"):
        launcher.train_locally(job, 2, tmp_path, lambda line: None)
    assert not (tmp_path / "model").exists()


def test_loopback_ports_are_distinct():
    ports = launcher.free_loopback_ports(4)
    assert len(set(ports)) == 4 and all(1024 <= port < 65536 for port in ports)


def test_threads_are_shared_between_workers(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert [launcher.threads_per_worker(n) for n in (1, 2, 3, 16)] == [8, 4, 2, 1]


def test_zero_workers_is_a_clear_error():
    with pytest.raises(InputError, match="workers must be at least 1, got 0"):
        launcher.check_workers(0)
