"""Line references in the docs: make's own `[Makefile:N: target]` lines, quoted as a terminal shows
them, point at that target's recipe; any other `file:N` reference is forbidden, since it rots with
the next edit (name the function or the setting instead)."""

import re

from conftest import REPO
from test_docs_variables import DOC_FILES

MAKE_ERROR = re.compile(r"\[Makefile:(\d+): ([\w-]+)\]")
FILE_LINE = re.compile(r"\b[\w./-]+\.(?:py|md|ya?ml|toml|sh|mk|txt|json|cfg):\d+\b")


def recipe_target(makefile_lines: list[str], number: int) -> str | None:
    """The target whose recipe holds line `number` (1-based), or None when it is no recipe line."""
    if not 0 < number <= len(makefile_lines) or not makefile_lines[number - 1].startswith("\t"):
        return None
    for line in reversed(makefile_lines[:number - 1]):
        rule = re.match(r"^([\w-]+):", line)
        if rule:
            return rule.group(1)
        if not line.startswith("\t") and not line.rstrip().endswith("\\"):
            return None
    return None


def test_make_error_lines_in_the_docs_point_at_their_recipe():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8").splitlines()
    quoted = [(path.relative_to(REPO).as_posix(), int(number), target) for path in DOC_FILES
              for number, target in MAKE_ERROR.findall(path.read_text(encoding="utf-8"))]
    assert quoted, "no make error line is quoted: this test checks nothing (drop it with the last one)"
    wrong = [f"{path}: Makefile:{number} is not a line of the {target} recipe" for path, number, target in quoted
             if recipe_target(makefile, number) != target]
    assert wrong == []


def test_the_docs_cite_no_other_file_by_line_number():
    cited = [f"{path.relative_to(REPO)}: {reference}" for path in DOC_FILES
             for reference in FILE_LINE.findall(MAKE_ERROR.sub("", path.read_text(encoding="utf-8")))]
    assert cited == [], "a line number goes stale at the next edit: name the function or setting"


def test_a_reference_to_another_line_is_caught():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8").splitlines()
    run_rule = next(number for number, line in enumerate(makefile, 1) if line.startswith("run:"))
    assert recipe_target(makefile, run_rule + 1) == "run"
    assert recipe_target(makefile, run_rule) is None  # the rule line itself
    assert recipe_target(makefile, 1) is None  # a comment
    assert FILE_LINE.search("see pipelines/cluster/packages.py:81")
