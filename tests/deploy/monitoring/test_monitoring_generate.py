"""The committed dashboard JSON and rules YAML are what deploy/monitoring/generate.py writes."""

import json
import subprocess
import sys

import yaml
from conftest import REPO

GENERATE = REPO / "deploy" / "monitoring" / "generate.py"


def run_generate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATE), *args], capture_output=True, text=True, timeout=120)


def test_the_committed_files_are_in_sync():
    result = run_generate("--check")
    assert result.returncode == 0, result.stderr


def test_the_dashboard_has_a_prometheus_query_per_panel_and_the_model_variable():
    board = json.loads((REPO / "deploy" / "monitoring" / "serving-dashboard.json").read_text())
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "model"]
    assert len(board["panels"]) == 7
    for panel in board["panels"]:
        assert panel["type"] == "timeseries" and panel["targets"], panel["title"]
        assert all(t["datasource"]["type"] == "prometheus" and t["expr"] for t in panel["targets"])


def test_the_rules_file_has_records_and_alerts():
    rules = yaml.safe_load((REPO / "deploy" / "monitoring" / "serving-rules.yaml").read_text())
    kinds = [("record" if "record" in rule else "alert") for group in rules["groups"] for rule in group["rules"]]
    assert kinds.count("record") == 2 and kinds.count("alert") == 4


def test_check_names_a_stale_file_and_fails(tmp_path):
    assert run_generate("--dir", str(tmp_path)).returncode == 0
    assert run_generate("--check", "--dir", str(tmp_path)).returncode == 0
    rules = tmp_path / "serving-rules.yaml"
    rules.write_text(rules.read_text().replace("> 0.05", "> 0.5"))
    result = run_generate("--check", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: {rules} is not what deploy/monitoring/generate.py writes: "
                                     "run make dashboard")
