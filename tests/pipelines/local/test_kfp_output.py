"""Reading kfp.local's lines (pipelines.local.kfp_output), fed what kfp.local 2.17 printed.

kfp_local_toy_run.txt is the standard output of TOY_PIPELINE below run with kfp.local's
SubprocessRunner (a ParallelFor of two scoring steps, then a step that fails), its paths
shortened; `test_the_recorded_lines_are_what_the_installed_kfp_prints` runs the same pipeline
again, so that a kfp upgrade that changes its lines fails here first.
"""

import subprocess
import sys
from pathlib import Path

from conftest import REPO

from pipelines.local import kfp_output

RECORDED = Path(__file__).with_name("kfp_local_toy_run.txt")

TOY_PIPELINE = '''
import sys
from kfp import dsl, local
from kfp.dsl import Metrics, Output

@dsl.component
def score(x: float, metrics: Output[Metrics]) -> float:
    print(f"scoring {x}")
    metrics.log_metric("accuracy", 0.5408388520971302)
    return x / 3

@dsl.component
def fail(x: float):
    raise ValueError(f"bad value {x}")

@dsl.pipeline
def toy():
    with dsl.ParallelFor([0.1, 0.2]) as item:
        score(x=item)
    fail(x=1.0)

local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[1], raise_on_error=False)
toy()
'''


def recorded_lines() -> list[str]:
    return RECORDED.read_text(encoding="utf-8").split("\n")


def what_the_reader_finds(lines: list[str]) -> dict:
    """What the terminal's grouping and the error line read (a task's name, status and folder come
    from the task handler, pipelines.local.attach)."""
    plain = [kfp_output.plain(line) for line in lines]
    return {
        "started": [name for name in map(kfp_output.task_started, plain) if name],
        "tasks done": sum(map(kfp_output.is_task_done, plain)),
        "errors": [error for error in map(kfp_output.error_message, plain) if error],
    }


def test_task_blocks_and_errors_are_read_from_kfp_local_lines():
    assert what_the_reader_finds(recorded_lines()) == {
        "started": ["score", "score", "fail"],
        "tasks done": 4,  # after the pipeline's header, and after each task
        "errors": ["ValueError: bad value 1.0"],
    }


def test_colours_are_removed_before_reading():
    line = "15:03:31.868 - INFO - Executing task \x1b[96m'fail'\x1b[0m"
    assert kfp_output.task_started(line) is None
    assert kfp_output.task_started(kfp_output.plain(line)) == "fail"


def test_the_dashes_after_a_task_close_its_block_at_any_indentation():
    """kfp prints them with `print`, which its overlapping tasks leave indented."""
    assert all(kfp_output.is_task_done(pad + "-" * 80) for pad in ("", " " * 4, " " * 12))
    assert not kfp_output.is_task_done("    - a step's list item")
    assert kfp_output.TerminalFilter().shown(" " * 12 + "-" * 80, " " * 12 + "-" * 80) == "-" * 80


def test_this_projects_errors_are_shown_without_their_class_name():
    assert kfp_output.error_message("    components.common.errors.InputError: no data") == "no data"
    assert kfp_output.error_message("    KeyError: 'Close'") == "KeyError: 'Close'"
    assert kfp_output.error_message("    scoring 0.1") is None


def test_the_terminal_gets_the_steps_lines_and_one_line_per_output():
    terminal_filter = kfp_output.TerminalFilter()
    shown = []
    for line in recorded_lines():
        text = terminal_filter.shown(line, kfp_output.plain(line))
        if text is not None:
            shown.append(kfp_output.plain(text).strip())
    assert "scoring 0.1" in shown and "scoring 0.2" in shown
    assert shown.count("Output: 0.03333") == 1 and shown.count("Output: 0.06667") == 1
    assert shown.count("metrics: Metrics") == 2 and shown.count("accuracy 0.5408") == 2
    # kfp's executor announcing itself, and its echo of the executor input, stay in run.log.
    for noise in ("KFP Executor", "Streamed logs", "outputFile", "parameterValues", "schemaTitle"):
        assert not [line for line in shown if noise in line], noise
    assert "{" not in shown and "}" not in shown
    assert not [line for line in shown if line.startswith("uri=") or line.startswith("metadata=")]


def test_a_traceback_at_the_steps_indentation_is_left_out_up_to_its_exception_line():
    terminal_filter = kfp_output.TerminalFilter()
    lines = ["    Traceback (most recent call last):", '      File "step.py", line 3, in run',
             '        raise ValueError("x")', "    ValueError: x", "    the step goes on"]
    assert [terminal_filter.shown(line, line) for line in lines] == [None] * 4 + ["    the step goes on"]


def test_the_recorded_lines_are_what_the_installed_kfp_prints(tmp_path):
    """The same findings, but for the order of the tasks (they run side by side)."""
    script = tmp_path / "toy.py"
    script.write_text(TOY_PIPELINE)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "root")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    now, recorded = what_the_reader_finds(done.stdout.split("\n")), what_the_reader_finds(recorded_lines())
    assert sorted(now.pop("started")) == sorted(recorded.pop("started"))
    assert now == recorded
