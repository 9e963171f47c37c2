"""A module attribute, or environment variables, changed for the length of a `with` and then restored.

`swapped` puts the local runner's task handler in the place of kfp.local's for a run
(pipelines.local.attach, the one attribute of kfp a local run replaces), and the original back
however the run ends.

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
