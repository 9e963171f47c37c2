"""A module attribute, or environment variables, changed for the length of a `with` and then restored.

kfp.local (2.17) has no hook to run code around a task: its task dispatcher looks up the
handler class of the runner's type as a module attribute at every task
(`subprocess_task_handler.SubprocessTaskHandler`, `docker_task_handler.DockerTaskHandler`), and
the subprocess handler starts a step through the module function `run_local_subprocess`. A local
run replaces them for its duration: to keep a step's container until its exit status is read
(pipelines.local.containers), to start each task inside its MLflow run (pipelines.local.tracking),
and to start no step after a signal (pipelines.local.interrupts). `swapped` does it, and puts
the original back however the run ends.

The steps are processes that inherit this one's environment: `environment` sets variables for
them (and this process's clients) during a run, and restores their previous values after.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def swapped(owner: Any, name: str, replacement: Any) -> Iterator[Any]:
    """`owner.name` is `replacement` inside the `with` (which gets the original), the original after."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield original
    finally:
        setattr(owner, name, original)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` set in os.environ inside the `with`; after it, each variable as it was (or unset)."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
