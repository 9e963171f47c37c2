"""Every measured figure in the docs says where it comes from.

A measured figure (a time, a size or a ratio in a sentence that says it was measured: took, takes,
peak, faster, …) is either included from `bench/results.md` (`--8<-- "bench/results.md:<section>"`,
written by the bench scripts) or typed inside a marked measurement:

    <!-- measured: 2026-12-04, one `make run PIPELINE=mnist` on 2 cores -->
    … the figures …
    <!-- /measured -->

The marker gives the date (`2026-12-03 or before` where only the date the figure was written is
known) and how it was measured; the docs build hides it. A figure typed
anywhere else fails this test, so nobody presents a guess or a stale number as a measurement.
Settings (a 60 s budget, a 10 s timeout) are no measurements and need no marker: their sentences
say "default", "timeout", "every", not "took".
"""

import re

import pytest
from conftest import REPO
from test_docs_variables import DOC_FILES

FIGURE = re.compile(r"\b\d[\d,.]*\s?(?:s|ms|min|h|×|MB|GB|MiB|GiB)(?![\w/])")
MEASURING = re.compile(r"\b(?:took|takes|taking|measured|peaks?|faster|slower|median|costs?|adds"
                       r"|\d+-core|\d+ cores)\b", re.I)
# The date it was measured; "or before" where only the date the figure was written is known.
MARKED = re.compile(r"<!-- measured: (\d{4}-\d{2}-\d{2}(?: or before)?), ([^>]+?) -->(.*?)<!-- /measured -->", re.S)


def without_code(text: str) -> str:
    """The text without code blocks and code spans: what they show is an example, not a statement."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))


def unmarked_figures(text: str) -> list[str]:
    """The sentences outside every marked measurement that state a measured figure."""
    outside = re.sub(r"<!--.*?-->", "", MARKED.sub("", without_code(text)), flags=re.S)
    sentences = re.split(r"(?<=[.!?:])\s+|\n\s*\n|\n(?=\|)", outside)
    return [" ".join(sentence.split()) for sentence in sentences
            if FIGURE.search(sentence) and MEASURING.search(sentence)]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda path: path.relative_to(REPO).as_posix())
def test_every_measured_figure_is_marked_or_included(path):
    assert unmarked_figures(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda path: path.relative_to(REPO).as_posix())
def test_every_marker_closes_and_says_how(path):
    text = without_code(path.read_text(encoding="utf-8"))
    assert text.count("<!-- measured:") == len(MARKED.findall(text)) == text.count("<!-- /measured -->")
    for _date, how, figures in MARKED.findall(text):
        assert how.strip() and FIGURE.search(figures), f"{path}: a marker without a method or a figure"


def test_the_rule_tells_a_measurement_from_a_setting():
    assert unmarked_figures("`make run` took 20 s on a 2-core machine.") == ["took 20 s on a 2-core machine."]
    assert unmarked_figures("The retry budget is 60 s by default.") == []
    assert unmarked_figures("<!-- measured: 2026-12-04, make run -->\n`make run` took 20 s.\n<!-- /measured -->") == []
    assert unmarked_figures("Load + features is 4.3× faster.") == ["Load + features is 4.3× faster."]
