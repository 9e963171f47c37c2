"""bench/results.py: a bench script's report replaces its own section of the results file, which
the docs include by section; a failed report replaces nothing."""

import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT = """
import sys
sys.path.insert(0, {bench!r})
from results import recorded
with recorded(sys.argv[1]):
    print("measured", sys.argv[2])
    if sys.argv[2] == "fail":
        raise SystemExit(3)
"""


def bench(results, name: str, figure: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(bench=str(REPO / "bench")), name, figure],
                          env={"BENCH_RESULTS": str(results), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)


def test_each_script_replaces_its_own_section_and_keeps_the_others(tmp_path):
    results = tmp_path / "results.md"
    assert bench(results, "bench_a", "1").stdout.startswith("measured 1\n")  # still printed
    bench(results, "bench_b", "2")
    bench(results, "bench_a", "3")
    text = results.read_text()
    assert text.startswith("# What `make bench` measured")
    assert "measured 1" not in text and text.count("measured 3") == 1 and text.count("measured 2") == 1
    assert text.index("[start:bench_a]") < text.index("measured 3") < text.index("[end:bench_a]") \
        < text.index("[start:bench_b]")


def test_a_report_that_failed_leaves_the_file_alone(tmp_path):
    results = tmp_path / "results.md"
    bench(results, "bench_a", "1")
    before = results.read_text()
    assert bench(results, "bench_a", "fail").returncode == 3
    assert results.read_text() == before


@pytest.mark.parametrize("script", sorted((REPO / "bench").glob("bench_*.py")), ids=lambda path: path.stem)
def test_every_bench_has_a_section_in_the_committed_results(script):
    assert f"[start:{script.stem}]" in (REPO / "bench" / "results.md").read_text(), \
        f"{script.name} has no section in bench/results.md for the docs to include"
    assert f'recorded("{script.stem}")' in script.read_text(), f"{script.name} does not record its results"
