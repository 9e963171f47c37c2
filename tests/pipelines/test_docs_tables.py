"""docs/pipelines/<pipeline>-parameters.md (pipelines.docs_tables): in sync with compiled/, one per
pipeline, the same for a -gpu twin, and every parameter described."""

import shutil

import pytest
from conftest import REPO

from pipelines import docs_tables

COMPILED = REPO / "compiled"
COMMITTED = REPO / "docs" / "pipelines"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("tables")
    docs_tables.write_tables(COMPILED, out)
    return out


def test_committed_tables_equal_a_fresh_generation(fresh):
    committed = sorted(p.name for p in COMMITTED.glob(f"*{docs_tables.SUFFIX}"))
    assert committed == sorted(p.name for p in fresh.iterdir()), "run make docs and commit docs/pipelines/"
    stale = [name for name in committed if (COMMITTED / name).read_text() != (fresh / name).read_text()]
    assert stale == [], f"out of date: {stale}: run make docs (or make compile) and commit them"


def test_one_table_per_pipeline_and_none_for_a_gpu_twin(fresh):
    names = {p.name for p in fresh.iterdir()}
    assert {"sp500-parameters.md", "mnist-parameters.md", "crypto-parameters.md"} == names


def test_a_gpu_twin_takes_its_cpu_pipelines_parameters():
    for twin in COMPILED.glob(f"*{docs_tables.GPU_SUFFIX}.yaml"):
        cpu = twin.with_name(twin.name.replace(docs_tables.GPU_SUFFIX, ""))
        assert docs_tables.pipeline_parameters(twin) == docs_tables.pipeline_parameters(cpu), twin.name


def test_every_parameter_has_a_row_with_type_default_and_description(fresh):
    table = (fresh / "sp500-parameters.md").read_text()
    parameters = docs_tables.pipeline_parameters(COMPILED / "sp500.yaml")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == sorted(parameters)
    assert "| `num_lags` | int | `3` | Lagged daily log returns per ticker. |" in rows
    assert all(row.count(" | ") == 3 and not row.endswith("|  |") for row in rows), "a parameter without a description"


def test_a_pipeline_no_longer_compiled_loses_its_table(tmp_path):
    compiled = tmp_path / "compiled"
    compiled.mkdir()
    shutil.copy(COMPILED / "sp500.yaml", compiled)
    out = tmp_path / "tables"
    out.mkdir()
    (out / "gone-parameters.md").write_text("old")
    (out / "notes.md").write_text("kept")
    docs_tables.write_tables(compiled, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.md", "sp500-parameters.md"]


def test_the_command_refuses_a_folder_without_packages(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        docs_tables.main(["--compiled-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")])
    assert stopped.value.code == 2 and "run make compile" in capsys.readouterr().err
