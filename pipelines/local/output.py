"""A local run's standard output: the tasks, their times, and a quiet terminal (the patterns of
kfp.local's lines are pipelines.local.kfp_output's).

kfp.local runs a pipeline's tasks in threads (a ParallelFor's iterations at the same
time), each printing its step's output line by line to sys.stdout, so the steps'
lines arrive interleaved. `RunOutput` stands in for sys.stdout during a run:

- run.log gets every line as it arrives;
- the terminal gets each task's lines in one block: the task that started first
  streams live, the others are held and printed whole when their turn comes;
- the terminal is spared kfp's JSON echo of the executor input, TensorFlow's C++
  start-up lines, a failed step's traceback, and artifacts' full metadata
  (`verbose` shows everything);
- each task run is one `TaskRun`, a ParallelFor iteration included
  (`train-trial #0`, `train-trial #1`): kfp.local reports starts and ends only as
  log lines, and names each run's output folder in its executor input.
"""

import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.local import kfp_output

# A task whose end kfp.local did not log: its tasks running side by side share the root logger,
# and the first to finish removes the handler the others log through. Whether it succeeded
# is read from its executor output afterwards (`settle_unlogged`).
ENDED = "ENDED"


@dataclass
class TaskRun:
    name: str
    status: str = "RUNNING"
    seconds: float = 0.0
    output: Any = None  # the step's single return value, if any
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, dict] = field(default_factory=dict)  # output artifact name -> its metadata
    output_dir: Path | None = None  # where kfp.local writes its outputs (from its executor input)
    started: float = field(default_factory=time.monotonic, repr=False)


class RunOutput(io.TextIOBase):
    """Stand-in for sys.stdout during a run (see the module's description)."""

    def __init__(self, terminal, log_file, verbose: bool):
        self.terminal, self.log_file, self.verbose = terminal, log_file, verbose
        self.runs: list[TaskRun] = []  # every task run, in start order
        self.lines: list[str] = []
        self.silenced = False  # after an interrupt: run.log only
        self._lock = threading.RLock()
        self._pending: dict[int, str] = {}  # per thread: the line it has not finished yet
        self._filters: dict[int, kfp_output.TerminalFilter] = {}
        self._running: dict[int, TaskRun] = {}  # per thread: its task, from start to its dashes
        self._streaming: int | None = None  # the thread whose lines go to the terminal now
        self._waiting: list[int] = []  # threads with held lines, in their tasks' start order
        self._held: dict[int, list[str]] = {}

    @property
    def tasks(self) -> dict[str, TaskRun]:
        return {task.name: task for task in self.runs}

    def running(self) -> list[TaskRun]:
        return [task for task in self.runs if task.status == "RUNNING"]

    def write(self, text: str) -> int:
        thread = threading.get_ident()
        with self._lock:
            *lines, self._pending[thread] = (self._pending.get(thread, "") + text).split("\n")
            for line in lines:
                self._line(line, thread)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self.terminal.flush()
            self.log_file.flush()

    def _line(self, line: str, thread: int) -> None:
        plain = kfp_output.plain(line)
        self.log_file.write(plain + "\n")
        self.lines.append(plain)
        task = self._running.get(thread)
        if started := kfp_output.task_started(plain):
            task = TaskRun(self._unique_name(started))
            self.runs.append(task)
            self._running[thread] = task
            if self._streaming is None:
                self._streaming = thread
            elif thread != self._streaming and thread not in self._waiting:
                self._waiting.append(thread)
        elif (ended := kfp_output.task_ended(plain)) and task is not None:
            task.status = ended[1]
            task.seconds = time.monotonic() - task.started
        elif (folder := kfp_output.output_folder(plain)) and task is not None and task.output_dir is None:
            task.output_dir = Path(folder)
            if iteration := kfp_output.loop_iteration(task.output_dir.parent.name):
                task.name = f"{task.output_dir.name} #{iteration[1]}"
        terminal_filter = self._filters.setdefault(thread, kfp_output.TerminalFilter())
        shown = line if self.verbose else terminal_filter.shown(line, plain)
        if shown is not None:
            self._show(shown, thread)
        if kfp_output.is_task_done(plain) and task is not None:
            if task.status == "RUNNING":  # its end went unlogged (see ENDED)
                task.status, task.seconds = ENDED, time.monotonic() - task.started
            del self._running[thread]
            if thread == self._streaming:
                self._next_streaming()

    def _unique_name(self, name: str) -> str:
        taken = {task.name for task in self.runs}
        count = 1
        while (unique := name if count == 1 else f"{name} #{count}") in taken:
            count += 1
        return unique

    def _show(self, text: str, thread: int) -> None:
        if self.silenced:
            return
        if thread in self._running and thread != self._streaming:
            self._held.setdefault(thread, []).append(text)
        else:
            self.terminal.write(text + "\n")

    def _next_streaming(self) -> None:
        """The next task in start order gets the terminal: its held lines first."""
        self._streaming = None
        while self._waiting:
            thread = self._waiting.pop(0)
            for text in self._held.pop(thread, []):
                if not self.silenced:
                    self.terminal.write(text + "\n")
            if thread in self._running:
                self._streaming = thread
                return

    def last_error(self) -> str | None:
        """The last error a step printed (kfp_output.error_message), for the run's error line."""
        return next(filter(None, map(kfp_output.error_message, reversed(self.lines))), None)


def settle_unlogged(tasks: dict[str, TaskRun]) -> None:
    """A task whose end went unlogged succeeded if it wrote its executor output, else it failed."""
    for task in tasks.values():
        if task.status == ENDED:
            written = task.output_dir is not None and (task.output_dir / "executor_output.json").is_file()
            task.status = "SUCCESS" if written else "FAILURE"
