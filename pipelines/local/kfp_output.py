"""What kfp.local (2.17) prints during a run, read for the terminal: every pattern of its text is here, and only here.

A task's name, status, output folder and outputs reach the runner through its task handler
(pipelines.local.attach), not through these lines. What is left to read is what the terminal
shows: kfp's own log lines (a task's start, its end, its outputs dump, the dashes after it) and
the step's lines, which the handler writes at `STEP_INDENT` whatever the indentation of kfp's
`print` is at the time (kfp's executor announcing itself, its JSON echo of the executor input,
TensorFlow's C++ start-up lines, a failed step's traceback). The functions here take one line,
its colours already removed by `plain`; the runner's bookkeeping around them (which thread prints
which task) is pipelines.local.output. tests/pipelines/local/test_kfp_output.py feeds them lines
that kfp.local printed.
"""
import ast
import re

from components.common.errors import PipelineError
from components.common.quiet_tensorflow import TENSORFLOW_START_UP
from components.common.readable import readable, readable_output
from pipelines.local.attach import STEP_INDENT

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_START = re.compile(r"Executing task '([^']+)'")
# kfp prints a line of dashes after each task, from the task's own thread (at any indentation:
# it uses `print`).
TASK_DONE = re.compile(r"^\s*-{20,}\s*$")
ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")
# kfp's executor announcing itself, and kfp.local's header of a task's output.
KFP_CHATTER = re.compile(r"^(?:\[KFP Executor |.* - INFO - Streamed logs:)")
# A line of kfp's JSON echo (the executor input, or output) starts with JSON's punctuation;
# its lone values (`0.003,` in a list) are recognised by following `Got executor_input:`.
JSON_ECHO = re.compile(r'^\s{4,}["{}\[\]]')
JSON_ECHO_NEXT = "Got executor_input:"
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
# kfp warns about settings a cluster honours (retry, resources, caching, GPUs) on every run
# (`warnings.filterwarnings` message patterns).
LOCAL_RUNNER_WARNINGS = (r".*no effect in the current local runner", r".*is not used by the current local runner")
# Messages of this project's own errors are written for the user: shown without the class name.
PROJECT_ERRORS = {PipelineError.__name__} | {kind.__name__ for kind in PipelineError.__subclasses__()}


def plain(line: str) -> str:
    """The line without its terminal colours (kfp.local colours task names and statuses)."""
    return ANSI.sub("", line)


def task_started(line: str) -> str | None:
    """The task's name, when the line announces its start."""
    match = TASK_START.search(line)
    return match[1] if match else None


def is_task_done(line: str) -> bool:
    """The dashes kfp.local prints after a task's lines (from the task's own thread)."""
    return bool(TASK_DONE.match(line))


def error_message(line: str) -> str | None:
    """A step's error, when the line is an exception's: the message alone for this project's
    errors (written for the user), with the exception's name for any other."""
    match = ERROR_LINE.match(line)
    if match is None:
        return None
    return match[2] if match[1] in PROJECT_ERRORS else f"{match[1]}: {match[2]}"


class TerminalFilter:
    """What the terminal shows of one thread's lines (each thread prints its own task): the steps'
    own lines and kfp's task lines, without the JSON echo, TensorFlow's start-up lines, a failed
    step's traceback, or artifacts' full metadata. run.log keeps everything."""

    def __init__(self) -> None:
        self.in_traceback = False  # a failed step's traceback: run.log only
        self.in_outputs = False  # kfp's dump of a task's outputs: one short line per output
        self.json_next = False  # the line after `Got executor_input:` opens the JSON echo
        self.json_indent: int | None = None  # inside the echo: the indentation of its closing brace

    def shown(self, line: str, plain_line: str) -> str | None:
        """`line` (as printed, colours kept), a shorter form of it, or None (not shown)."""
        stripped = plain_line.strip()
        if not stripped or KFP_CHATTER.match(stripped) or TENSORFLOW_START_UP.match(stripped):
            self.json_next = self.json_next or JSON_ECHO_NEXT in stripped
            return None
        if self.json_next or self.json_indent is not None:
            indent = len(plain_line) - len(plain_line.lstrip())
            if self.json_next:
                self.json_next, self.json_indent = False, indent if stripped == "{" else None
            elif stripped == "}" and indent == self.json_indent:
                self.json_indent = None
            if self.json_indent is not None or stripped == "}":
                return None
        if JSON_ECHO.match(plain_line):
            return None
        if not plain_line.startswith(STEP_INDENT) or is_task_done(plain_line):  # one of kfp's own lines
            self.in_traceback = False
            self.in_outputs = bool(OUTPUTS_START.search(plain_line))
            return plain_line.strip() if is_task_done(plain_line) else line  # the dashes at the margin
        if TRACEBACK_START.match(plain_line):
            self.in_traceback = True
        elif self.in_traceback and TRACEBACK_END.match(plain_line):
            self.in_traceback = False  # the exception line itself: the summary's error line says it
            return None
        if self.in_traceback or TRACEBACK_CHAIN.match(plain_line):
            return None
        if self.in_outputs:
            return trimmed_output(plain_line)
        return line


def trimmed_output(plain_line: str) -> str | None:
    """One short line per output in kfp's outputs dump: `name: Type` plus its numbers, if any."""
    if match := OUTPUT_ARTIFACT.match(plain_line):
        return f"    {match[1]}: {match[2]}"
    if match := OUTPUT_METADATA.match(plain_line):
        try:
            metadata = ast.literal_eval(match[1])
        except (ValueError, SyntaxError):
            return None
        numbers = {k: v for k, v in metadata.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers and len(numbers) == len(metadata):  # a Metrics artifact: its scores, rounded
            return "      " + "  ".join(f"{k} {readable(v, k)}" for k, v in numbers.items())
        return None
    if plain_line.startswith("     "):  # the rest of an artifact's dump (uri, metadata continued)
        return None
    if match := OUTPUT_NUMBER.match(plain_line):
        return f"    Output: {readable_output(float(match[1]))}"
    return plain_line if len(plain_line) <= 120 else plain_line[:117] + "..."
