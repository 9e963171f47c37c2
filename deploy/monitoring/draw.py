"""Draw the dashboard's panels from a live server through a real Prometheus, for docs/monitoring.md.

Grafana does not run here, so this draws the same panels itself: it starts the local model
server on loopback with a scripted story (sp500 version 1 stable; version 2 deployed as a
canary that refuses some requests; a broken mnist version that fails to load; the canary
promoted), lets a real Prometheus (the `prometheus` binary, e.g. Debian's package) scrape it
every 2 s with the rules of serving-rules.yaml, then asks that Prometheus for every panel's
expressions over the story and plots them with matplotlib. It also says which alerts became
pending or fired. It takes about four minutes:

    python deploy/monitoring/draw.py [--output docs/img/serving-dashboard.png] [--prometheus /usr/bin/prometheus]
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))  # run as a script: panels.py beside it
from panels import PANELS, grafana_to_promql  # noqa: E402

from components.serving import server as local_server  # noqa: E402
from components.store.folder import ServingLabels, publish_version, write_labels  # noqa: E402
from components.store.serving_config import MONITORING_PATH  # noqa: E402

HERE = Path(__file__).parent
SCRAPE_SECONDS = 2
RATE_WINDOW = "20s"  # what Grafana's $__rate_interval would be at this scrape interval and time range
N_FEATURES = 6
# The story, in seconds from the start.
CANARY_AT, BROKEN_AT, PROMOTE_AT, END_AT = 40, 80, 160, 220


def export_sp500(path: Path, model_type: str, seed: int) -> Path:
    import tensorflow as tf

    from pipelines.sp500.models import build_model, export_saved_model

    tf.keras.utils.set_random_seed(seed)
    train = np.random.default_rng(seed).normal(0, 0.01, size=(64, N_FEATURES)).astype(np.float32)
    export_saved_model(build_model(model_type, train, 0.01), path, f"{model_type}-{seed}")
    return path


def post(port: int, path: str, document: dict) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(document).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def story(store: Path, exports: dict[str, Path], port: int, started: float, stop: threading.Event) -> None:
    """Clients asking stable and canary, the deploys and the promote, on the story's clock."""
    rng = np.random.default_rng(0)
    good = {"instances": rng.normal(0, 0.01, size=(4, N_FEATURES)).tolist()}
    bad = {"instances": [[1.0, 2.0]]}  # a shape the signature refuses: INVALID_ARGUMENT
    done = set()
    while not stop.is_set():
        now = time.monotonic() - started
        if now >= CANARY_AT and "canary" not in done:
            publish_version(exports["v2"], store, "sp500")
            write_labels(store / "sp500", ServingLabels(stable=1, canary=2, canary_percent=20, known_versions=(1, 2)))
            done.add("canary")
        if now >= BROKEN_AT and "broken" not in done:
            publish_version(exports["broken"], store, "mnist")
            done.add("broken")
        if now >= PROMOTE_AT and "promote" not in done:
            write_labels(store / "sp500", ServingLabels(stable=2, known_versions=(1, 2)))
            done.add("promote")
        canary_out = "canary" in done and "promote" not in done
        label = "canary" if canary_out and rng.random() < 0.2 else "stable"
        body = bad if label == "canary" and rng.random() < 0.15 else good
        post(port, f"/v1/models/sp500/labels/{label}:predict", body)
        time.sleep(rng.exponential(0.08))


def start_prometheus(binary: str, workdir: Path, port: int) -> tuple[subprocess.Popen, int]:
    config = {"global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
              "rule_files": [str(HERE / "serving-rules.yaml")],
              "scrape_configs": [{"job_name": "tf-serving", "metrics_path": MONITORING_PATH,
                                  "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}
    (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    web_port = free_port()
    process = subprocess.Popen([binary, f"--config.file={workdir / 'prometheus.yml'}",
                                f"--storage.tsdb.path={workdir / 'data'}",
                                f"--web.listen-address=127.0.0.1:{web_port}"],
                               stdout=subprocess.DEVNULL, stderr=(workdir / "prometheus.log").open("w"))
    return process, web_port


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def query_range(web_port: int, expr: str, start: float, end: float) -> list[dict]:
    arguments = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": SCRAPE_SECONDS})
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/api/v1/query_range?{arguments}", timeout=60) as answer:
        document = json.load(answer)
    if document["status"] != "success":
        raise RuntimeError(f"{expr}: {document}")
    return document["data"]["result"]


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()


def draw(web_port: int, start: float, end: float, output: Path) -> list[str]:
    """The panels as Grafana would draw them; returns the titles of panels that came back empty."""
    fig, axes = plt.subplots(4, 2, figsize=(14, 15))
    empty = []
    for axis, panel in zip(axes.flat, PANELS, strict=False):
        drawn = 0
        for query in panel.queries:
            for series in query_range(web_port, grafana_to_promql(query.expr, rate_interval=RATE_WINDOW), start, end):
                times, values = zip(*((float(t) - start, float(v)) for t, v in series["values"]), strict=True)
                scale = 100 if panel.unit == "percentunit" else 1
                name = legend(query.legend, series["metric"])
                axis.plot(times, np.asarray(values) * scale, label=name)
                drawn += 1
        if not drawn:
            empty.append(panel.title)
        unit = {"reqps": "requests/s", "ms": "ms", "percentunit": "%", "short": "loads"}[panel.unit]
        axis.set(title=panel.title, xlabel="seconds", ylabel=unit)
        for at, event in ((CANARY_AT, "canary out"), (BROKEN_AT, "broken mnist"), (PROMOTE_AT, "promote")):
            axis.axvline(at, color="grey", linestyle=":", linewidth=1)
            axis.annotate(event, (at, 1), xycoords=("data", "axes fraction"), fontsize=8, color="grey",
                          rotation=90, va="top", ha="right")
        axis.legend(fontsize=7, loc="upper left")
    note = axes.flat[-1]
    note.set_axis_off()
    note.text(0, 0.9, "Drawn with matplotlib from a real Prometheus that scraped\n"
                      "the local server every 2 s (not a Grafana screenshot):\n"
                      "each panel's PromQL from deploy/monitoring/panels.py,\n"
                      f"with $__rate_interval = {RATE_WINDOW}.", va="top", fontsize=11)
    fig.suptitle("TF-Serving: served models (the panels of deploy/monitoring/serving-dashboard.json)")
    fig.tight_layout()
    fig.savefig(output, dpi=80)
    return empty


def alerts_seen(web_port: int, start: float, end: float) -> list[str]:
    series = query_range(web_port, "ALERTS", start, end)
    return sorted({f"{s['metric']['alertname']} ({s['metric']['alertstate']}, {s['metric'].get('label', '')})"
                   for s in series})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/img/serving-dashboard.png"))
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    args = parser.parse_args()
    if not shutil.which(args.prometheus):
        print(f"error: --prometheus {args.prometheus}: no such program (apt-get install prometheus)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="draw-dashboard-") as tmp:
        workdir = Path(tmp)
        exports = {"v1": export_sp500(workdir / "v1", "flat", 1), "v2": export_sp500(workdir / "v2", "deep", 2),
                   "broken": workdir / "broken"}
        exports["broken"].mkdir()
        (exports["broken"] / "notes.txt").write_text("not a model")
        store = workdir / "store"
        publish_version(exports["v1"], store, "sp500")
        write_labels(store / "sp500", ServingLabels(stable=1, known_versions=(1,)))  # as a first deploy does
        running = local_server.serve(store, host="127.0.0.1", grpc_port=0, rest_port=0, poll_seconds=0.5)
        prometheus, web_port = start_prometheus(args.prometheus, workdir, running.rest_port)
        stop = threading.Event()
        try:
            time.sleep(SCRAPE_SECONDS * 2)  # a first scrape before any traffic: rates start from zero
            started_wall, started = time.time(), time.monotonic()
            client = threading.Thread(target=story, args=(store, exports, running.rest_port, started, stop))
            client.start()
            time.sleep(END_AT)
            stop.set()
            client.join()
            time.sleep(SCRAPE_SECONDS * 2)
            empty = draw(web_port, started_wall, started_wall + END_AT, args.output)
            alerts = alerts_seen(web_port, started_wall, started_wall + END_AT)
        finally:
            stop.set()
            prometheus.terminate()
            prometheus.wait(timeout=30)
            running.stop()
    print(f"wrote {args.output}")
    print("alerts pending or firing: " + (", ".join(alerts) or "none"))
    if empty:
        print(f"error: panels with no data: {', '.join(empty)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
