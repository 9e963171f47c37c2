"""A run's output: the tasks and their times (from the task handler's hooks), a quiet terminal, each
task's lines together."""

import io
import threading
from pathlib import Path

from pipelines.local.attach import STEP_INDENT, Exited, TaskCall
from pipelines.local.output import RunOutput


def call(task: str, iteration: int | None = None) -> TaskCall:
    """A task as the handler reads it from its executor input."""
    return TaskCall("job-1", task, None if iteration is None else "for-loop-1", iteration, {}, ())


def test_log_capture_times_tasks_and_keeps_the_last_error():
    terminal, log = io.StringIO(), io.StringIO()
    capture = RunOutput(terminal, log, verbose=False)
    capture.write("10:00:00.000 - INFO - Executing task \x1b[96m'download'\x1b[0m\n")
    capture.started(call("download"))
    capture.write('    {"executor": "json echo"}\n    plain step line\n')
    capture.write("    components.common.errors.InputError: data file not found: /x.csv\n")
    assert capture.tasks["download"].status == "RUNNING"
    capture.ended(call("download"), Exited(1))
    assert capture.tasks["download"].status == "FAILURE"
    assert capture.tasks["download"].seconds >= 0
    assert capture.last_error() == "data file not found: /x.csv"
    assert "plain step line" in terminal.getvalue() and "json echo" not in terminal.getvalue()
    assert "json echo" in log.getvalue()


def test_a_failed_step_shows_no_traceback_on_the_terminal():
    terminal, log = io.StringIO(), io.StringIO()
    capture = RunOutput(terminal, log, verbose=False)
    capture.write("10:00:00.000 - INFO - Executing task \x1b[96m'download'\x1b[0m\n")
    capture.write("    reading sp500\n    Traceback (most recent call last):\n")
    capture.write('      File "data.py", line 3, in read\n        raise ValueError("x")\n')
    capture.write("    ValueError: x\n    \n    The above exception was the direct cause of the following exception:\n")
    capture.write("    \n    Traceback (most recent call last):\n      File \"data.py\", line 5\n")
    capture.write("    components.common.errors.TransientError: http://h/x.csv unreachable after 4 attempts\n")
    capture.write("    a line the step printed after handling an error\n\n")
    capture.write("10:00:01.000 - ERROR - Task \x1b[96m'download'\x1b[0m finished with status FAILURE\n")
    shown = terminal.getvalue()
    assert "reading sp500" in shown and "finished with status FAILURE" in shown
    assert "a line the step printed after handling an error" in shown
    assert "Traceback" not in shown and "File " not in shown and "ValueError" not in shown
    assert log.getvalue().count("Traceback") == 2
    assert capture.last_error() == "http://h/x.csv unreachable after 4 attempts"


def test_a_bug_keeps_its_exception_name():
    capture = RunOutput(io.StringIO(), io.StringIO(), verbose=False)
    capture.write("    KeyError: 'Close'\n")
    assert capture.last_error() == "KeyError: 'Close'"


def test_output_dumps_are_trimmed_to_a_line_per_output():
    terminal = io.StringIO()
    capture = RunOutput(terminal, io.StringIO(), verbose=False)
    capture.write("10:00:00.000 - INFO - Task \x1b[96m'evaluate'\x1b[0m outputs:\n")
    capture.write("    Output: 0.5408388520971302\n")
    capture.write("    metrics: Metrics( name='metrics',\n                      uri='/runs/x/evaluate/metrics',\n")
    capture.write("                      metadata={'accuracy': 0.5408388520971302, 'test_days': 453.0} )\n")
    capture.write("    confusion: ClassificationMetrics( name='confusion',\n               uri='/runs/x/c',\n")
    capture.write("               metadata={'confusionMatrix': {'rows': [{'row': [11.0, 196.0]}]}} )\n")
    capture.write("--------------------------------------------------------------------------------\n")
    assert terminal.getvalue().splitlines()[1:] == [
        "    Output: 0.5408", "    metrics: Metrics", "      accuracy 0.5408  test_days 453",
        "    confusion: ClassificationMetrics", "-" * 80]


def trial_lines(iteration: int, learning_rate: str) -> list:
    """What one ParallelFor iteration's thread writes: kfp's lines, the handler's hooks (callables),
    and the step's lines at the handler's indentation (kfp's own `print` left them up to 12 deep)."""
    pad = STEP_INDENT
    return [
        "12:34:21.310 - INFO - Executing task \x1b[96m'train-trial'\x1b[0m",
        "12:34:21.310 - INFO - Streamed logs:", "",
        lambda capture: capture.started(call("train-trial", iteration)),
        f"{pad}[KFP Executor 2026-12-03 12:34:21,370 INFO]: Got executor_input:",
        f"{pad}{{", f'{pad}    "parameterValues": {{', f'{pad}        "config": [',
        f"{pad}            {learning_rate},",
        f"{pad}            1.0", f"{pad}        ]", f"{pad}    }},",
        f'{pad}    "outputFile": "/r/artifacts/mnist-1/for-loop-1-iteration-{iteration}/train-trial/'
        'executor_output.json"',
        f"{pad}}}",
        f"{pad}trial {iteration} starts",
        f"{pad}WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        f"{pad}I0000 00:00:1796301262.634341   10294 port.cc:153] oneDNN custom operations are on.",
        f"{pad}I0000 00:00:1796301262.640582   10294 cudart_stub.cc:31] Could not find cuda drivers on your machine",
        f"{pad}E0000 00:00:1796301271.276806   10294 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)",
        f"{pad}trial {iteration}: epoch 1/1: loss 0.6631",
        f"{pad}trial {iteration} done", "",
        lambda capture: capture.ended(call("train-trial", iteration), Exited(0)),
        "12:34:38.184 - INFO - Task \x1b[96m'train-trial'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m",
        "12:34:38.185 - INFO - Task \x1b[96m'train-trial'\x1b[0m outputs:",
        f"    Output: 0.9{iteration}",
        "-" * 80,
    ]


def write_interleaved(capture: RunOutput, per_thread: list[list]) -> None:
    """Each list written (or, for a callable, called) by its own thread, the threads taking turns."""
    turn = threading.Barrier(len(per_thread))

    def write(lines: list) -> None:
        for line in lines:
            turn.wait()
            if callable(line):
                line(capture)
            else:
                capture.write(line + "\n")

    threads = [threading.Thread(target=write, args=(lines,)) for lines in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_parallel_tasks_print_one_block_each_without_noise_and_get_a_row_each():
    terminal, log = io.StringIO(), io.StringIO()
    capture = RunOutput(terminal, log, verbose=False, pipeline_root=Path("/r/artifacts"))
    write_interleaved(capture, [trial_lines(0, "0.003"), trial_lines(1, "0.01")])
    shown = terminal.getvalue().splitlines()
    # Each task's lines together, in order: the one that started first, then the other.
    own = [line.strip() for line in shown if line.strip().startswith("trial")]
    first = own[0].split()[1].rstrip(":")
    second = "1" if first == "0" else "0"
    assert own == [f"trial {first} starts", f"trial {first}: epoch 1/1: loss 0.6631", f"trial {first} done",
                   f"trial {second} starts", f"trial {second}: epoch 1/1: loss 0.6631", f"trial {second} done"]
    assert shown.index("-" * 80) < shown.index(f"    trial {second} starts")
    # No TensorFlow start-up lines, no fragments of the executor input, no empty blocks.
    for noise in ("cuInit", "cuda drivers", "oneDNN", "absl", "0.003,", "0.01,", "1.0", "Streamed logs", "{"):
        assert not [line for line in shown if noise in line], noise
    assert "" not in shown
    assert "failed call to cuInit" in log.getvalue() and "0.003," in log.getvalue()
    # One row per iteration, named after it, with its output folder.
    assert sorted(capture.tasks) == ["train-trial #0", "train-trial #1"]
    assert capture.tasks["train-trial #1"].output_dir == Path("/r/artifacts/job-1/for-loop-1-iteration-1/train-trial")
    assert all(task.status == "SUCCESS" for task in capture.runs)


def test_a_silenced_output_keeps_writing_the_log():
    terminal, log = io.StringIO(), io.StringIO()
    capture = RunOutput(terminal, log, verbose=False)
    capture.write("10:00:00.000 - INFO - Executing task \x1b[96m'train'\x1b[0m\n")
    capture.started(call("train"))
    capture.silenced = True
    capture.write("    KeyboardInterrupt\n    step line after the signal\n")
    assert "step line after the signal" not in terminal.getvalue()
    assert "step line after the signal" in log.getvalue()
    assert [task.name for task in capture.running()] == ["train"]


def test_a_tasks_status_comes_from_the_handler_when_kfps_end_line_is_lost():
    """kfp.local loses the end line of a task that ran beside one that finished first (tasks running
    side by side share the root logger, and the first to finish removes the handler the others log
    through); the hook still tells the task's end."""
    capture = RunOutput(io.StringIO(), io.StringIO(), verbose=False)
    for iteration, succeeded in ((0, True), (1, False)):
        capture.write("10:00:00.000 - INFO - Executing task 'train-trial'\n")
        capture.started(call("train-trial", iteration))
        capture.ended(call("train-trial", iteration), Exited(0 if succeeded else 1))
        capture.write("-" * 80 + "\n")
    assert {name: task.status for name, task in capture.tasks.items()} == {
        "train-trial #0": "SUCCESS", "train-trial #1": "FAILURE"}


def test_a_numeric_output_is_written_for_people():
    terminal = io.StringIO()
    capture = RunOutput(terminal, io.StringIO(), verbose=False)
    capture.write("10:00:00.000 - INFO - Task 'split' outputs:\n    Output: 1620258720\n    Output: 20.0\n")
    assert terminal.getvalue().splitlines()[1:] == [
        "    Output: 1620258720 (2021-05-05 23:52 UTC as a Unix time)", "    Output: 20"]
