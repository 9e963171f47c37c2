"""bench/results.py: a bench script's report replaces its own section of the results file, which
the docs include by section; a failed report replaces nothing; a section whose measured code has
changed since, or that no script wrote, is stale, and the committed file has no stale section."""

import subprocess
import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import results  # noqa: E402  (bench/ is not a package)

SCRIPT = """
import sys
sys.path.insert(0, {bench!r})
from results import recorded
with recorded(sys.argv[1], measures=["bench/results.py"]):
    print("measured", sys.argv[2])
    if sys.argv[2] == "fail":
        raise SystemExit(3)
"""
COMMITTED = results.sections((REPO / "bench" / "results.md").read_text())


def bench(results_file, name: str, figure: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(bench=str(REPO / "bench")), name, figure],
                          env={"BENCH_RESULTS": str(results_file), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_each_script_replaces_its_own_section_and_keeps_the_others(tmp_path):
    results_file = tmp_path / "results.md"
    assert bench(results_file, "bench_a", "1").stdout.startswith("measured 1\n")  # still printed
    bench(results_file, "bench_b", "2")
    bench(results_file, "bench_a", "3")
    text = results_file.read_text()
    assert text.startswith("# What `make bench` measured")
    assert "measured 1" not in text and text.count("measured 3") == 1 and text.count("measured 2") == 1
    assert text.index("[start:bench_a]") < text.index("measured 3") < text.index("[end:bench_a]") \
        < text.index("[start:bench_b]")
    assert f"Code measured (sha256 {results.code_digest(['bench/results.py'])}): bench/results.py\n" in text
    assert results.stale_reason(results.sections(text)["bench_a"]) is None


def test_a_report_that_failed_leaves_the_file_alone(tmp_path):
    results_file = tmp_path / "results.md"
    bench(results_file, "bench_a", "1")
    before = results_file.read_text()
    assert bench(results_file, "bench_a", "fail").returncode == 3
    assert results_file.read_text() == before


def test_a_section_is_stale_once_the_code_it_measured_changes_or_goes(tmp_path):
    (tmp_path / "pkg").mkdir()
    for name in ("a.py", "b.py"):
        (tmp_path / "pkg" / name).write_text(f"# {name}\n")
    files = results.measured_files(["pkg/*.py"], root=tmp_path)
    assert files == ["pkg/a.py", "pkg/b.py"]
    text = results.section("bench_x", "1.0 s", files, results.code_digest(files, tmp_path))
    assert results.stale_reason(text, tmp_path) is None
    (tmp_path / "pkg" / "b.py").write_text("# b.py, faster\n")
    assert "changed since" in results.stale_reason(text, tmp_path)
    (tmp_path / "pkg" / "b.py").unlink()
    assert "pkg/b.py no longer exist" in results.stale_reason(text, tmp_path)


def test_a_section_no_script_wrote_is_stale():
    seeded = "<!-- --8<-- [start:bench_x] -->\nSeeded from the README's figures\n<!-- --8<-- [end:bench_x] -->\n"
    assert "not written by its bench script" in results.stale_reason(seeded)


def test_a_glob_that_names_no_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="pkg/gone.py names no file"):
        results.measured_files(["pkg/gone.py"], root=tmp_path)


@pytest.mark.parametrize("script", sorted((REPO / "bench").glob("bench_*.py")), ids=lambda path: path.stem)
def test_every_bench_has_a_section_in_the_committed_results(script):
    assert script.stem in COMMITTED, f"{script.name} has no section in bench/results.md for the docs to include"
    assert f'recorded("{script.stem}"' in script.read_text(), f"{script.name} does not record its results"


@pytest.mark.parametrize("name", sorted(COMMITTED), ids=str)
def test_no_committed_section_is_stale(name):
    reason = results.stale_reason(COMMITTED[name])
    assert reason is None, (f"bench/results.md's section {name} is stale: {reason}; run its script "
                            f"(python bench/{name.removesuffix('_full')}.py, or make bench) and commit the file")
