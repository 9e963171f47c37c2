"""What `make bench` measured, kept in bench/results.md, where the docs include it from.

Each bench script runs its report inside `recorded("<script>", measures=[...])`: what the report
prints still goes to the terminal, and when the report finishes without an exception it replaces
that script's section of the file (between pymdown snippets' section markers, so that a page
includes one section with `--8<-- "bench/results.md:bench_crypto"`), headed by when, on what
machine and at which commit it ran. The other sections stay as they were. BENCH_RESULTS names
another file (a scratch run that should not replace them).

`measures` lists the files whose code the figures are about (globs from the repository's root; the
script itself is always one). The section records a digest of their contents, and
tests/bench/test_bench_results.py fails when a section's files no longer have that digest: a
figure that the code has since changed under is stale, and `make bench` (or the one script) must
run again before the change lands. A digest of contents, not a commit: the results are committed
after the code they measured, and a change elsewhere does not make them stale.
"""

import contextlib
import hashlib
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.md"
# The line under a section's heading that names the measured files and their digest.
MEASURED_CODE = re.compile(r"^Code measured \(sha256 (?P<digest>[0-9a-f]{16})\): (?P<files>.+)$", re.M)
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


def measured_files(patterns: Iterable[str], root: Path = ROOT) -> list[str]:
    """The files the globs name, relative to `root`, sorted; a glob that names none is an error
    (a renamed module would otherwise leave its figures unwatched)."""
    found = set()
    for pattern in patterns:
        matches = [p for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts]
        if not matches:
            raise ValueError(f"bench: {pattern} names no file under {root}")
        found.update(p.relative_to(root).as_posix() for p in matches)
    return sorted(found)


def code_digest(files: Iterable[str], root: Path = ROOT) -> str:
    """A digest of the files' names and contents (16 hex digits)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _commit(files: list[str]) -> str:
    """The checkout's commit, marked when the measured files differ from it."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD")
    if head.returncode:
        return "no commit (not a git checkout)"
    changed = git("diff", "--quiet", "HEAD", "--", *files).returncode != 0
    return f"commit {head.stdout.strip()}" + (" with uncommitted changes to the measured files" if changed else "")


def section(name: str, body: str, files: list[str], digest: str) -> str:
    """One script's section: its markers, a heading (when, where, at which commit it ran, the digest
    of the code it measured), what it printed."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    command = " ".join(["python", *sys.argv]) if sys.argv and sys.argv[0] else name
    return (f"<!-- --8<-- [start:{name}] -->\n"
            f"Measured by `{command}` on {when} at {_commit(files)}, {os.cpu_count()} CPUs, "
            f"load average {load} at the end.\n"
            f"Code measured (sha256 {digest}): {' '.join(files)}\n\n"
            f"```text\n{body.rstrip()}\n```\n"
            f"<!-- --8<-- [end:{name}] -->\n")


def sections(text: str) -> dict[str, str]:
    """Each section of a results file by name, markers included."""
    return {match["name"]: match[0] for match in re.finditer(
        r"<!-- --8<-- \[start:(?P<name>[\w-]+)\] -->\n.*?<!-- --8<-- \[end:(?P=name)\] -->\n", text, re.S)}


def stale_reason(section_text: str, root: Path = ROOT) -> str | None:
    """Why a section no longer describes the code (None when it does): it was not written by its
    script, or a measured file changed or is gone since."""
    found = MEASURED_CODE.search(section_text)
    if not found:
        return "it was not written by its bench script (no digest of the code it measured)"
    files = found["files"].split()
    if missing := [name for name in files if not (root / name).is_file()]:
        return f"{', '.join(missing)} no longer exist(s)"
    if code_digest(files, root) != found["digest"]:
        return f"the code it measured changed since: {' '.join(files)}"
    return None


def replace_section(text: str, name: str, new: str) -> str:
    """`text` with the section `name` replaced by `new`, or `new` appended when it has none."""
    pattern = re.compile(rf"<!-- --8<-- \[start:{re.escape(name)}\] -->\n.*?"
                         rf"<!-- --8<-- \[end:{re.escape(name)}\] -->\n", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: new, text, count=1)
    return text.rstrip("\n") + "\n\n" + new


@contextlib.contextmanager
def recorded(name: str, measures: Iterable[str]):
    """Keep what the block prints and, when it ends without an exception, save it as section `name`,
    with the digest of the files `measures` names and of the running script."""
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    own = [script.relative_to(ROOT).as_posix()] if script and script.is_file() and script.is_relative_to(ROOT) else []
    files = measured_files([*own, *measures])
    digest = code_digest(files)  # the code as it was when the measuring began
    terminal = sys.stdout
    tee = _Tee(terminal)
    sys.stdout = tee
    try:
        yield
    finally:
        sys.stdout = terminal
    path = Path(os.environ.get("BENCH_RESULTS", RESULTS))
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    path.write_text(replace_section(text, name, section(name, tee.kept.getvalue(), files, digest)), encoding="utf-8")
    print(f"results: section {name} of {path}")
