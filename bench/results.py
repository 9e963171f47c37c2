"""What `make bench` measured, kept in bench/results.md, where the docs include it from.

Each bench script runs its report inside `recorded("<script>")`: what the report prints still goes
to the terminal, and when the report finishes without an exception it replaces that script's section
of the file (between pymdown snippets' section markers, so that a page includes one section with
`--8<-- "bench/results.md:bench_crypto"`), headed by when and on what it ran. The other sections
stay as they were. BENCH_RESULTS names another file (a scratch run that should not replace them).
"""

import contextlib
import io
import os
import re
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.md"
HEADER = "# What `make bench` measured\n\nEach section is replaced by its bench script's last complete run.\n"


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy."""

    def __init__(self, terminal):
        self.terminal, self.kept = terminal, io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.terminal.write(text)

    def flush(self) -> None:
        self.terminal.flush()


def section(name: str, body: str) -> str:
    """One script's section: its markers, a heading, when and where it ran, what it printed."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    command = " ".join(["python", *sys.argv]) if sys.argv and sys.argv[0] else name
    return (f"<!-- --8<-- [start:{name}] -->\n"
            f"Measured by `{command}` on {when}, {os.cpu_count()} CPUs, load average {load} at the end:\n\n"
            f"```text\n{body.rstrip()}\n```\n"
            f"<!-- --8<-- [end:{name}] -->\n")


def replace_section(text: str, name: str, new: str) -> str:
    """`text` with the section `name` replaced by `new`, or `new` appended when it has none."""
    pattern = re.compile(rf"<!-- --8<-- \[start:{re.escape(name)}\] -->\n.*?"
                         rf"<!-- --8<-- \[end:{re.escape(name)}\] -->\n", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: new, text, count=1)
    return text.rstrip("\n") + "\n\n" + new


@contextlib.contextmanager
def recorded(name: str):
    """Keep what the block prints and, when it ends without an exception, save it as section `name`."""
    terminal = sys.stdout
    tee = _Tee(terminal)
    sys.stdout = tee
    try:
        yield
    finally:
        sys.stdout = terminal
    path = Path(os.environ.get("BENCH_RESULTS", RESULTS))
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    path.write_text(replace_section(text, name, section(name, tee.kept.getvalue())), encoding="utf-8")
    print(f"results: section {name} of {path}")
