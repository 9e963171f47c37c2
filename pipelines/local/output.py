"""A local run's standard output: the tasks, their times, and a quiet terminal (the patterns of
kfp.local's lines are pipelines.local.kfp_output's; the tasks themselves come from the task handler,
pipelines.local.attach).

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
  (`train-trial #0`, `train-trial #1`), made and ended by the task handler's hooks
  (`started`, `ended`), which run in the task's thread. kfp's lines only group the
  terminal: a thread's block opens at kfp's `Executing task` line and closes at the
  dashes kfp prints after the task.
"""

import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.local import kfp_output
from pipelines.local.attach import Exited, TaskCall


@dataclass
class TaskRun:
    name: str
    status: str = "RUNNING"
    seconds: float = 0.0
    output: Any = None  # the step's single return value, if any
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, dict] = field(default_factory=dict)  # output artifact name -> its metadata
    output_dir: Path | None = None  # where kfp.local writes its outputs (from its executor input)
    peak_rss_mib: float | None = None  # of its process (a subprocess run's; a container's is not read)
    cpu_seconds: float | None = None
    started: float = field(default_factory=time.monotonic, repr=False)


class RunOutput(io.TextIOBase):
    """Stand-in for sys.stdout during a run (see the module's description)."""

    def __init__(self, terminal, log_file, verbose: bool, pipeline_root: Path | None = None):
        self.terminal, self.log_file, self.verbose = terminal, log_file, verbose
        self.pipeline_root = pipeline_root  # where the tasks' output folders are
        self.runs: list[TaskRun] = []  # every task run, in start order
        self.lines: list[str] = []
        self.silenced = False  # after an interrupt: run.log only
        self._lock = threading.RLock()
        self._pending: dict[int, str] = {}  # per thread: the line it has not finished yet
        self._filters: dict[int, kfp_output.TerminalFilter] = {}
        self._running: dict[int, TaskRun | None] = {}  # per thread: its task (once started), up to its dashes
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

    def started(self, call: TaskCall) -> dict[str, str]:
        """The task handler's hook: a task starts in this thread (its row, its clock)."""
        with self._lock:
            task = TaskRun(self._unique_name(call.label))
            if self.pipeline_root is not None:
                task.output_dir = self.pipeline_root / call.output_file.parent
            self.runs.append(task)
            self._open_block(threading.get_ident(), task)
        return {}

    def ended(self, call: TaskCall, exited: Exited) -> None:
        """The task handler's hook: this thread's task ended."""
        with self._lock:
            task = self._running.get(threading.get_ident())
            if task is not None:
                task.status = "SUCCESS" if exited.succeeded else "FAILURE"
                task.seconds = time.monotonic() - task.started
                task.peak_rss_mib, task.cpu_seconds = exited.peak_rss_mib, exited.cpu_seconds

    def _open_block(self, thread: int, task: TaskRun | None) -> None:
        """The thread's lines form one block on the terminal from now to kfp's dashes."""
        if thread not in self._running or task is not None:
            self._running[thread] = task
        if self._streaming is None:
            self._streaming = thread
        elif thread != self._streaming and thread not in self._waiting:
            self._waiting.append(thread)

    def _line(self, line: str, thread: int) -> None:
        plain = kfp_output.plain(line)
        self.log_file.write(plain + "\n")
        self.lines.append(plain)
        if kfp_output.task_started(plain):
            self._open_block(thread, None)
        terminal_filter = self._filters.setdefault(thread, kfp_output.TerminalFilter())
        shown = line if self.verbose else terminal_filter.shown(line, plain)
        if shown is not None:
            self._show(shown, thread)
        if kfp_output.is_task_done(plain) and thread in self._running:
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
