"""notebooks/explore.ipynb runs top to bottom on small data, with and without a run and a model store,
and is committed without outputs."""

import json

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

from components.store import open_store
from components.store.serving_labels import ServingLabels

NOTEBOOK = REPO / "notebooks" / "explore.ipynb"


def executed(root, monkeypatch, plots: int) -> str:
    """Run the notebook on small data against `root` (its runs/ and model_store/); return every text it showed.

    `plots`: the figures it must draw (the data's four, and the store's versions when it holds some).
    """
    monkeypatch.setenv("EXPLORE_SMALL", "1")
    monkeypatch.setenv("EXPLORE_ROOT", str(root))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # raises on a failed cell
    shown = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            shown.append(output.get("text", "") + output.get("data", {}).get("text/plain", ""))
    images = sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))
    assert images == plots
    return "\n".join(shown)


def test_without_a_run_or_a_store_it_says_how_to_make_them(tmp_path, monkeypatch):
    shown = executed(tmp_path, monkeypatch, plots=4)
    assert "small data: True" in shown
    assert "14 assets" in shown and "digits of 28x28 pixels" in shown
    assert "sp500: no run yet" in shown and "`make run PIPELINE=sp500` makes one" in shown
    assert "holds no model yet" in shown


def fake_run(root):
    """A finished sp500 run folder laid out as pipelines/local/run.py leaves it (summary.txt, executor outputs)."""
    run = root / "runs" / "sp500" / "20261204-101500-000001"
    (run / "artifacts" / "sp500-20261204" / "evaluate").mkdir(parents=True)
    (run / "summary.txt").write_text("pipeline sp500: SUCCEEDED in 18.7s\naccuracy: 0.5121\n\n"
                                     "parameters:\n  epochs = 30\n")
    (run / "artifacts" / "sp500-20261204" / "evaluate" / "executor_output.json").write_text(json.dumps(
        {"artifacts": {"metrics": {"artifacts": [{"metadata": {"accuracy": 0.5121, "always_up_accuracy": 0.543,
                                                               "display_name": "metrics"}}]}}}))
    older = root / "runs" / "sp500" / "20261203-090000-000000"
    older.mkdir(parents=True)
    (older / "summary.txt").write_text("pipeline sp500: FAILED in 1.0s\n")


def fake_store(root, model_dir):
    store = open_store(str(root / "model_store"))
    for accuracy, decision in ((0.61, "deploy"), (0.64, "deploy")):
        evaluation = {"metrics": {"accuracy": accuracy}, "gate_metric": "accuracy", "test_set": "2018-01..2018-12",
                      "run": f"run-{accuracy}", "gate": {"decision": decision, "reason": f"passed at {accuracy}"}}
        store.publish(model_dir, "sp500", evaluation=evaluation)
    store.record_labels("sp500", ServingLabels(stable=1, canary=2, canary_percent=20, known_versions=(1, 2)))


def test_with_a_run_and_a_store_it_shows_the_newest_run_and_every_version(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.txt").write_text("a model file")
    fake_run(tmp_path)
    fake_store(tmp_path, model)
    shown = executed(tmp_path, monkeypatch, plots=5)
    assert "pipeline sp500: SUCCEEDED in 18.7s" in shown and "FAILED" not in shown
    assert "parameters:" not in shown and "always_up_accuracy" in shown
    assert "mnist: no run yet" in shown
    assert "passed at 0.61" in shown and "passed at 0.64" in shown and "canary" in shown and "stable" in shown
    assert "holds no model yet" not in shown


def test_no_outputs_are_committed():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.parametrize("variable", ["EXPLORE_SMALL", "EXPLORE_ROOT"])
def test_the_variables_the_docs_name_are_the_ones_it_reads(variable):
    assert variable in NOTEBOOK.read_text() and variable in (REPO / "docs" / "notebook.md").read_text()
