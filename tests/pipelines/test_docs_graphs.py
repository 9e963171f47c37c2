"""docs/img/ (pipelines.docs_graphs): each pipeline's picture shows every task its compiled package
runs, with the dependencies, the condition and the loop; the committed SVGs are what `make docs`
draws now."""

import html
import re

import pytest
import yaml
from conftest import REPO

from pipelines import docs_graphs

COMPILED = REPO / "compiled"
IMAGES = REPO / "docs" / "img"
PIPELINES = ("sp500", "crypto", "mnist")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    out = tmp_path_factory.mktemp("img")
    return {path.name: path for path in docs_graphs.write_graphs(COMPILED, out)}


def texts(svg: str) -> set[str]:
    """The words a reader sees in an SVG that matplotlib wrote with its text kept as text."""
    return {html.unescape(text).strip() for text in re.findall(r"<text[^>]*>([^<]*)</text>", svg)}


def executed_tasks(package) -> set[str]:
    """Every task of the package that runs a container, inside conditions and loops too."""
    spec = next(yaml.safe_load_all(package.read_text()))
    tasks, dags = set(), [spec["root"]["dag"]]
    while dags:
        for name, task in dags.pop()["tasks"].items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                dags.append(component["dag"])
            else:
                tasks.add(name)
    return tasks


def test_the_committed_pictures_are_what_make_docs_draws(fresh):
    assert sorted(fresh) == sorted(p.name for p in IMAGES.glob("*.svg")), "run make docs and commit docs/img/"
    stale = [name for name, path in fresh.items() if (IMAGES / name).read_text() != path.read_text()]
    assert stale == [], f"out of date: {stale}: run make docs (or make compile) and commit docs/img/"


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_compiled_task_is_in_its_pipelines_picture(pipeline):
    shown = texts((IMAGES / f"{pipeline}-graph.svg").read_text())
    tasks = executed_tasks(COMPILED / f"{pipeline}.yaml")
    assert {"gate-model", "deploy-model"} <= tasks
    assert tasks - shown == set(), f"docs/img/{pipeline}-graph.svg leaves out tasks"
    assert "if gate-model-Output == 'deploy'" in shown


def test_arrows_reach_into_and_out_of_a_loop_and_a_condition():
    mnist = docs_graphs.pipeline_graph(COMPILED / "mnist.yaml")
    edges = {(source, target) for source, target, _ in mnist.edges}
    assert {("preprocess-digits", "train-trial"), ("train-trial", "select-best-trial"),
            ("gate-model", "deploy-model"), ("evaluate", "gate-model")} <= edges
    frames = dict(mnist.frames)
    assert frames["for each item of sweep_grid (4 at a time)"] == ["train-trial"]
    assert frames["if gate-model-Output == 'deploy'"] == ["deploy-model"]


def test_every_arrow_points_down():
    for graph in (docs_graphs.pipeline_graph(COMPILED / "crypto.yaml"), docs_graphs.RELEASE_FLOW,
                  docs_graphs.CLUSTER_LAYOUT):
        rows = docs_graphs._rows(graph)
        assert all(rows[target] > rows[source] for source, target, _ in graph.edges), graph.title
