"""The container runner's own decisions, without an engine (tests/containers runs
the steps in real containers): hardening per mode, what gets mounted, the fsGroup
preparation, and the runner and launch a run gets."""

import os
import stat
from pathlib import Path

import pytest

from components.common.errors import InputError
from pipelines.local import containers as container_runner
from pipelines.local.attach import Exited
from pipelines.local.containers import ContainerSettings, apply_fs_group, container_steps, local_sources


@pytest.mark.parametrize("mode", ["root", "nonroot"])
def test_both_modes_drop_every_capability_and_write_only_to_mounts_and_tmp(mode):
    args = ContainerSettings(mode=mode).run_args()
    # root: uid 0 when run as root (CI); run by another user, that user, whose run folders they are.
    assert args["user"] == (f"{os.geteuid()}:{os.getegid()}" if mode == "root" else "1000:1000")
    assert args["cap_drop"] == ["ALL"] and "cap_add" not in args and "privileged" not in args
    assert args["security_opt"] == ["no-new-privileges"]
    assert args["read_only"] is True and list(args["tmpfs"]) == ["/tmp"]


def test_an_unknown_mode_is_one_line_naming_the_setting():
    with pytest.raises(InputError, match="STEP_USER 'admin' is not one of root, nonroot"):
        ContainerSettings(mode="admin").check()


def test_local_data_is_mounted_narrowly_and_the_model_store_read_write(tmp_path):
    prices, digits = tmp_path / "prices", tmp_path / "digits"
    prices.mkdir()
    digits.mkdir()
    (digits / "mnist.npz").write_text("x")
    store = tmp_path / "store"
    params = {"source": f"{prices}/{{ticker}}.csv", "mnist": str(digits / "mnist.npz"), "url": "https://x/y.csv",
              "bucket": "gs://b/p", "epochs": 3, "missing": "/nonexistent/folder/file.csv", "relative": "data.csv",
              "model_base_path": str(store)}
    settings = container_runner.for_run(ContainerSettings(), params)
    assert settings.read_only_mounts == [digits / "mnist.npz", prices]  # a file alone, a pattern's folder
    assert settings.mounts == [store] and store.is_dir()
    assert ContainerSettings().mounts == [], "the caller's settings are not changed"


@pytest.mark.parametrize("value", ["/{ticker}.csv", str(Path.home()) + "/{ticker}.csv"])
def test_a_pattern_that_would_mount_the_root_or_home_folder_is_refused(value):
    with pytest.raises(InputError, match="would mount .* into every step: keep the data in a folder of its own"):
        local_sources({"source": value})


class FakeContainer:
    """A step container as docker-py returns it, scripted: its output chunks and exit status."""

    def __init__(self, chunks, code=0, fail_start=False):
        self.chunks, self.code, self.fail_start = chunks, code, fail_start
        self.removed = self.killed = False

    def start(self):
        import docker

        if self.fail_start:
            raise docker.errors.APIError("bind source path does not exist")

    def logs(self, stream, follow):
        yield from self.chunks

    def wait(self):
        return {"StatusCode": self.code}

    def kill(self):
        self.killed = True

    def remove(self, force):
        self.removed = True


class FakeClient:
    def __init__(self, container):
        self.containers = self
        self.container = container

    def create(self, **kwargs):
        return self.container


def test_output_split_mid_line_is_emitted_whole_and_the_container_removed():
    container, emitted = FakeContainer([b"epoch 1/2 lo", b"ss 0.69\nepoch 2", b"/2 loss 0.68\nno newline at the end"],
                                       code=3), []
    code = container_runner.run_container(FakeClient(container), "img", ["true"], {}, {}, {}, None, emitted.append)
    assert code == 3 and container.removed
    assert emitted == ["epoch 1/2 loss 0.69", "epoch 2/2 loss 0.68", "no newline at the end"]


def test_a_container_that_cannot_start_is_one_line_a_failed_step_and_removed():
    container, emitted = FakeContainer([], fail_start=True), []
    assert container_runner.run_container(FakeClient(container), "img", ["true"], {}, {}, {}, None,
                                          emitted.append) == 1
    assert container.removed
    (line,) = emitted
    assert line.startswith("error: the Docker engine failed the step's container:") and "bind source" in line


def test_after_a_stop_running_containers_are_killed_and_none_starts(tmp_path):
    container = FakeContainer([])
    container_runner._running.add(container)
    try:
        container_runner.stop_running_containers()
        assert container.killed
        assert container_runner.run_container(FakeClient(FakeContainer([b"x\n"])), "img", [], {}, {}, {}, None,
                                              print) == 1
    finally:
        container_runner._running.discard(container)
    with container_steps(ContainerSettings(), tmp_path, [tmp_path]):
        assert not container_runner._stopping.is_set(), "a new run starts steps again"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to group 1000 needs root")
def test_fs_group_preparation_is_what_the_kubelet_does(tmp_path):
    volume = tmp_path / "volume"
    (volume / "sub").mkdir(parents=True)
    (volume / "sub" / "file").write_text("x")
    for path in (volume, volume / "sub"):
        path.chmod(0o755)
    apply_fs_group(volume)
    for folder in (volume, volume / "sub"):
        info = folder.stat()
        assert info.st_gid == 1000 and info.st_mode & stat.S_ISGID and info.st_mode & stat.S_IWGRP
    assert (volume / "sub" / "file").stat().st_mode & stat.S_IWGRP


class FakeEngine(FakeClient):
    """docker-py's client for the launch: `from_env`, `info`, `close`, and the create it was asked for."""

    def __init__(self, container):
        super().__init__(container)
        self.created = {}

    def info(self):
        return {"SecurityOptions": ["name=seccomp"]}

    def create(self, **kwargs):
        self.created = kwargs
        return self.container

    def close(self):
        pass


def test_a_run_gets_kfps_docker_runner_and_a_launch_with_the_runs_mounts(tmp_path, monkeypatch):
    import docker
    from kfp import local
    from kfp.dsl import constants

    from pipelines.local.attach import Step

    engine = FakeEngine(FakeContainer([b"step line\n"]))
    monkeypatch.setattr(docker, "from_env", lambda: engine)
    store, workspace = tmp_path / "store", tmp_path / "workspace"
    settings = ContainerSettings(mounts=[store], read_only_mounts=[tmp_path / "data"])
    with container_steps(settings, workspace, [tmp_path]) as (runner, launch):
        assert type(runner) is local.DockerRunner  # kfp resolves the workspace's path for this exact type
        assert runner.container_run_args["read_only"] is True
        emitted = []
        assert launch(Step("img", ["python3", "-c", "x"], {"A": "1"}, "/root/p"), emitted.append) == Exited(0)
    assert emitted == ["step line"]
    assert engine.created["volumes"] == {
        "/root/p": {"bind": "/root/p", "mode": "rw"}, str(workspace): {"bind": constants.WORKSPACE_MOUNT_PATH,
                                                                        "mode": "rw"},
        str(tmp_path / "data"): {"bind": str(tmp_path / "data"), "mode": "ro"},
        str(store): {"bind": str(store), "mode": "rw"}}
    assert engine.created["environment"] == {"A": "1"} and engine.created["cap_drop"] == ["ALL"]


def test_the_nonroot_mode_restores_the_umask(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to group 1000 needs root")
    before = os.umask(0o022)
    try:
        with container_steps(ContainerSettings(mode="nonroot"), tmp_path, [tmp_path]):
            assert os.umask(0o002) == 0o002  # the host side creates group-writable task folders
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
    assert container_runner.FS_GROUP == tmp_path.stat().st_gid
