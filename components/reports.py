"""Self-contained HTML reports that the Pipelines UI renders in its visualization tab.

Plots are PNGs embedded as base64 so the report is one file with no external
references (the UI sandboxes HTML artifacts). Tables are plain HTML.
"""

import base64
import html
import io
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display in a pod or in CI
import matplotlib.pyplot as plt  # noqa: E402

from components.storage import atomic_path  # noqa: E402

STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:1000px}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
         "th{background:#f3f3f3}img{max-width:100%}")


def figure_html(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'


def table_html(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def metrics_table_html(metrics: Mapping[str, float]) -> str:
    return table_html(["metric", "value"], metrics.items())


def write_report(path: str | Path, title: str, sections: Sequence[tuple[str, str]]) -> None:
    """Write an HTML page with a title and (heading, html body) sections."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<h2>{html.escape(heading)}</h2>{body}" for heading, body in sections]
    parts.append("</body></html>")
    with atomic_path(Path(path)) as tmp:
        tmp.write_text("".join(parts), encoding="utf-8")
