"""Ctrl-C and SIGTERM: one `interrupted: …` line, exit 130 or 143, no traceback, nothing half-written,
and a local run's folder summarised as INTERRUPTED with what had finished."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO, partial_files


def start_cli(*args: str, cwd: Path, **env: str) -> subprocess.Popen:
    """`python -m pipelines ...` in its own process group, as a terminal's foreground job."""
    return subprocess.Popen([sys.executable, "-m", "pipelines", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), **env})


def read_until(process: subprocess.Popen, pattern: str, timeout_s: float = 300) -> list[str]:
    """stdout lines up to the first matching `pattern` (fails if the command ends first)."""
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("ended before '%s': %s %s" % (pattern, "".join(lines)[-3000:], process.stderr.read()))
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"no '{pattern}' within {timeout_s}s")


def interrupt(process: subprocess.Popen, signum: int, whole_group: bool) -> tuple[str, str]:
    """Ctrl-C on a terminal signals the whole foreground group; `kill PID` the command alone."""
    children = psutil.Process(process.pid).children(recursive=True)
    if whole_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    rest, errors = process.communicate(timeout=120)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"step processes left running: {alive}"
    return rest, errors


def assert_one_interrupted_line(errors: str, terminal: str) -> str:
    shown = [line for line in errors.splitlines() if line.strip()]
    assert len(shown) == 1 and shown[0].startswith("interrupted: "), errors
    assert "Traceback" not in terminal and "KeyboardInterrupt" not in terminal, terminal[-3000:]
    return shown[0]


@pytest.mark.e2e
@pytest.mark.parametrize(("signum", "whole_group", "exit_code"), [
    (signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)])
def test_an_interrupted_run_says_so_in_one_line_and_summarises_what_finished(tmp_path, signum, whole_group,
                                                                           exit_code):
    process = start_cli("run", "sp500", cwd=tmp_path)
    shown = read_until(process, r"finished with status .*SUCCESS")
    first_step = re.search(r"Task '([^']+)'", re.sub(r"\x1b\[[0-9;]*m", "", shown[-1]))[1]
    # Into the long step, once it is training (its first epoch line): preprocess can end within a
    # second, and a signal between steps would stop no step (a run stopped there says so, but this
    # test is about a step). The model's export follows the last epoch.
    shown += read_until(process, r"^\s*epoch \d+/\d+ loss")
    rest, errors = interrupt(process, signum, whole_group)
    assert process.returncode == exit_code, errors
    line = assert_one_interrupted_line(errors, "".join(shown) + rest + errors)
    stopped = re.match(r"interrupted: step '([^']+)' stopped by (SIG\w+); what finished is in (\S+)$", line)
    assert stopped, line
    assert stopped[2] == signal.Signals(signum).name
    run_dir = next((tmp_path / "runs" / "sp500").iterdir())
    assert Path(stopped[3]) == run_dir / "index.html"
    summary = (run_dir / "summary.txt").read_text()
    assert summary.startswith("pipeline sp500: INTERRUPTED in ")
    assert re.search(rf"^  {first_step} +SUCCESS ", summary, re.M), summary
    assert re.search(rf"^  {stopped[1]} +STOPPED ", summary, re.M), summary
    index = (run_dir / "index.html").read_text()
    assert "INTERRUPTED" in index and f"{first_step}" in index
    # Nothing half-written: the stopped step's outputs are gone, and no temporaries are left.
    assert list(run_dir.glob(f"artifacts/*/{stopped[1]}")) == []
    assert partial_files(tmp_path) == [] and not (run_dir / "workspace").exists()
    assert not (tmp_path / "model_store").exists()


def connected(listener) -> socket.socket:
    """The command's connection to `listener`, once it is made: the command then waits for an
    answer that never comes, and its signal handlers are in place (the command line installs
    them before any verb runs). Kept open, so that the command's wait goes on."""
    listener.settimeout(120)
    return listener.accept()[0]


def test_an_interrupted_predict_says_so_in_one_line(tmp_path, stalled_listener, stalled_port):
    process = start_cli("predict", "--model", "sp500", "--rest", "--port", str(stalled_port), cwd=tmp_path)
    with connected(stalled_listener):
        rest, errors = interrupt(process, signal.SIGINT, whole_group=True)
    assert process.returncode == 130
    assert "predict" in assert_one_interrupted_line(errors, rest + errors)


def test_an_interrupted_cluster_command_says_so_in_one_line(tmp_path, stalled_listener, stalled_port):
    process = start_cli("schedule", "list", cwd=tmp_path, KFP_HOST=f"http://127.0.0.1:{stalled_port}")
    with connected(stalled_listener):  # the health check's request
        rest, errors = interrupt(process, signal.SIGTERM, whole_group=False)
    assert process.returncode == 143
    assert "schedule" in assert_one_interrupted_line(errors, rest + errors)


def test_a_stopped_server_says_so_in_one_line(tmp_path):
    process = start_cli("serve", "--model-base-path", str(tmp_path / "store"), "--wait",
                        "--grpc-port", "0", "--rest-port", "0", cwd=tmp_path)
    read_until(process, r"Ctrl-C stops", timeout_s=120)
    rest, errors = interrupt(process, signal.SIGINT, whole_group=True)
    assert process.returncode == 130
    assert "server stopped" in assert_one_interrupted_line(errors, rest + errors)


@pytest.mark.e2e
def test_ctrl_c_under_make_adds_no_line_of_make_s_own(tmp_path):
    """`make run` and Ctrl-C: the run's one line, and no `make: *** [run] Interrupt` after it."""
    (tmp_path / "pyproject.toml").write_text('version = "0"\n')  # the Makefile reads the version there
    # As from a terminal: SIGINT handled by default, also when the tests run in the background
    # (a non-interactive shell starts background jobs with SIGINT ignored, and make inherits that).
    process = subprocess.Popen(["make", "-s", "-f", str(REPO / "Makefile"), "-o", "setup", "run",
                                f"PY={sys.executable}", "PIPELINE=sp500"], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    shown = read_until(process, r"finished with status .*SUCCESS")
    shown += read_until(process, r"Executing task")
    rest, errors = interrupt(process, signal.SIGINT, whole_group=True)
    assert process.returncode in (130, -signal.SIGINT)  # make dies of the signal it was sent
    assert_one_interrupted_line(errors, "".join(shown) + rest + errors)
    assert "make:" not in rest + errors
