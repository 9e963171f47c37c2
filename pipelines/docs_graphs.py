"""The docs' pictures, drawn as SVG into docs/img/ by `make docs` (and `make compile`).

- `<pipeline>-graph.svg`: each pipeline's tasks and their dependencies, read from its compiled
  package (`compiled/<pipeline>.yaml`), with the `dsl.If` condition and the `dsl.ParallelFor` loop
  drawn as frames around the tasks they hold. Drawn from the YAML, so the picture is what a cluster
  runs; `tests/pipelines/test_docs_graphs.py` checks every compiled task is in it.
- `release-flow.svg` and `cluster-layout.svg`: the release flow and the objects on a cluster,
  described here as small graphs (they are not in any compiled file).

matplotlib (already a dependency) draws them with a simple layered layout: a node's row is the
longest path from a source, so every arrow points down. Text stays text in the SVG and the box
sizes come from the labels' lengths, not from font metrics, so the files are the same on every
machine.

    python -m pipelines.docs_graphs [--compiled-dir compiled] [--output-dir docs/img]
"""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from components.common.storage import atomic_path
from pipelines.docs_tables import documented_packages

CHAR_WIDTH = 0.095  # inches per character of a 10-point label, generous for any sans-serif font
ROW_HEIGHT = 0.95
BOX_HEIGHT = 0.42
GAP = 0.35
MARGIN = 0.3


@dataclass
class Graph:
    """Nodes (id -> label), edges (source, target, label) and frames (label, node ids) around nodes."""

    title: str
    nodes: dict[str, str] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)
    frames: list[tuple[str, list[str]]] = field(default_factory=list)


def pipeline_graph(package: Path) -> Graph:
    """The executed tasks of a compiled package and their dependencies; a condition's or a loop's
    tasks inside a frame that says which."""
    spec = next(yaml.safe_load_all(package.read_text(encoding="utf-8")))
    graph = Graph(f"{spec['pipelineInfo']['name']}: compiled/{package.name}")
    # What a task stands for in the drawing: itself, or (a condition or a loop) the tasks it holds.
    inner: dict[str, list[str]] = {}

    def add_dag(dag: dict) -> None:
        for name, task in dag["tasks"].items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" not in component:
                graph.nodes[name] = name
                inner[name] = [name]
                continue
            add_dag(component["dag"])
            inner[name] = [leaf for child in component["dag"]["tasks"] for leaf in inner[child]]
            graph.frames.append((_frame_label(task), inner[name]))
        for name, task in dag["tasks"].items():
            for dependency in task.get("dependentTasks", []):
                graph.edges.extend((source, target, "") for source in inner[dependency]
                                   for target in _entry_tasks(spec, task, name, inner))

    add_dag(spec["root"]["dag"])
    return graph


def _entry_tasks(spec: dict, task: dict, name: str, inner: dict[str, list[str]]) -> list[str]:
    """The tasks an arrow into `task` reaches: the task, or those of its DAG without a dependency."""
    component = spec["components"][task["componentRef"]["name"]]
    if "dag" not in component:
        return [name]
    tasks = component["dag"]["tasks"]
    return [leaf for child, body in tasks.items() if not body.get("dependentTasks") for leaf in inner[child]]


def _frame_label(task: dict) -> str:
    if "triggerPolicy" in task:
        condition = task["triggerPolicy"]["condition"]
        left, _, right = condition.partition(" == ")
        channel = left.split("pipelinechannel--")[-1].rstrip("']")
        return f"if {channel} == {right}"
    iterator = task.get("parameterIterator", {}).get("items", {}).get("inputParameter", "items")
    limit = task.get("iteratorPolicy", {}).get("parallelismLimit")
    over = iterator.split("pipelinechannel--")[-1]
    return f"for each item of {over}" + (f" ({limit} at a time)" if limit else "")


RELEASE_FLOW = Graph(
    "The release: gate, deploy, stable or canary, promote or rollback",
    nodes={"evaluate": "evaluate", "gate": "gate-model", "refuse": "nothing deployed",
           "deploy": "deploy-model: version N+1", "stable": "label stable", "canary": "label canary",
           "promote": "make promote", "rollback": "make rollback"},
    edges=[("evaluate", "gate", ""), ("gate", "refuse", "refuse"), ("gate", "deploy", "deploy"),
           ("deploy", "stable", "canary_percent=100"), ("deploy", "canary", "<100"),
           ("canary", "promote", "to stable"), ("canary", "rollback", "dropped")],
    frames=[("serving labels", ["stable", "canary", "promote", "rollback"])])

CLUSTER_LAYOUT = Graph(
    "A cluster namespace (kubeflow, or a profile's)",
    nodes={"kfp": "Pipelines API", "gate": "gate pod", "deploy": "deploy pod", "pods": "step pods",
           "workspace": "workspace claim", "store": "model-store claim", "account": "kfp-ml-deployer",
           "serving": "TF-Serving", "labels": "labels ConfigMap", "kserve": "InferenceService"},
    edges=[("kfp", "gate", ""), ("kfp", "pods", "runs"), ("pods", "workspace", ""), ("gate", "deploy", ""),
           ("gate", "store", ""), ("deploy", "store", ""), ("deploy", "account", "token"),
           ("store", "serving", "mount"), ("account", "serving", ""), ("account", "labels", ""),
           ("account", "kserve", "")],
    frames=[("a run", ["gate", "deploy", "pods", "workspace"]),
            ("make model-store deployer", ["store", "account"]),
            ("serving objects", ["serving", "labels", "kserve"])])


def _rows(graph: Graph) -> dict[str, int]:
    """Each node's row: the longest path to it from a node without incoming edges."""
    row = dict.fromkeys(graph.nodes, 0)
    for _ in graph.nodes:  # at most len(nodes) relaxations in an acyclic graph
        for source, target, _label in graph.edges:
            row[target] = max(row[target], row[source] + 1)
    return row


def _positions(graph: Graph) -> tuple[dict[str, tuple[float, float, float]], float, float]:
    """Each node's centre and box width (inches), and the drawing's width and height."""
    rows, by_row = _rows(graph), {}
    for node in graph.nodes:  # a row keeps the nodes' declaration (task) order
        by_row.setdefault(rows[node], []).append(node)
    width_of = {node: CHAR_WIDTH * len(label) + 0.3 for node, label in graph.nodes.items()}
    row_widths = {row: sum(width_of[n] for n in nodes) + GAP * (len(nodes) - 1) for row, nodes in by_row.items()}
    width = max([*row_widths.values(), len(graph.title) * 1.1 * CHAR_WIDTH]) + 2 * MARGIN + 1.2  # bent arrows
    height = ROW_HEIGHT * len(by_row) + 2 * MARGIN + 0.5
    placed = {}
    for row, nodes in by_row.items():
        x = (width - row_widths[row]) / 2
        for node in nodes:
            placed[node] = (x + width_of[node] / 2, height - MARGIN - 0.6 - row * ROW_HEIGHT, width_of[node])
            x += width_of[node] + GAP
    return placed, width, height


def _frames(graph: Graph, placed: dict[str, tuple[float, float, float]]) -> list[tuple[str, tuple]]:
    """Each frame's label and rectangle (left, bottom, right, top) around its nodes."""
    frames = []
    for label, members in graph.frames:
        left = min(placed[m][0] - placed[m][2] / 2 for m in members) - 0.15
        right = max(placed[m][0] + placed[m][2] / 2 for m in members) + 0.15
        bottom = min(placed[m][1] for m in members) - BOX_HEIGHT / 2 - 0.15
        top = max(placed[m][1] for m in members) + BOX_HEIGHT / 2 + 0.15
        frames.append((label, (left, bottom, right, top)))
    return frames


def draw(graph: Graph, path: Path) -> None:
    """Write `graph` as an SVG to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "kfp-ml-pipelines", "font.size": 10,
                         "font.family": "sans-serif"})
    placed, width, height = _positions(graph)
    rows = _rows(graph)
    frames = _frames(graph, placed)
    # A frame's label goes beside it, on the right, where no arrow runs.
    width = max([width] + [right + 0.15 + CHAR_WIDTH * 0.9 * len(label) + MARGIN
                           for label, (_, _, right, _) in frames])
    figure = plt.figure(figsize=(width, height))
    axes = figure.add_axes((0, 0, 1, 1), xlim=(0, width), ylim=(0, height))
    axes.axis("off")
    axes.text(MARGIN, height - MARGIN, graph.title, fontsize=11, fontweight="bold", va="center")
    white = {"facecolor": "white", "edgecolor": "none", "pad": 1}
    for label, (left, bottom, right, top) in frames:
        axes.add_patch(FancyBboxPatch((left, bottom), right - left, top - bottom, boxstyle="round,pad=0.02",
                                      fill=False, linestyle="--", edgecolor="#7a7a7a", zorder=1))
        axes.text(right + 0.12, top - 0.15, label, fontsize=9, color="#555555", style="italic", va="center")
    for source, target, label in graph.edges:
        (x1, y1, _), (x2, y2, _) = placed[source], placed[target]
        # An arrow that skips a row bends, so that it passes beside the boxes between, not behind them;
        # straight down, it bends right from even rows and left from odd ones, so that two such arrows part.
        if rows[target] - rows[source] <= 1:
            bend = 0.0
        elif abs(x2 - x1) > 0.05:
            bend = -0.3 if x2 < x1 else 0.3
        else:
            bend = 0.3 if rows[source] % 2 == 0 else -0.3
        axes.annotate("", xy=(x2, y2 + BOX_HEIGHT / 2), xytext=(x1, y1 - BOX_HEIGHT / 2), zorder=2,
                      arrowprops={"arrowstyle": "-|>", "color": "#333333", "shrinkA": 2, "shrinkB": 2,
                                  "connectionstyle": f"arc3,rad={bend}"})
        if label:  # beside the arrow's middle, on the side it leans to, so two arrows' labels part
            leans_left = x2 < x1 - 0.05
            axes.text((x1 + x2) / 2 + (-0.08 if leans_left else 0.08), (y1 + y2) / 2, label, fontsize=9,
                      color="#b71c1c", va="center", ha="right" if leans_left else "left", bbox=white, zorder=4)
    for node, label in graph.nodes.items():
        x, y, box = placed[node]
        axes.add_patch(FancyBboxPatch((x - box / 2, y - BOX_HEIGHT / 2), box, BOX_HEIGHT, zorder=3,
                                      boxstyle="round,pad=0.02", facecolor="#e8eaf6", edgecolor="#3f51b5"))
        axes.text(x, y, label, ha="center", va="center", zorder=4)
    with atomic_path(path) as partial:
        figure.savefig(partial, format="svg", metadata={"Date": None})
    plt.close(figure)


def write_graphs(compiled_dir: Path, output_dir: Path) -> list[Path]:
    """Every picture: one per documented pipeline, the release flow and the cluster layout."""
    graphs = {f"{package.stem}-graph.svg": pipeline_graph(package) for package in documented_packages(compiled_dir)}
    graphs.update({"release-flow.svg": RELEASE_FLOW, "cluster-layout.svg": CLUSTER_LAYOUT})
    for name, graph in graphs.items():
        draw(graph, output_dir / name)
    return [output_dir / name for name in graphs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compiled-dir", type=Path, default=Path("compiled"))
    parser.add_argument("--output-dir", type=Path, default=Path("docs/img"))
    args = parser.parse_args(argv)
    if not documented_packages(args.compiled_dir):
        parser.error(f"no compiled pipeline in {args.compiled_dir}: run make compile")
    for path in write_graphs(args.compiled_dir, args.output_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
