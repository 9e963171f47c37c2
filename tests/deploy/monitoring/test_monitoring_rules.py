"""The alert rules fire on the cases they are for, run by Prometheus's own rule tester (promtool test rules).

promtool comes with Prometheus, not with the Python packages: without it on the PATH (e.g. Debian's
`prometheus` package) the test is skipped, and the other monitoring tests still parse every expression.
"""

import shutil
import subprocess

import pytest
import yaml
from conftest import REPO
from monitoring_helpers import panels

RULES = REPO / "deploy" / "monitoring" / "serving-rules.yaml"


def requests(version: int, label: str, status: str, per_minute: int) -> dict:
    series = (f'{panels.REQUESTS}{{model_name="sp500",version="{version}",label="{label}",API="predict",'
              f'entrypoint="REST",status="{status}"}}')
    return {"series": series, "values": f"0+{per_minute}x30"}


def failed_loads(values: str) -> dict:
    return {"series": f'{panels.LOAD_ATTEMPTS}{{model_path="/models/mnist/1",status="fail",model_name="mnist",'
                      f'version="1"}}', "values": values}


CANARY_ALERT = {"exp_labels": {"severity": "warning", "model_name": "sp500"},
                "exp_annotations": {"summary": "sp500: the canary fails 2% more requests than stable; "
                                               "`make rollback MODEL=sp500` drops it"}}
LOAD_ALERT = {"exp_labels": {"severity": "warning", "model_name": "mnist", "version": "1", "status": "fail",
                             "model_path": "/models/mnist/1"},
              "exp_annotations": {"summary": "mnist version 1 failed to load (the server's log says why)"}}

CASES = {
    "a canary failing a fifth of its requests beside a stable version without errors": {
        "input_series": [requests(1, "stable", "OK", 100), requests(2, "canary", "OK", 80),
                         requests(2, "canary", "INVALID_ARGUMENT", 20)],
        "alert_rule_test": [{"eval_time": "4m", "alertname": "CanaryErrorRatioAboveStable", "exp_alerts": []},
                            {"eval_time": "12m", "alertname": "CanaryErrorRatioAboveStable",
                             "exp_alerts": [CANARY_ALERT]}],
        "promql_expr_test": [{"expr": f'{panels.ERROR_RATIO}{{label="stable"}}', "eval_time": "12m",
                              "exp_samples": [{"labels": f'{panels.ERROR_RATIO}{{label="stable",model_name="sp500"}}',
                                               "value": 0}]}],
    },
    "a canary as good as stable": {
        "input_series": [requests(1, "stable", "OK", 100), requests(2, "canary", "OK", 100)],
        "alert_rule_test": [{"eval_time": "12m", "alertname": "CanaryErrorRatioAboveStable", "exp_alerts": []}],
    },
    "a version that fails to load five times": {
        "input_series": [failed_loads("_ _ _ 1 2 3 4 5 5 5 5 5 5 5 5 5 5 5 5 5")],
        "alert_rule_test": [{"eval_time": "2m", "alertname": "ModelLoadFailed", "exp_alerts": []},
                            {"eval_time": "5m", "alertname": "ModelLoadFailed", "exp_alerts": [LOAD_ALERT]},
                            {"eval_time": "18m", "alertname": "ModelLoadFailed", "exp_alerts": []}],
    },
    "a version that fails to load once: its series starts at 1 and never grows": {
        "input_series": [failed_loads("_ _ _ 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1")],
        "alert_rule_test": [{"eval_time": "4m", "alertname": "ModelLoadFailed", "exp_alerts": [LOAD_ALERT]}],
    },
}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) is not installed")
@pytest.mark.parametrize("case", CASES)
def test_the_alerts_fire_on_what_they_are_for(case, tmp_path):
    tests = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
             "tests": [{"name": case, "interval": "1m", **CASES[case]}]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(["promtool", "test", "rules", str(tmp_path / "tests.yaml")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
