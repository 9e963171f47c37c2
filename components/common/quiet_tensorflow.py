"""TensorFlow without its start-up noise, for the server, the request client and the steps' logs.

TensorFlow's C++ start-up lines ("I0000 00:00:... cudart_stub.cc:31] Could not find cuda
drivers", "E0000 ... failed call to cuInit" on a machine without a GPU, oneDNN notices) are
written to fd 2 at import and at the first look for devices, before absl's logging is set up,
whatever TF_CPP_MIN_LOG_LEVEL says. They say nothing a user can act on.
"""

import os
import re

# Their absl format: `I0000 00:00:... port.cc:153] oneDNN ...`, `E0000 ... failed call to cuInit`.
TENSORFLOW_START_UP = re.compile(r"^(?:[IWE]\d{4} \d\d:\d\d:\S+\s+\d+ \S+:\d+\]|WARNING: All log messages before absl)")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and let it look for devices) with its start-up lines dropped; any
    other line it writes to fd 2 (an error) still shows."""
    import sys
    import tempfile

    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        terminal = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()  # the device search logs once, now
        finally:
            os.dup2(terminal, 2)
            os.close(terminal)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if not TENSORFLOW_START_UP.match(line):  # anything else (an error) still shows
                    print(line, file=sys.stderr)
