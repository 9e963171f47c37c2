"""What the monitoring tests share: deploy/monitoring/ on the import path, and a live server after some traffic.

The server runs in this process on loopback with two versions of sp500 (stable and
canary) and a model whose only version cannot be loaded, so that every series the
dashboard reads has samples: requests by label, refusals, and loads that succeed and fail.
"""

import json
import sys
import urllib.request

import pytest
from conftest import REPO

sys.path[:0] = [str(REPO / "deploy" / "monitoring"), str(REPO / "tests" / "components" / "serving")]

import panels  # noqa: E402, F401 - deploy/monitoring/panels.py, for the tests
from serving_server_helpers import FEATURES, export_model, post_json, wait_for  # noqa: E402

from components.serving import server as local_server  # noqa: E402
from components.store.folder import ServingLabels, publish_version, write_labels  # noqa: E402
from components.store.serving_config import MONITORING_PATH  # noqa: E402


def scrape(running) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{running.rest_port}{MONITORING_PATH}", timeout=30) as response:
        return response.read().decode()


def send_traffic(running) -> None:
    """Requests to each label and to no label, and refusals: a bad body, an unknown label."""
    body = {"instances": FEATURES.tolist()}
    for path in ("labels/stable", "labels/stable", "labels/canary", "versions/1"):
        assert post_json(running, f"/v1/models/sp500/{path}:predict", body)[0] == 200
    assert post_json(running, "/v1/models/sp500:predict", body)[0] == 200
    assert post_json(running, "/v1/models/sp500/labels/canary:predict", {"instances": [[1.0]]})[0] == 400
    assert post_json(running, "/v1/models/sp500/labels/beta:predict", body)[0] == 400


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring")
    store = root / "store"
    publish_version(export_model(root / "v1", "flat", 1, "tag-v1"), store, "sp500")
    publish_version(export_model(root / "v2", "deep", 2, "tag-v2"), store, "sp500")
    write_labels(store / "sp500", ServingLabels(stable=1, canary=2, canary_percent=20, known_versions=(1, 2)))
    broken = root / "broken"
    broken.mkdir()
    (broken / "notes.txt").write_text(json.dumps("not a model"))
    publish_version(broken, store, "mnist")
    running = local_server.serve(store, host="127.0.0.1", grpc_port=0, rest_port=0, poll_seconds=0.05)
    try:
        wait_for(lambda: 'status="fail"' in scrape(running))
        send_traffic(running)
        yield running
    finally:
        running.stop()
