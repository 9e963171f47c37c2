"""The one place a local run attaches to kfp.local (pipelines.local.attach): the kfp internals it relies
on, the task handler's hooks, and a step that fails after a ParallelFor, run through kfp.local."""

import json
import re
import threading
import types

import pytest
from kfp import dsl, local
from kfp.dsl import Metrics, Output
from kfp.local import docker_task_handler, status, subprocess_task_handler

from pipelines import registry
from pipelines.local import attach
from pipelines.local.report import summary
from pipelines.local.run import run_local


def test_every_kfp_internal_the_attachment_relies_on_is_as_it_expects():
    changed = attach.changed_kfp_internals()
    assert changed == [], "kfp.local changed under the local runner:\n" + "\n".join(changed)


def test_a_changed_kfp_internal_is_named_in_one_line(monkeypatch):
    """The check can fail, and says which internal moved and what the runner used it for."""
    monkeypatch.setitem(attach.KFP_INTERNALS, "kfp.local.subprocess_task_handler.run_local_subprocess(command)",
                        "a role")
    monkeypatch.setitem(attach.KFP_INTERNALS, "kfp.local.task_dispatcher.TaskHandlerRegistry", "another role")
    monkeypatch.setattr(attach, "KFP_DISPATCH_READS", (*attach.KFP_DISPATCH_READS, "handler_for(runner)"))
    assert attach.changed_kfp_internals() == [
        "kfp.local.subprocess_task_handler.run_local_subprocess (a role) now takes (full_command, env_vars), "
        "not (command)",
        "kfp.local.task_dispatcher.TaskHandlerRegistry (another role) is gone from kfp: module "
        "'kfp.local.task_dispatcher' has no attribute 'TaskHandlerRegistry'",
        f"{attach.KFP_DISPATCH} no longer reads `handler_for(runner)` at every task: the local runner's task "
        "handler would not be used"]


def test_a_run_on_a_changed_kfp_is_refused_before_any_step_in_one_line(monkeypatch):
    from components.common.errors import PipelineError

    monkeypatch.setattr(attach, "KFP_DISPATCH_READS", ("handler_for(runner)",))
    attachment = attach.Attachment(attach.launch_subprocess, [], threading.Event())
    with pytest.raises(PipelineError, match=r"^the installed kfp changed what the local runner relies on: "
                                            r".* no longer reads `handler_for\(runner\)`"):
        with attach.attached(local.SubprocessRunner(), attachment):
            pass
    assert subprocess_task_handler.SubprocessTaskHandler.__name__ == "SubprocessTaskHandler"


def test_a_run_in_subprocesses_needs_nothing_of_kfps_docker_handler(monkeypatch):
    """docker-py, which kfp's Docker handler imports, is in the `local` extra alone."""
    monkeypatch.setitem(attach.KFP_INTERNALS, "kfp.local.docker_task_handler.NotThere", "a container's need")
    assert attach.changed_kfp_internals(containers=False) == []
    assert [line.split(" ")[0] for line in attach.changed_kfp_internals()] == [
        "kfp.local.docker_task_handler.NotThere"]


class Recorder:
    """A hook that records what it hears, and gives each step one variable."""

    def __init__(self):
        self.heard = []

    def started(self, task):
        self.heard.append(("started", task.label))
        return {"HOOKED": task.task}

    def ended(self, task, exited):
        self.heard.append(("ended", task.label, exited.succeeded))


def task_command(root: str, folder: str) -> list[str]:
    executor_input = {"inputs": {"parameterValues": {"x": 1}},
                      "outputs": {"outputFile": f"{folder}/executor_output.json"}}
    return ["sh", "-c", "step", "--executor_input", json.dumps(executor_input)]


def test_the_handler_starts_the_step_with_the_hooks_variables_and_tells_them_its_end(tmp_path):
    recorder, launched = Recorder(), []

    def launch(step, emit):
        launched.append(step.environment)
        emit("a line")
        return attach.Exited(3)

    handler_class = attach.handler_class(attach.Attachment(launch, [recorder], threading.Event()))
    root = str(tmp_path)
    handler = handler_class(image="img", full_command=task_command(root, f"{root}/job/for-loop-1-iteration-2/t"),
                            pipeline_root=root, runner=None, env_vars={"FROM_KFP": "1"})
    assert handler.run() == status.Status.FAILURE
    assert launched == [{"FROM_KFP": "1", "HOOKED": "t"}]
    assert recorder.heard == [("started", "t #2"), ("ended", "t #2", False)]


def test_no_step_starts_once_the_run_is_stopped(tmp_path):
    stopped, recorder, launched = threading.Event(), Recorder(), []
    handler_class = attach.handler_class(attach.Attachment(lambda step, emit: launched.append(step) or attach.Exited(0),
                                                           [recorder], stopped))
    root = str(tmp_path)
    handler = handler_class("img", task_command(root, f"{root}/job/t"), root, None, None)
    assert handler.run() == status.Status.SUCCESS and len(launched) == 1
    stopped.set()
    assert handler.run() == status.Status.FAILURE and len(launched) == 1
    assert recorder.heard == [("started", "t"), ("ended", "t", True)]


def test_a_command_without_kfps_executor_input_names_what_changed(tmp_path):
    handler_class = attach.handler_class(attach.Attachment(lambda step, emit: attach.Exited(0), [], threading.Event()))
    with pytest.raises(RuntimeError, match="cannot read kfp's executor input on a task's command line"):
        handler_class("img", ["sh", "-c", "step"], str(tmp_path), None, None).run()


@pytest.mark.parametrize("runner, module, name", [
    (local.SubprocessRunner(use_venv=False), subprocess_task_handler, "SubprocessTaskHandler"),
    (local.DockerRunner(), docker_task_handler, "DockerTaskHandler")])
def test_one_handler_is_swapped_for_the_run_and_put_back_with_kfps_print(runner, module, name):
    import builtins

    original, print_before = getattr(module, name), builtins.print
    attachment = attach.Attachment(attach.launch_subprocess, [], threading.Event())
    with attach.attached(runner, attachment):
        assert getattr(module, name).__name__ == "AttachedTaskHandler"
        builtins.print = lambda *args, **kwargs: None  # as kfp leaves it when its tasks overlap
    assert getattr(module, name) is original and builtins.print is print_before


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def score(x: float, metrics: Output[Metrics]) -> float:
    print(f"scoring {x}")
    metrics.log_metric("accuracy", x)
    return x / 3


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fail_after_sweep(x: float):
    print("checking the sweep")
    raise ValueError(f"bad value {x}")


@dsl.pipeline
def sweep_then_fail(x: float = 1.0):
    """A ParallelFor, as mnist's sweep, then a step that fails."""
    with dsl.ParallelFor([0.1, 0.2, 0.3]) as item:
        scores = score(x=item)
    fail_after_sweep(x=x).after(scores)


def test_a_step_failing_after_a_parallel_for_is_one_error_line_and_its_traceback_only_in_the_log(
        tmp_path, monkeypatch, capsys):
    entry = types.SimpleNamespace(make_pipeline=lambda gpu: sweep_then_fail, gate_task="none", gate_metric="",
                                  baseline_metric="")
    monkeypatch.setattr(registry, "get", lambda name: entry)
    result = run_local("toy", {}, run_dir=tmp_path / "run")
    terminal = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out + "\n" + summary(result, entry))
    assert {name: task.status for name, task in result.tasks.items()} == {
        "score #0": "SUCCESS", "score #1": "SUCCESS", "score #2": "SUCCESS", "fail-after-sweep": "FAILURE"}
    assert result.error == "step 'fail-after-sweep' failed: ValueError: bad value 1.0" and result.exit_code == 1
    error_lines = [line for line in terminal.splitlines() if "error: " in line or "ValueError" in line]
    assert error_lines == [f"error: {result.error}"], terminal
    assert "Traceback" not in terminal and "raise ValueError" not in terminal, terminal
    assert "    checking the sweep" in terminal.splitlines() and "    scoring 0.2" in terminal.splitlines()
    log = (tmp_path / "run" / "run.log").read_text()
    assert "    Traceback (most recent call last):" in log.splitlines() and "raise ValueError" in log
    assert result.tasks["score #1"].metrics == {"accuracy": 0.2}


def test_a_subprocess_step_exits_with_its_code_peak_memory_and_cpu_time(tmp_path):
    """What the run's tasks record, and bench/bench_step_resources.py reads to size the steps."""
    lines = []
    touch_256_mib = "import sys; b = bytearray(256 * 2**20); print('held', len(b) >> 20); sys.exit(4)"
    exited = attach.launch_subprocess(attach.Step("img", ["python3", "-c", touch_256_mib], {}, str(tmp_path)),
                                      lines.append)
    assert lines == ["held 256"] and exited.code == 4 and not exited.succeeded
    # No upper bound: the peak reads at least this test process's own size (Exited's docstring).
    assert exited.peak_rss_mib > 256 and exited.cpu_seconds > 0


def test_a_step_reaped_first_by_the_interrupt_guard_ends_as_failed(tmp_path):
    """On a signal, pipelines.local.interrupts stops every child and waits for it (psutil), which
    can reap the step before its launch reads the kernel's account of it. Here a grandchild holds
    the step's output open, so the step is reaped while its launch still reads."""
    import psutil

    lines, exited = [], []
    step_code = ("import os, subprocess, time; holder = subprocess.Popen(['sleep', '60']); "
                 "print(os.getpid(), holder.pid, flush=True); time.sleep(60)")
    step = attach.Step("img", ["python3", "-c", step_code], {}, str(tmp_path))
    thread = threading.Thread(target=lambda: exited.append(attach.launch_subprocess(step, lines.append)))
    thread.start()
    for _ in range(300):  # until the step has printed its pid and its grandchild's
        if lines:
            break
        threading.Event().wait(0.1)
    step_pid, holder_pid = map(int, lines[0].split())
    child = psutil.Process(step_pid)
    child.terminate()
    child.wait(timeout=30)  # reaped here, as interrupts.stop_children does
    psutil.Process(holder_pid).kill()  # the output closes; the launch goes on to reap the step
    thread.join(timeout=30)
    assert exited == [attach.Exited(1)]
