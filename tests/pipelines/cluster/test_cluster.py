"""pipelines/cluster/ (connection, upload, runs, schedules, cron) against a local stand-in of the KFP API.

There is no cluster here: `standins.kfp_api.KfpStandIn` serves the v2beta1
endpoints the project calls on 127.0.0.1 and checks every request body
against the kfp-server-api models. The code under test is the real
`kfp.Client` path, configured only through the environment as a user does.
"""

import threading
import time

import pytest
from conftest import REPO, free_port
from kfp import compiler, dsl
from standins.kfp_api import KfpStandIn

from components.common.errors import InputError
from components.common.images import VERSION, cpu_component
from pipelines.cli import main as cli
from pipelines.cluster import commands, connection, packages, runs, upload
from pipelines.cluster import cron as cron_rules


@cpu_component  # the project's image, which the cluster commands insist on
def echo(text: str) -> str:
    return text


def toy_pipeline(name: str):
    @dsl.pipeline(name=name, description="a toy with one parameter of each type")
    def toy(threshold: float = 0.7, epochs: int = 3, tickers: str = "sp500", flag: bool = False,
            weights: list = [1, 2]):  # noqa: B006 - KFP reads the default from the signature
        echo(text=tickers)
    return toy


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """compiled/toy.yaml and compiled/toy-gpu.yaml, as `make compile` writes them."""
    directory = tmp_path_factory.mktemp("work") / "compiled"
    directory.mkdir()
    for name in ("toy", "toy-gpu"):
        compiler.Compiler().compile(toy_pipeline(name), str(directory / f"{name}.yaml"))
    return directory


@pytest.fixture
def env(monkeypatch, tmp_path, compiled):
    """A clean KFP environment: no token, no namespace, no kfp context file."""
    import kfp

    for name in ("KFP_HOST", "KFP_TOKEN", "KF_PIPELINES_SA_TOKEN_PATH", "KFP_NAMESPACE", "KFP_EXPERIMENT",
                 "KF_PIPELINES_UI_ENDPOINT", "WAIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.chdir(compiled.parent)  # packages are found in ./compiled, as `make compile` writes them
    monkeypatch.setattr(runs, "WAIT_POLL_S", 0)
    return monkeypatch


@pytest.fixture
def kfp_api(env):
    with KfpStandIn() as standin:
        env.setenv("KFP_HOST", standin.url)
        yield standin
        assert not standin.errors, standin.errors


def posts(standin) -> list[str]:
    return [path for method, path in standin.requests if method != "GET"]


# --------------------------------------------------------------------------- connect

def test_wrong_host_is_one_line_that_says_unreachable(env):
    port = free_port()
    env.setenv("KFP_HOST", f"http://127.0.0.1:{port}")
    with pytest.raises(InputError, match=rf"KFP_HOST http://127.0.0.1:{port} is unreachable: .*"
                                         r"kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80.* "
                                         r"KFP_HOST=http://localhost:8080"):
        connection.connect()


def test_host_that_is_not_kfp(env):
    with KfpStandIn() as standin:
        env.setenv("KFP_HOST", standin.url + "/not-kfp")
        with pytest.raises(InputError, match="did not answer as a Kubeflow Pipelines API: HTTP 404"):
            connection.connect()


def test_rejected_token_says_which_token(env):
    with KfpStandIn(token="right") as standin:
        env.setenv("KFP_HOST", standin.url)
        env.setenv("KFP_TOKEN", "wrong")
        with pytest.raises(InputError, match="rejected the token from KFP_TOKEN .HTTP 401"):
            connection.connect()
        env.delenv("KFP_TOKEN")
        with pytest.raises(InputError, match="rejected the token from no token"):
            connection.connect()


def test_token_file_authenticates_every_request(env, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("right\n")
    with KfpStandIn(token="right") as standin:
        env.setenv("KFP_HOST", standin.url)
        env.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
        upload.upload(connection.connect(), packages.package_path("toy"))
        assert len(standin.versions) == 1  # every call passed the token check
        env.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "missing"))
        with pytest.raises(InputError, match="cannot read token file"):
            connection.connect()


def test_login_page_instead_of_the_api(env):
    class LoginGateway(KfpStandIn):
        def handle(self, method, path, query, headers, body):
            return 200, b"<html><body>Log in</body></html>", "text/html"

    with LoginGateway() as standin:
        env.setenv("KFP_HOST", standin.url)
        with pytest.raises(InputError, match="answered with a web page.*missing or rejected"):
            connection.connect()


def test_multi_user_needs_a_namespace_and_uses_it(env):
    with KfpStandIn(multi_user=True) as standin:
        env.setenv("KFP_HOST", standin.url)
        with pytest.raises(InputError, match="set KFP_NAMESPACE"):
            connection.connect()
        env.setenv("KFP_NAMESPACE", "team-a")
        assert runs.submit(connection.connect(), packages.package_path("toy"), {}, wait=False) == 0
        (pipeline,) = standin.pipelines.values()
        (experiment,) = standin.experiments.values()
        assert pipeline["namespace"] == experiment["namespace"] == "team-a"


# --------------------------------------------------------------------------- upload

def test_upload_new_then_same_version_is_a_no_op(kfp_api, capsys):
    package = packages.package_path("toy")
    first = upload.upload(connection.connect(), package)
    (pipeline,) = kfp_api.pipelines.values()
    (version,) = kfp_api.versions.values()
    assert pipeline["display_name"] == "toy" and version["display_name"] == VERSION
    assert kfp_api.packages[version["pipeline_version_id"]] == package.read_bytes()
    writes = len(posts(kfp_api))

    again = upload.upload(connection.connect(), package)
    assert again == first
    assert len(posts(kfp_api)) == writes, "re-uploading the same version must not write"
    assert "already uploaded" in capsys.readouterr().out


def test_gpu_variant_is_its_own_pipeline(kfp_api):
    assert cli.main(["upload", "toy", "--gpu"]) == 0
    assert [p["display_name"] for p in kfp_api.pipelines.values()] == ["toy-gpu"]


def test_changed_package_under_the_same_version_is_refused(kfp_api, tmp_path, env):
    upload.upload(connection.connect(), packages.package_path("toy"))
    changed = tmp_path / "toy.yaml"
    changed.write_text(packages.package_path("toy").read_text() + "# edited\n")
    with pytest.raises(InputError, match="bump the project version"):
        upload.upload(connection.connect(), changed)
    assert len(kfp_api.versions) == 1


def test_new_project_version_adds_a_pipeline_version(kfp_api, env):
    upload.upload(connection.connect(), packages.package_path("toy"))
    env.setattr(upload, "VERSION", "9.9.9")
    upload.upload(connection.connect(), packages.package_path("toy"))
    assert len(kfp_api.pipelines) == 1
    assert sorted(v["display_name"] for v in kfp_api.versions.values()) == sorted([VERSION, "9.9.9"])


def test_missing_compiled_package(env):
    with pytest.raises(InputError, match=r"nope.yaml not found: run `make compile`"):
        packages.package_path("nope")


def test_a_gpu_package_of_a_pipeline_without_one_says_so(env):
    with pytest.raises(InputError, match=r"^crypto has no GPU variant .*leave out GPU=1"):
        packages.package_path("crypto", gpu=True)


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


def test_make_run_with_kfp_host_submits_the_compiled_sp500(kfp_api, env, capsys):
    """`KFP_HOST=… make run PIPELINE=sp500 PARAMS="threshold=0.5"` (WAIT=1 waits)."""
    env.chdir(REPO)
    if not (REPO / "compiled" / "sp500.yaml").exists():
        pytest.skip("compiled/sp500.yaml not compiled yet")
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


# --------------------------------------------------------------------------- timeouts

class StallingKfp(KfpStandIn):
    """Answers the health check, then holds every other request without answering."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        # Answering a client that gave up fails (broken pipe): expected, not worth a printed traceback.
        self.server.handle_error = lambda request, address: None

    def handle(self, method, path, query, headers, body):
        if path.endswith("/healthz"):
            return super().handle(method, path, query, headers, body)
        self.release.wait(30)
        return 503, {"message": "released"}, "application/json"


def test_a_stalled_api_fails_within_the_timeout_with_one_line(env, monkeypatch, capsys):
    monkeypatch.setattr(connection, "API_READ_TIMEOUT_S", 1)
    with StallingKfp() as standin:
        env.setenv("KFP_HOST", standin.url)
        started = time.monotonic()
        try:
            code = cli.main(["upload", "toy"])
        finally:
            standin.release.set()
        seconds = time.monotonic() - started
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"error: looking up pipeline 'toy': the Pipelines API at KFP_HOST {standin.url} did not "
                     "answer within 1s (connect 5s); try again later or check the cluster")
    assert seconds < 5
    stalled = [request for request in standin.requests if not request[1].endswith("/healthz")]
    assert len(stalled) == 1, "a request that timed out was sent again"


def test_every_api_call_gets_the_timeout(kfp_api, monkeypatch):
    conn = connection.connect()
    seen = []
    rest = conn.client._run_api.api_client.rest_client
    original = rest.pool_manager.request

    def recording(*args, **kwargs):
        seen.append(kwargs.get("timeout"))
        return original(*args, **kwargs)

    monkeypatch.setattr(rest.pool_manager, "request", recording)
    upload.upload(conn, packages.package_path("toy"))
    assert seen and all(t is not None and t.read_timeout == connection.API_READ_TIMEOUT_S
                        and t.connect_timeout == connection.API_CONNECT_TIMEOUT_S for t in seen)
