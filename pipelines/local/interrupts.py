"""Ctrl-C and SIGTERM for the command line: one line, the shell's exit code, no traceback.

A signal is turned into KeyboardInterrupt in the main thread (SIGTERM as well, so that
every verb stops the same way, and so that `subprocess.Popen` does not wait for a
child it should leave). The exit code is the shell's convention, 128 + the signal:
130 for Ctrl-C, 143 for SIGTERM.

A local run's steps are child processes (and an mnist trial's workers, grandchildren):
on a terminal Ctrl-C reaches them too, but a SIGTERM sent to the command alone does
not, so `stop_children` ends them all; the run's task handler (pipelines.local.attach)
starts none of the steps kfp.local had queued once the signal came.
"""

import contextlib
import signal
import threading
from typing import Callable, Iterator

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
CHILD_GRACE_S = 5.0


class SignalState:
    """Which signal stopped the command, if any (the first one counts)."""

    def __init__(self):
        self.received: signal.Signals | None = None
        self.event = threading.Event()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.received, 130)

    @property
    def name(self) -> str:
        return self.received.name if self.received else "SIGINT"


@contextlib.contextmanager
def signals_as_keyboard_interrupt(on_first: Callable[[], None] | None = None) -> Iterator[SignalState]:
    """SIGINT and SIGTERM raise KeyboardInterrupt once (`on_first` runs before it); a second
    signal while the command cleans up is only recorded. The previous handlers come back after."""
    state = SignalState()

    def handler(signum, _frame):
        if state.received is not None:
            return
        state.received = signal.Signals(signum)
        state.event.set()
        if on_first is not None:
            on_first()
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, handler) for signum in EXIT_CODES}
    try:
        yield state
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def stop_children(grace_s: float = CHILD_GRACE_S, wait: bool = True) -> None:
    """SIGTERM every descendant process; with `wait`, SIGKILL those still there after `grace_s`."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    if wait:
        _, alive = psutil.wait_procs(children, timeout=grace_s)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
