"""The container runner's own decisions, without an engine (tests/containers runs
the steps in real containers): hardening per mode, what gets mounted, the fsGroup
preparation, and kfp's handler put back after a run."""

import os
import stat

import pytest

from components.errors import InputError
from pipelines import container_runner
from pipelines.container_runner import ContainerSettings, apply_fs_group, container_steps, local_sources


@pytest.mark.parametrize("mode, user", [("root", "0:0"), ("nonroot", "1000:1000")])
def test_both_modes_drop_every_capability_and_write_only_to_mounts_and_tmp(mode, user):
    args = ContainerSettings(mode=mode).run_args()
    assert args["user"] == user
    assert args["cap_drop"] == ["ALL"] and "cap_add" not in args and "privileged" not in args
    assert args["security_opt"] == ["no-new-privileges"]
    assert args["read_only"] is True and list(args["tmpfs"]) == ["/tmp"]
    assert args.get("group_add") == (["1000"] if mode == "nonroot" else None)


def test_an_unknown_mode_is_one_line_naming_the_setting():
    with pytest.raises(InputError, match="CONTAINER_USER 'admin' is not one of root, nonroot"):
        ContainerSettings(mode="admin").check()


def test_absolute_local_sources_are_mounted_and_nothing_else(tmp_path):
    data = tmp_path / "prices"
    data.mkdir()
    (data / "sp500.csv").write_text("Date,Close\n")
    params = {"source": f"{data}/{{ticker}}.csv", "mnist": str(data / "sp500.csv"), "url": "https://x/y.csv",
              "bucket": "gs://b/p", "epochs": 3, "missing": "/nonexistent/folder/file.csv", "relative": "data.csv"}
    assert local_sources(params) == [data]


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


def test_kfps_docker_handler_is_replaced_for_the_run_and_put_back(tmp_path):
    from kfp import local
    from kfp.local import docker_task_handler

    original = docker_task_handler.DockerTaskHandler
    with container_steps(ContainerSettings(), [tmp_path]) as runner:
        assert type(runner) is local.DockerRunner  # kfp dispatches on this exact type
        assert docker_task_handler.DockerTaskHandler is not original
        assert issubclass(docker_task_handler.DockerTaskHandler, original)
        assert runner.container_run_args["read_only"] is True
    assert docker_task_handler.DockerTaskHandler is original


def test_the_nonroot_mode_restores_the_umask(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to group 1000 needs root")
    before = os.umask(0o022)
    try:
        with container_steps(ContainerSettings(mode="nonroot"), [tmp_path]):
            assert os.umask(0o002) == 0o002  # the host side creates group-writable task folders
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
    assert container_runner.FS_GROUP == tmp_path.stat().st_gid
