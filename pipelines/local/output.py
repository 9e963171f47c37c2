"""Reading what kfp.local prints during a local run: the tasks, their times, and a quiet terminal.

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

import ast
import io
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.errors import PipelineError

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_START = re.compile(r"Executing task '([^']+)'")
TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
# kfp prints a line of dashes after each task, from the task's own thread.
TASK_DONE = re.compile(r"^\s*-{20,}\s*$")
OUTPUT_FILE = re.compile(r'"outputFile": "(.+)/executor_output\.json"')
ITERATION = re.compile(r"^for-loop-\d+-iteration-(\d+)$")
ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")
# TensorFlow's C++ start-up lines (absl format: `I0000 00:00:... port.cc:153] oneDNN ...`,
# `E0000 ... failed call to cuInit` without a GPU), written before absl's logging is set up,
# whatever TF_CPP_MIN_LOG_LEVEL says.
TENSORFLOW_START_UP = re.compile(r"^(?:[IWE]\d{4} \d\d:\d\d:\S+\s+\d+ \S+:\d+\]|WARNING: All log messages before absl)")
# kfp's executor announcing itself, and kfp.local's header of a task's output.
KFP_CHATTER = re.compile(r"^(?:\[KFP Executor |.* - INFO - Streamed logs:)")
# A line of kfp's JSON echo (the executor input, or output) starts with JSON's punctuation;
# its lone values (`0.003,` in a list) are recognised by following `Got executor_input:`.
JSON_ECHO = re.compile(r'^\s{4,}["{}\[\]]')
TRACEBACK_START = re.compile(r"^\s{4}Traceback \(most recent call last\):")
# A traceback ends at its exception line (`    pkg.SomeError: message`, at the step's indentation);
# chained ones are joined by one of these lines.
TRACEBACK_END = re.compile(r"^\s{4}[\w.]+(?:Error|Exception|Exit|Interrupt)\b")
TRACEBACK_CHAIN = re.compile(r"^\s{4}(?:The above exception was|During handling of the above exception)")
OUTPUTS_START = re.compile(r"Task '[^']+' outputs:")
# An output artifact in kfp's outputs dump: `    name: Type( name='name',`.
OUTPUT_ARTIFACT = re.compile(r"^\s{4}(\w+): (\w+)\( name=")
OUTPUT_NUMBER = re.compile(r"^\s{4}Output: (-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)$")
OUTPUT_METADATA = re.compile(r"^\s+metadata=(\{.*\}) \)$")
# Messages of this project's own errors are written for the user: shown without the class name.
PROJECT_ERRORS = {PipelineError.__name__} | {kind.__name__ for kind in PipelineError.__subclasses__()}


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


@dataclass
class _LineState:
    """Where one thread is in the text it prints (each thread prints its own task)."""
    in_traceback: bool = False  # a failed step's traceback: run.log only
    in_outputs: bool = False  # kfp's dump of a task's outputs: one short line per output
    json_next: bool = False  # the line after `Got executor_input:` opens the JSON echo
    json_indent: int | None = None  # inside the echo: the indentation of its closing brace

    def for_terminal(self, line: str, plain: str) -> str | None:
        """What the terminal shows of a log line (None: nothing; run.log keeps it all)."""
        stripped = plain.strip()
        if not stripped or KFP_CHATTER.match(stripped) or TENSORFLOW_START_UP.match(stripped):
            self.json_next = self.json_next or "Got executor_input:" in stripped
            return None
        if self.json_next or self.json_indent is not None:
            indent = len(plain) - len(plain.lstrip())
            if self.json_next:
                self.json_next, self.json_indent = False, indent if stripped == "{" else None
            elif stripped == "}" and indent == self.json_indent:
                self.json_indent = None
            if self.json_indent is not None or stripped == "}":
                return None
        if JSON_ECHO.match(plain):
            return None
        if TASK_START.search(plain) or TASK_END.search(plain) or not plain.startswith("    "):
            self.in_traceback = False
            self.in_outputs = bool(OUTPUTS_START.search(plain))
            return line
        if TRACEBACK_START.match(plain):
            self.in_traceback = True
        elif self.in_traceback and TRACEBACK_END.match(plain):
            self.in_traceback = False  # the exception line itself: the summary's error line says it
            return None
        if self.in_traceback or TRACEBACK_CHAIN.match(plain):
            return None
        if self.in_outputs:
            return trimmed_output(plain)
        return line


class RunOutput(io.TextIOBase):
    """Stand-in for sys.stdout during a run (see the module's description)."""

    def __init__(self, terminal, log_file, verbose: bool):
        self.terminal, self.log_file, self.verbose = terminal, log_file, verbose
        self.runs: list[TaskRun] = []  # every task run, in start order
        self.lines: list[str] = []
        self.silenced = False  # after an interrupt: run.log only
        self._lock = threading.RLock()
        self._pending: dict[int, str] = {}  # per thread: the line it has not finished yet
        self._states: dict[int, _LineState] = {}
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
        plain = ANSI.sub("", line)
        self.log_file.write(plain + "\n")
        self.lines.append(plain)
        task = self._running.get(thread)
        if match := TASK_START.search(plain):
            task = TaskRun(self._unique_name(match[1]))
            self.runs.append(task)
            self._running[thread] = task
            if self._streaming is None:
                self._streaming = thread
            elif thread != self._streaming and thread not in self._waiting:
                self._waiting.append(thread)
        elif (match := TASK_END.search(plain)) and task is not None:
            task.status = match[2]
            task.seconds = time.monotonic() - task.started
        elif (match := OUTPUT_FILE.search(plain)) and task is not None and task.output_dir is None:
            task.output_dir = Path(match[1])
            if iteration := ITERATION.match(task.output_dir.parent.name):
                task.name = f"{task.output_dir.name} #{iteration[1]}"
        state = self._states.setdefault(thread, _LineState())
        shown = line if self.verbose else state.for_terminal(line, plain)
        if shown is not None:
            self._show(shown, thread)
        if TASK_DONE.match(plain) and task is not None:
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
        for line in reversed(self.lines):
            if match := ERROR_LINE.match(line):
                return match[2] if match[1] in PROJECT_ERRORS else f"{match[1]}: {match[2]}"
        return None


def trimmed_output(plain: str) -> str | None:
    """One short line per output in kfp's outputs dump: `name: Type` plus its numbers, if any."""
    from components.common.readable import readable, readable_output

    if match := OUTPUT_ARTIFACT.match(plain):
        return f"    {match[1]}: {match[2]}"
    if match := OUTPUT_METADATA.match(plain):
        try:
            metadata = ast.literal_eval(match[1])
        except (ValueError, SyntaxError):
            return None
        numbers = {k: v for k, v in metadata.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers and len(numbers) == len(metadata):  # a Metrics artifact: its scores, rounded
            return "      " + "  ".join(f"{k} {readable(v, k)}" for k, v in numbers.items())
        return None
    if plain.startswith("     "):  # the rest of an artifact's dump (uri, metadata continued)
        return None
    if match := OUTPUT_NUMBER.match(plain):
        return f"    Output: {readable_output(float(match[1]))}"
    return plain if len(plain) <= 120 else plain[:117] + "..."


def settle_unlogged(tasks: dict[str, TaskRun]) -> None:
    """A task whose end went unlogged succeeded if it wrote its executor output, else it failed."""
    for task in tasks.values():
        if task.status == ENDED:
            written = task.output_dir is not None and (task.output_dir / "executor_output.json").is_file()
            task.status = "SUCCESS" if written else "FAILURE"
