"""pipelines/cluster/ against the KFP API stand-in: connecting, uploading packages, and the API timeouts."""

import threading

import pytest
from conftest import free_port
from kfp_cluster_helpers import compiled as compiled  # fixtures: the alias marks them as used by name
from kfp_cluster_helpers import env as env
from kfp_cluster_helpers import kfp_api as kfp_api
from standins.kfp_api import KfpStandIn

from components.common.errors import InputError
from components.common.images import VERSION
from pipelines.cli import main as cli
from pipelines.cluster import connection, packages, runs, upload


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


def test_gpu_variant_is_its_own_pipeline(kfp_api, image_registry, capsys):
    asked = len(image_registry.requests)
    assert cli.main(["upload", "toy", "--gpu"]) == 0
    assert [p["display_name"] for p in kfp_api.pipelines.values()] == ["toy-gpu"]
    assert image_registry.requests[asked:] == [("HEAD", f"/v2/kfp-ml-pipelines/manifests/{VERSION}")]  # its step
    assert "warning" not in capsys.readouterr().out, "the loopback registry was asked and answered"


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
        try:
            code = cli.main(["upload", "toy"])
        finally:
            standin.release.set()
    assert code == 2
    error = capsys.readouterr().err.strip()
    # The stand-in holds the request for 30 s and then answers 503: this error says the client gave up
    # after its own 1 s read timeout, however slow the machine is (no wall-clock bound needed).
    assert error == (f"error: looking up pipeline 'toy': the Pipelines API at KFP_HOST {standin.url} did not "
                     "answer within 1s (connect 5s); try again later or check the cluster")
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
