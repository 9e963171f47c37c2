"""pipelines/cluster/ against the KFP API stand-in: runs and their parameters, recurring runs, the cron rules."""

import pytest
from conftest import REPO
from kfp_cluster_helpers import compiled as compiled  # fixtures: the alias marks them as used by name
from kfp_cluster_helpers import env as env
from kfp_cluster_helpers import kfp_api as kfp_api
from standins.registry import published_copy

from components.common.errors import InputError
from components.common.images import VERSION
from pipelines.cli import main as cli
from pipelines.cluster import commands, upload
from pipelines.cluster import cron as cron_rules

# --------------------------------------------------------------------------- run

def test_run_with_parameters_typed_from_the_compiled_yaml(kfp_api, capsys):
    params = {"threshold": "0.5", "epochs": "5", "flag": "yes", "weights": "[3, 4]", "tickers": "a,b"}
    assert commands.submit_run("toy", params, wait=False) == 0
    (run,) = kfp_api.runs.values()
    assert run["runtime_config"]["parameters"] == {
        "threshold": 0.5, "epochs": 5, "flag": True, "weights": [3, 4], "tickers": "a,b"}
    (experiment,) = kfp_api.experiments.values()
    assert experiment["display_name"] == "toy" and run["experiment_id"] == experiment["experiment_id"]
    assert f"/#/runs/details/{run['run_id']}" in capsys.readouterr().out  # the run's URL

    assert commands.submit_run("toy", {}, wait=False) == 0
    assert len(kfp_api.experiments) == 1, "the experiment is reused"
    assert len(kfp_api.versions) == 1, "the package is uploaded once"


@pytest.mark.parametrize("params, message", [
    ({"epochs": "3.5"}, r"epochs='3.5' is not an integer"),
    ({"threshold": "high"}, r"threshold='high' is not a number"),
    ({"threshold": "1.5"}, r"threshold must be between 0 and 1"),
    ({"flag": "maybe"}, r"flag='maybe' is not true or false"),
    ({"weights": "{}"}, r"weights='\{\}' is not a JSON list"),
    ({"epoch": "3"}, r"unknown parameter 'epoch' for toy: expected one of epochs, flag"),
])
def test_bad_parameters_fail_before_anything_is_sent(kfp_api, params, message):
    with pytest.raises(InputError, match=message):
        commands.submit_run("toy", params, wait=False)
    assert kfp_api.requests == []


@pytest.mark.parametrize("final_state, code", [("SUCCEEDED", 0), ("FAILED", 1), ("CANCELED", 1)])
def test_wait_prints_final_state_tasks_and_metrics(kfp_api, capsys, final_state, code):
    kfp_api.final_state = final_state
    assert commands.submit_run("toy", {"threshold": "0.5"}, wait=True) == code
    out = capsys.readouterr().out
    assert f"finished: {final_state}" in out and ": RUNNING" in out
    assert "train-model" in out and "95s" in out and "deploy-model" in out and "SKIPPED" in out
    assert "metrics: " + kfp_api.url in out


def test_make_run_with_kfp_host_submits_the_compiled_sp500(kfp_api, env, capsys, image_registry, tmp_path):
    """`KFP_HOST=… make run PIPELINE=sp500 PARAMS="threshold=0.5"` (WAIT=1 waits), with the
    repository's compiled/sp500.yaml as if compiled for an IMAGE in the loopback registry."""
    if not (REPO / "compiled" / "sp500.yaml").exists():
        pytest.skip("compiled/sp500.yaml not compiled yet")
    (tmp_path / "compiled").mkdir()
    (tmp_path / "compiled" / "sp500.yaml").write_text(
        published_copy((REPO / "compiled" / "sp500.yaml").read_text(), image_registry))
    env.chdir(tmp_path)
    env.setenv("WAIT", "1")
    assert cli.main(["run", "sp500", "threshold=0.5", "model_type=flat"]) == 0
    (run,) = kfp_api.runs.values()
    assert run["runtime_config"]["parameters"] == {"threshold": 0.5, "model_type": "flat"}
    assert "finished: SUCCEEDED" in capsys.readouterr().out


# --------------------------------------------------------------------------- recurring runs

def schedule(*extra: str, params: tuple[str, ...] = ()) -> int:
    """`make schedule`: parameters follow the pipeline name, options come after."""
    return cli.main(["schedule", "create", "toy", *params, "--cron", "0 0 6 * * *", *extra])


def test_schedule_create_sends_a_checked_recurring_run(kfp_api):
    assert schedule("--name", "toy-daily", "--start", "2030-01-01T00:00:00Z", "--end", "2031-01-01",
                    params=("threshold=0.6", "epochs=4")) == 0
    (recurring,) = kfp_api.recurring.values()
    assert recurring["display_name"] == "toy-daily"
    assert recurring["trigger"]["cron_schedule"] == {
        "cron": "0 0 6 * * *", "start_time": "2030-01-01T00:00:00Z", "end_time": "2031-01-01T00:00:00Z"}
    assert recurring["no_catchup"] is True and recurring["max_concurrency"] == "1"
    assert recurring["mode"] == "ENABLE"
    assert recurring["runtime_config"]["parameters"] == {"threshold": 0.6, "epochs": 4}
    (version,) = kfp_api.versions.values()
    assert recurring["pipeline_version_reference"]["pipeline_version_id"] == version["pipeline_version_id"]


def test_schedule_twice_is_a_no_op_or_refused_never_a_duplicate(kfp_api, capsys):
    assert schedule(params=("epochs=4",)) == 0
    first = set(kfp_api.recurring)
    assert schedule(params=("epochs=4",)) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert set(kfp_api.recurring) == first

    assert cli.main(["schedule", "create", "toy", "--cron", "0 30 7 * * MON-FRI"]) == 2
    assert "already exists" in capsys.readouterr().err and set(kfp_api.recurring) == first
    (kept,) = kfp_api.recurring.values()
    assert kept["trigger"]["cron_schedule"]["cron"] == "0 0 6 * * *"

    assert cli.main(["schedule", "create", "toy", "--cron", "0 30 7 * * MON-FRI", "--replace"]) == 0
    (replaced,) = kfp_api.recurring.values()
    assert replaced["trigger"]["cron_schedule"]["cron"] == "0 30 7 * * MON-FRI"
    assert set(kfp_api.recurring) != first


def test_moving_a_schedule_to_a_new_pipeline_version(kfp_api, env, capsys):
    assert schedule() == 0
    env.setattr(upload, "VERSION", "9.9.9")
    assert cli.main(["upload", "toy"]) == 0
    assert schedule() == 2, "the schedule is frozen on the old version until replaced"
    assert schedule("--replace") == 0
    (recurring,) = kfp_api.recurring.values()
    new = next(v for v in kfp_api.versions.values() if v["display_name"] == "9.9.9")
    assert recurring["pipeline_version_reference"]["pipeline_version_id"] == new["pipeline_version_id"]


def test_pause_resume_list_delete(kfp_api, capsys):
    for name in ("toy-a", "toy-b", "toy-c"):  # three, so that listing needs two pages
        assert schedule("--name", name) == 0
    assert cli.main(["schedule", "pause", "toy-b"]) == 0
    paused = next(r for r in kfp_api.recurring.values() if r["display_name"] == "toy-b")
    assert paused["mode"] == "DISABLE"
    assert cli.main(["schedule", "pause", "toy-b"]) == 0
    capsys.readouterr()

    assert cli.main(["schedule", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["name", "state", "schedule"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert set(rows) == {"toy-a", "toy-b", "toy-c"}
    assert "paused" in rows["toy-b"] and "enabled" in rows["toy-a"] and f"toy {VERSION}" in rows["toy-a"]

    assert cli.main(["schedule", "resume", "toy-b"]) == 0
    assert paused["mode"] == "ENABLE"
    assert cli.main(["schedule", "delete", "toy-b"]) == 0
    assert sorted(r["display_name"] for r in kfp_api.recurring.values()) == ["toy-a", "toy-c"]
    assert cli.main(["schedule", "delete", "toy-b"]) == 2
    assert "no recurring run named 'toy-b'" in capsys.readouterr().err


@pytest.mark.parametrize("cron", ["0 2 * * *", "0 0 6 * * 7", "* * * * * *", "0 0 6 L * *", "@every 10s",
                                  "0 0 6 * * * *", "@sometimes"])
def test_invalid_cron_is_refused_before_anything_is_sent(kfp_api, capsys, cron):
    assert cli.main(["schedule", "create", "toy", "--cron", cron]) == 2
    assert "CRON" in capsys.readouterr().err
    assert kfp_api.requests == []


@pytest.mark.parametrize("options, message", [
    (["--max-concurrency", "11"], "max concurrency 11 must be between 1 and 10"),
    (["--end", "2001-01-01"], "end time 2001-01-01T00:00:00Z is in the past"),
    (["--start", "2031-01-02", "--end", "2031-01-01"], "is not after start time"),
    (["--start", "tomorrow"], "is not an ISO 8601 time"),
])
def test_bad_schedule_options_are_refused_before_anything_is_sent(kfp_api, capsys, options, message):
    assert schedule(*options) == 2
    assert message in capsys.readouterr().err
    assert kfp_api.requests == []


# --------------------------------------------------------------------------- the cron rules

@pytest.mark.parametrize("cron", ["0 0 6 * * *", "0 */15 * * * *", "30 0 6 * * MON-FRI",
                                  "0 0 0 1 JAN-DEC/3 ?", "0 0 6,18 * * sun", "0 0 6 1-15/2 * *",
                                  "@daily", "@hourly", "@every 1h30m", "  0  0 6 * * *  "])
def test_valid_kfp_cron(cron):
    assert cron_rules.validate_cron(cron) == " ".join(cron.split())


@pytest.mark.parametrize("cron, message", [
    ("0 2 * * *", r"has 5 fields.*did you mean '0 0 2 \* \* \*'"),
    ("0 0 6 * *  * 2026", "has 7 fields"),
    ("0 60 6 * * *", "minutes field '60': '60' is outside 0-59"),
    ("0 0 6 0 * *", "day-of-month field '0'"),
    ("0 0 6 * 13 *", "month field '13'"),
    ("0 0 6 * * 7", "day-of-week field '7': '7' is outside 0-6"),
    ("0 0 6 * * FRI-MON", "starts after it ends"),
    ("0 0 6 * * MON#2", "is not a number or name"),
    ("0 0 */0 * * *", "step in '\\*/0' must be a positive integer"),
    ("*/30 * * * * *", "more than once a minute"),
    ("@every 59s", "more than once a minute"),
    ("@every soon", "is not a duration"),
    ("", "CRON is empty"),
])
def test_invalid_kfp_cron(cron, message):
    with pytest.raises(InputError, match=message):
        cron_rules.validate_cron(cron)
