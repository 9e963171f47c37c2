"""Shared test set-up: quiet TensorFlow, the machine's own settings kept out, and helpers to run
the command line."""

import atexit
import functools
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]

# Settings of the machine and the person running the tests that the code under test would act on:
# a cluster (KFP_*, KUBECONFIG), credentials (Docker, Kaggle, Google Cloud), a tracking server.
# The tests give each one explicitly where they need it.
HOST_SETTINGS = ("KFP_HOST", "KFP_TOKEN", "KF_PIPELINES_SA_TOKEN_PATH", "KFP_NAMESPACE", "KFP_EXPERIMENT",
                 "KF_PIPELINES_UI_ENDPOINT", "KUBECONFIG", "DOCKER_CONFIG", "KAGGLE_USERNAME", "KAGGLE_KEY",
                 "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG",
                 "STORAGE_EMULATOR_HOST", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "TRACKING")
SEALED_HOME_MARK = "KFP_ML_TESTS_HOME"  # the home this run made (xdist workers inherit it)
sealed = False  # set by pytest_configure: every run but the container suite's


def seal_host_state() -> None:
    """An empty home for this test run, and none of HOST_SETTINGS: nothing the tests do reads
    ~/.docker/config.json, ~/.kube/config, ~/.kaggle, gcloud's or kfp's ~/.config, or the shell's
    KFP_HOST. Google's libraries are told they are not on GCE (they would ask 169.254.169.254), and
    MLflow to send no usage telemetry (it would fetch its configuration from mlflow-telemetry.io:
    its own check for a test run misses a process that imported mlflow outside a test)."""
    if os.environ.get(SEALED_HOME_MARK) != os.environ.get("HOME"):
        home = tempfile.mkdtemp(prefix="kfp-ml-tests-home-")
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        os.environ["HOME"] = os.environ[SEALED_HOME_MARK] = home
    for name in HOST_SETTINGS:
        os.environ.pop(name, None)
    os.environ.update({"NO_GCE_CHECK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})


class OutsideReach(RuntimeError):
    """A test reached past loopback. Not an OSError: no code path may take it for a network
    failure and go on (the image check, for one, warns and goes on when a registry cannot be asked)."""


def is_loopback(host) -> bool:
    """127.0.0.0/8, ::1, localhost and this machine's own name (/etc/hosts answers for it); also
    no host at all, and the unspecified address a server binds."""
    if isinstance(host, bytes):
        host = host.decode()
    if host in (None, "", "localhost", socket.gethostname()):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


@pytest.fixture(scope="session", autouse=True)
def loopback_only():
    """In this process, resolving a name or connecting to an address past loopback raises
    OutsideReach, and fails the test even where the code under test swallows the error. (Child
    processes are not watched here: `.ci/run` runs the tests where only loopback exists.)"""
    reached: list[str] = []
    if not sealed:  # the container suite: its engine may be anywhere DOCKER_HOST says
        yield reached
        return
    resolve, resolve_name, connect = socket.getaddrinfo, socket.gethostbyname, socket.socket.connect

    def refuse(what: str):
        reached.append(what)
        raise OutsideReach(f"a test tried to reach past loopback: {what}")

    def guarded_getaddrinfo(host, *args, **kwargs):
        return resolve(host, *args, **kwargs) if is_loopback(host) else refuse(f"resolve {host!r}")

    def guarded_gethostbyname(host):
        return resolve_name(host) if is_loopback(host) else refuse(f"resolve {host!r}")

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            refuse(f"connect to {address}")
        return connect(sock, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
        patch.setattr(socket, "gethostbyname", guarded_gethostbyname)
        patch.setattr(socket.socket, "connect", guarded_connect)
        yield reached


@pytest.fixture(autouse=True)
def nothing_reached_past_loopback(loopback_only):
    before = len(loopback_only)
    yield
    assert loopback_only[before:] == [], "a test reached past loopback"


def pytest_configure(config):
    # Before any test module is imported (kfp reads its context file's path from HOME on import).
    # The container suite (-m container) builds and pushes with the machine's Docker and pip settings.
    selected = config.getoption("markexpr") or ""
    if not ("container" in selected and "not container" not in selected):
        seal_host_state()
        global sealed
        sealed = True


def pytest_collection_modifyitems(items):
    """The files with end-to-end runs first, each file's tests in their own order. They take minutes:
    started first (`make test` keeps this order, --no-loadscope-reorder), the test processes end
    together on short files, rather than one running a pipeline alone while the others are done."""
    e2e_files = {item.path for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.path not in e2e_files)


def run_cli(*args: str, cwd: Path, **env: str | None) -> subprocess.CompletedProcess:
    """`python -m pipelines ...` as a user runs it, in `cwd` (where runs/ and model_store/ go),
    with `env` changes to the environment (None: unset)."""
    environment = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=environment)


COMPILE = """
import sys
from kfp import compiler
from pipelines import registry
compiler.Compiler().compile(registry.get(sys.argv[1]).make_pipeline(sys.argv[2] == "gpu"), sys.argv[3])
"""


def compile_documents(pipeline: str, path: Path, gpu: bool = False) -> tuple[dict, dict]:
    """`pipeline` (its GPU variant with `gpu`) compiled to `path` with this environment's settings,
    read back: (the pipeline spec, the platform spec). In a process of its own, as `make compile`
    compiles: kfp's resource setters call inspect.stack(), which here walks thousands of loaded
    modules for every frame it cannot place (a build takes seconds in a test process, 1 s in its own)."""
    import yaml

    done = subprocess.run([sys.executable, "-c", COMPILE, pipeline, "gpu" if gpu else "cpu", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform


@functools.cache
def pipeline_defaults(pipeline: str) -> dict:
    """Each input of `pipeline` with its default, built once per test process (compile_documents
    says why a build is slow in one)."""
    from pipelines import registry

    inputs = registry.get(pipeline).make_pipeline().component_spec.inputs
    return {name: spec.default for name, spec in inputs.items()}


def free_port() -> int:
    """A loopback port nobody listens on (a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def stalled_listener():
    """A loopback socket that accepts connections and never answers (the kernel completes the
    handshake); `accept()` on it returns once a client has connected."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener


@pytest.fixture
def stalled_port(stalled_listener):
    """The port of `stalled_listener`."""
    return stalled_listener.getsockname()[1]


@pytest.fixture(scope="session")
def image_registry():
    """A registry on loopback for the session (standins.registry): the image check asks it."""
    from standins.registry import RegistryStandIn

    with RegistryStandIn() as registry:
        yield registry


@pytest.fixture
def published_images(image_registry, monkeypatch) -> dict[str, str]:
    """What `make image publish` leaves with IMAGE in the loopback registry: IMAGE and IMAGE_GPU
    set to its repositories, and both tags of this version pushed there."""
    images = image_registry.project_images()
    for name, repository in images.items():
        monkeypatch.setenv(name, repository)
    return images


@pytest.fixture
def cli(tmp_path):
    return lambda *args: run_cli(*args, cwd=tmp_path)


def partial_files(root: Path) -> list[Path]:
    """Leftovers of an interrupted write (atomic_path's or the model store's temporaries)."""
    return [p for p in root.rglob("*") if ".partial" in p.name or p.name.startswith(".incoming-")]


def assert_failed_cleanly(result: subprocess.CompletedProcess, workdir: Path, pipeline: str,
                          exit_code: int, message: str) -> None:
    """A bad-input run: the given exit code, one last `error: …` line naming the
    culprit and no traceback on the terminal, nothing deployed, nothing half-written,
    and either (exit 1) the failed step ran once, left no output artifact and its
    traceback is in run.log, or (exit 2, refused up front) no run at all."""
    assert result.returncode == exit_code, result.stdout[-3000:] + result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and message in last_line, last_line
    terminal = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert "Traceback" not in terminal and terminal.count("error: ") == 1, terminal[-3000:]
    assert not (workdir / "model_store").exists()
    assert partial_files(workdir) == []
    if exit_code == 2:
        assert not (workdir / "runs").exists()
    else:
        failed_step = re.match(r"error: step '([^']+)' failed: ", last_line)[1]
        assert terminal.count(f"Executing task '{failed_step}'") == 1, "a failed step was run again"
        assert "Traceback" in next(workdir.glob(f"runs/{pipeline}/*/run.log")).read_text()
        step_dirs = list(workdir.glob(f"runs/{pipeline}/*/artifacts/*/{failed_step}"))
        assert [child for step_dir in step_dirs for child in step_dir.rglob("*") if child.is_file()] == []


@pytest.fixture
def cluster_pod(tmp_path, monkeypatch):
    """This process as a pod: API address in the environment, service-account and deployer folders."""
    from standins.http import self_signed_tls

    from components.cluster import api as kube_api

    tls, ca = self_signed_tls(tmp_path)
    folders = {}
    for name, token in (("serviceaccount", "pod-token"), ("deployer", "deployer-token")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "token").write_text(token)
        (folder / "ca.crt").write_bytes(ca.read_bytes())
        (folder / "namespace").write_text("kubeflow\n")
        folders[name] = folder
    monkeypatch.setattr(kube_api, "SERVICE_ACCOUNT_DIR", folders["serviceaccount"])
    monkeypatch.setattr(kube_api, "DEPLOYER_CREDENTIALS_DIR", folders["deployer"])
    monkeypatch.setattr(kube_api, "POLL_INTERVAL_S", 0.01)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    return tls, folders, monkeypatch


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` (SQLite store) on loopback for the session: its http:// URI."""
    from standins.mlflow import mlflow_server as start

    with start(tmp_path_factory.mktemp("mlflow")) as (uri, _):
        yield uri
