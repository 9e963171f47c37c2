"""The one place where a local run attaches to kfp.local (2.17): its task handler.

kfp.local has no hook to run code around a task. Its dispatcher
(`task_dispatcher.run_single_task_implementation`) looks up the handler class of the runner's
type as a module attribute at every task (`subprocess_task_handler.SubprocessTaskHandler` for
`SubprocessRunner`, `docker_task_handler.DockerTaskHandler` for `DockerRunner`), builds it with
the task's image, command, pipeline root, runner and environment, and calls its `run()`, which
returns the task's status. `attached` puts `AttachedTaskHandler` in the place of the handler of
the run's runner type for the length of a run: that one attribute is the only kfp internal a
local run replaces (`KFP_INTERNALS` lists what it relies on; tests/pipelines/local/test_attach.py
checks each against the installed kfp, and a run on a kfp where one moved is refused in one line
before any step).

The handler does what the runner's parts need, through a small interface:

- the task's identity comes from the executor input on its command line (`TaskCall`: its name,
  loop iteration, output folder, inputs, Metrics outputs), not from kfp's log lines;
- every hook (`TaskHooks`: the run's output, MLflow tracking) hears `started` before the step's
  process starts (and may add environment variables for it alone: tasks of a loop run at the same
  time) and `ended` after, with how it exited (`Exited`: its exit code and, for a subprocess, the
  peak memory and CPU time the kernel accounted to it);
- the step is started by the run's `Launch`: a subprocess of this environment (`launch_subprocess`)
  or a container (pipelines.local.containers); none starts once `stopped` is set (a signal);
- each line the step prints goes to sys.stdout with a fixed indentation (`STEP_INDENT`), written
  directly: kfp indents through a swapped `builtins.print`, which tasks running side by side
  leave nested (a step after a ParallelFor printed 12 spaces deep).
"""

import builtins
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from components.common.errors import PipelineError
from pipelines.local.swaps import swapped

STEP_INDENT = "    "
# A loop iteration's folder in the pipeline root: `<loop>-iteration-<i>` (kfp's loops are `for-loop-<n>`).
ITERATION = re.compile(r"^(.+)-iteration-(\d+)$")
# What the attachment relies on in kfp, as `module.name` or `module.name(parameters)`, and what for;
# `changed_kfp_internals` checks each against the installed kfp and names the one that changed.
KFP_INTERNALS = {
    "kfp.local.subprocess_task_handler.SubprocessTaskHandler": "the handler class looked up for SubprocessRunner",
    "kfp.local.docker_task_handler.DockerTaskHandler": "the handler class looked up for DockerRunner",
    "kfp.local.task_handler_interface.ITaskHandler.__init__(self, image, full_command, pipeline_root, runner, "
    "env_vars)": "how the dispatcher builds a handler",
    "kfp.local.task_handler_interface.ITaskHandler.run(self)": "how the dispatcher runs a task (returns a Status)",
    "kfp.local.subprocess_task_handler.replace_python_executable(full_command, new_executable)":
        "the step's python3 made this interpreter",
    "kfp.dsl.constants.WORKSPACE_MOUNT_PATH": "where a container sees the workspace",
}
CONTAINER_INTERNALS = ("kfp.local.docker_task_handler.", "kfp.dsl.constants.WORKSPACE_MOUNT_PATH")
# The dispatcher must read the handler classes at every task (so that the one swap takes effect),
# build one and run it: what its source must say.
KFP_DISPATCH = "kfp.local.task_dispatcher.run_single_task_implementation"
KFP_DISPATCH_READS = ("subprocess_task_handler.SubprocessTaskHandler", "docker_task_handler.DockerTaskHandler",
                      "task_handler.run()")
EXECUTOR_INPUT = ("kfp's executor input on a task's command line (`--executor_input` JSON whose "
                  "outputs.outputFile is <pipeline root>/<job>/[<loop>-iteration-<i>/]<task>/executor_output.json)")


def changed_kfp_internals(containers: bool = True) -> list[str]:
    """One line for each entry of `KFP_INTERNALS` that the installed kfp no longer has as written
    (without `containers`, those only a DockerRunner needs are left out: docker-py, which kfp's
    Docker handler imports, is in the `local` extra alone)."""
    changed = []
    for internal, role in KFP_INTERNALS.items():
        if not containers and internal.startswith(CONTAINER_INTERNALS):
            continue
        path, _, parameters = internal.partition("(")
        try:
            found = _resolve(path)
        except (ImportError, AttributeError) as error:
            changed.append(f"{path} ({role}) is gone from kfp: {error}")
            continue
        if parameters:
            expected = [name.strip() for name in parameters.rstrip(")").split(",") if name.strip()]
            actual = list(inspect.signature(found).parameters)
            if actual != expected:
                changed.append(f"{path} ({role}) now takes ({', '.join(actual)}), not ({', '.join(expected)})")
    source = inspect.getsource(_resolve(KFP_DISPATCH))
    changed += [f"{KFP_DISPATCH} no longer reads `{read}` at every task: the local runner's task handler "
                "would not be used" for read in KFP_DISPATCH_READS if read not in source]
    return changed


def _resolve(dotted: str) -> Any:
    """The object `dotted` names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            if split == 1:
                raise
            continue
        for name in parts[split:]:
            found = getattr(found, name)
        return found
    raise ImportError(dotted)


def loop_iteration(folder_name: str) -> tuple[str, int] | None:
    """(loop, iteration) of a loop iteration's folder in the pipeline root (`for-loop-2-iteration-3`)."""
    match = ITERATION.match(folder_name)
    return (match[1], int(match[2])) if match else None


@dataclass(frozen=True)
class TaskCall:
    """One task as kfp.local starts it, read from the executor input on its command line: where it
    sits (its output folder is `<job>/[<loop>-iteration-<i>/]<task>`), its input parameters and
    which of its outputs are Metrics artifacts."""

    job: str
    task: str
    loop: str | None
    iteration: int | None
    inputs: dict[str, Any]
    metrics_outputs: tuple[str, ...]

    @classmethod
    def from_command(cls, full_command: list[str], pipeline_root: str) -> "TaskCall":
        executor_input = json.loads(full_command[full_command.index("--executor_input") + 1])
        outputs = executor_input["outputs"]
        job, *groups, task = Path(outputs["outputFile"]).parent.relative_to(pipeline_root).parts
        loop = iteration = None
        for group in groups:  # the innermost loop
            if found := loop_iteration(group):
                loop, iteration = found
        metrics = tuple(name for name, listed in outputs.get("artifacts", {}).items()
                        if listed["artifacts"][0]["type"].get("schemaTitle") == "system.Metrics")
        return cls(job, task, loop, iteration, executor_input["inputs"].get("parameterValues", {}), metrics)

    @property
    def output_file(self) -> Path:
        """Relative to the pipeline root."""
        group = [] if self.iteration is None else [f"{self.loop}-iteration-{self.iteration}"]
        return Path(self.job, *group, self.task, "executor_output.json")

    @property
    def label(self) -> str:
        """How people see it: `train`, or `train-trial #2` for a loop iteration."""
        return self.task if self.iteration is None else f"{self.task} #{self.iteration}"


class TaskHooks(Protocol):
    """What hears of each task, from the task's own thread."""

    def started(self, task: TaskCall) -> dict[str, str]:
        """Before the step starts: environment variables for its process alone (may be empty)."""

    def ended(self, task: TaskCall, exited: "Exited") -> None:
        """After the step ended (not called when a signal cut it short)."""


@dataclass(frozen=True)
class Step:
    """What a `Launch` starts: kfp's image and command, the environment, the pipeline root."""
    image: str
    command: list[str]
    environment: dict[str, str]
    pipeline_root: str


@dataclass(frozen=True)
class Exited:
    """How a step's process ended: its exit code and, where the launch can tell, the largest resident
    memory of the process or of any process it started and waited for (MiB), and the CPU seconds
    (user + system) of all of them: what a step's requests and limits must cover.

    The peak is the kernel's (getrusage's ru_maxrss), which never reads below the size of the
    process that started the step: Linux carries the forked copy's high-water mark over the exec.
    Below that floor (about 165 MiB for `make run`), a step's own peak is smaller than it reads;
    above it, it is exact. An overestimate only makes a request safer."""
    code: int
    peak_rss_mib: float | None = None
    cpu_seconds: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.code == 0


# Starts the step, hands each line it prints (without its newline) to the callable, says how it ended.
Launch = Callable[[Step, Callable[[str], None]], Exited]


def launch_subprocess(step: Step, emit: Callable[[str], None]) -> Exited:
    """The step in a subprocess of this environment (kfp's SubprocessRunner without a venv)."""
    from kfp.local import subprocess_task_handler

    command = subprocess_task_handler.replace_python_executable(step.command, sys.executable)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                          bufsize=1, env={**os.environ, **step.environment}) as process:
        for line in process.stdout:
            emit(line.rstrip("\n"))
        # Reaped here rather than by Popen.wait, for the kernel's account of the process.
        try:
            _, wait_status, usage = os.wait4(process.pid, 0)
        except ChildProcessError:  # reaped already: on a signal, pipelines.local.interrupts waits for every child
            process.returncode = 1
            return Exited(1)
        process.returncode = os.waitstatus_to_exitcode(wait_status)
        return Exited(process.returncode, peak_rss_mib=usage.ru_maxrss / 1024,  # Linux counts KiB
                      cpu_seconds=usage.ru_utime + usage.ru_stime)


def emit_step_line(line: str) -> None:
    """A step's line to the run's output, at `STEP_INDENT` whatever kfp's print indentation is now."""
    sys.stdout.write(STEP_INDENT + line + "\n")


@dataclass
class Attachment:
    """A run's parts, as the handler calls them."""
    launch: Launch
    hooks: Sequence[TaskHooks]
    stopped: threading.Event  # set on a signal: no further step starts


def handler_class(attachment: Attachment) -> type:
    """kfp's task handler interface, run by `attachment`."""
    from kfp.local import status, task_handler_interface

    class AttachedTaskHandler(task_handler_interface.ITaskHandler):
        def __init__(self, image: str, full_command: list[str], pipeline_root: str, runner: Any,
                     env_vars: dict[str, str] | None = None) -> None:
            self.step = Step(image, list(full_command), dict(env_vars or {}), pipeline_root)

        def run(self) -> status.Status:
            if attachment.stopped.is_set():
                return status.Status.FAILURE
            try:
                task = TaskCall.from_command(self.step.command, self.step.pipeline_root)
            except (ValueError, KeyError, IndexError) as error:
                raise RuntimeError(f"the local runner cannot read {EXECUTOR_INPUT}: it changed ({error!r})") from error
            environment = dict(self.step.environment)
            for hook in attachment.hooks:
                environment.update(hook.started(task))
            step = Step(self.step.image, self.step.command, environment, self.step.pipeline_root)
            try:
                exited = Exited(1) if attachment.stopped.is_set() else attachment.launch(step, emit_step_line)
            except OSError as error:
                emit_step_line(f"error: the step could not start: {error}")
                exited = Exited(1)
            for hook in attachment.hooks:
                hook.ended(task, exited)
            return status.Status.SUCCESS if exited.succeeded else status.Status.FAILURE

    return AttachedTaskHandler


def _handler_attribute(runner: Any) -> tuple[Any, str]:
    """The module attribute kfp's dispatcher reads the handler of `runner`'s type from."""
    from kfp import local
    from kfp.local import docker_task_handler, subprocess_task_handler

    if type(runner) is local.DockerRunner:
        return docker_task_handler, "DockerTaskHandler"
    return subprocess_task_handler, "SubprocessTaskHandler"


@contextmanager
def attached(runner: Any, attachment: Attachment) -> Iterator[None]:
    """kfp.local runs every task of `runner`'s type through `attachment` inside the `with`.

    After it, `builtins.print` is what it was before: kfp swaps it from each task's thread, and
    tasks that overlap can leave an indenting one in place. An installed kfp whose internals moved
    is refused before any step runs, naming what changed.
    """
    from kfp import local

    if changed := changed_kfp_internals(containers=type(runner) is local.DockerRunner):
        raise PipelineError(f"the installed kfp changed what the local runner relies on: {changed[0]}"
                            f"{f' (and {len(changed) - 1} more)' if len(changed) > 1 else ''}; "
                            "install the kfp that pyproject.toml pins")
    module, name = _handler_attribute(runner)
    print_before = builtins.print
    try:
        with swapped(module, name, handler_class(attachment)):
            yield
    finally:
        builtins.print = print_before
