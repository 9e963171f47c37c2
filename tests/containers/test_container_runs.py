"""Every pipeline run as a user runs it with `make run RUNNER=docker`: each step in a
container started from the published image, hardened, on root-owned 0755 folders;
the same summary, index.html and reports as an in-process run."""

import os
import re
import stat
from pathlib import Path

import pytest

from containers.helpers import REPO, containers_record, make

pytestmark = pytest.mark.container

# Quick but complete runs: sp500 deploys (threshold 0.5) so the model store is written;
# mnist sweeps one trial for one epoch.
PIPELINES = {
    "sp500": "epochs=3 threshold=0.5",
    "crypto": "",
    "mnist": "sweep_grid=[[0.003,0]] epochs=1 threshold=0.5",
}
EXPECTED_MOUNTS = {"/kfp-workspace", "/tmp"}


def run_dir_of(output: str) -> Path:
    return Path(re.search(r"artifacts and log: (\S+) \(open index.html\)", output)[1])


def root_owned_0755(folder: Path) -> Path:
    folder.mkdir(parents=True)
    os.chown(folder, 0, 0)
    folder.chmod(0o755)
    return folder


def run_in_containers(pipeline: str, image, model_store: Path, params: str = "", **env: str):
    return make("run", "RUNNER=docker", f"PIPELINE={pipeline}", f"IMAGE={image.repository}",
                f"PARAMS={params} model_base_path={model_store}", timeout=900, **env)


@pytest.fixture(scope="module")
def as_root():
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs the container suite as root: root-owned folders need root to make")
        pytest.skip("root-owned folders need root to make (CI runs as root)")


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_each_step_runs_hardened_in_a_container_of_the_published_image(published_image, as_root, tmp_path, pipeline):
    model_store = root_owned_0755(tmp_path / "model_store")
    result = run_in_containers(pipeline, published_image, model_store, PIPELINES[pipeline])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert f"pipeline {pipeline}: SUCCEEDED" in output and "Traceback" not in output
    run_dir = run_dir_of(output)

    # One container per task, each from the image that was built, as uid 0 with nothing else.
    summary = output[output.rindex(f"pipeline {pipeline}:"):]
    tasks = re.findall(r"^  (\S+(?: #\d+)?)\s+SUCCESS\s", summary, re.M)  # a sweep's trials: train-trial #0, …
    record = containers_record(run_dir)
    assert len(record) == len(tasks) > 3
    pipeline_root = str(run_dir / "artifacts")
    for container in record:
        assert container["image_id"] == published_image.id
        assert container["image"] == published_image.tag
        assert container["user"] == "0:0" and container["exit_code"] == 0
        assert container["read_only"] is True and container["cap_drop"] == ["ALL"]
        assert "no-new-privileges" in container["security_opt"]
        # The step sees its image, the run's folders and the model store: no checkout, no virtual environment.
        assert set(container["mounts"]) <= EXPECTED_MOUNTS | {pipeline_root, str(model_store)}
        assert not any(mount.startswith(str(REPO)) for mount in container["mounts"] if mount != pipeline_root)

    # The mounts stayed root-owned 0755: the root mode needs no preparation.
    for folder in (run_dir / "artifacts", model_store):
        info = folder.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)

    # What an in-process run gives: the steps' own lines in the terminal and run.log, the reports, index.html.
    log = (run_dir / "run.log").read_text()
    assert "Streamed logs" in log
    assert (run_dir / "index.html").is_file() and (run_dir / "summary.txt").is_file()
    assert list((run_dir / "reports").glob("evaluate-*.html"))
    if pipeline != "crypto":  # crypto deploys through KServe on a cluster; locally when its gate passes
        assert f"model deployed to {model_store / pipeline / '1'}" in output
        assert (model_store / pipeline / "1" / "saved_model.pb").is_file()


def test_nonroot_mode_runs_as_uid_1000_with_an_fs_group_on_root_owned_folders(published_image, as_root, tmp_path):
    model_store = root_owned_0755(tmp_path / "model_store")
    result = run_in_containers("sp500", published_image, model_store, "epochs=3 threshold=0.5", STEP_USER="nonroot")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    run_dir = run_dir_of(output)
    record = containers_record(run_dir)
    assert record and {container["user"] for container in record} == {"1000:1000"}
    # What the kubelet does for an fsGroup: the volume group-owned by 1000, group-writable, setgid.
    info = model_store.stat()
    assert info.st_gid == 1000 and info.st_mode & stat.S_ISGID and info.st_mode & stat.S_IWGRP
    version = model_store / "sp500" / "1"
    assert (version / "saved_model.pb").stat().st_uid == 1000


def test_a_step_that_fails_at_once_is_one_line_and_keeps_its_log(published_image, as_root, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for ticker in ("sp500", "nasdaq"):
        (data / f"{ticker}.csv").write_text("Date,Open\n2015-01-02,1\n2015-01-05,2\n")
    result = run_in_containers("sp500", published_image, tmp_path / "model_store", f"source={data}/{{ticker}}.csv")
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "step 'download-prices' failed" in error_lines[0]
    assert "no 'Close' column" in error_lines[0]
    assert "Traceback" not in result.stdout
    run_dir = run_dir_of(result.stdout)
    assert "Traceback (most recent call last)" in (run_dir / "run.log").read_text()
    assert containers_record(run_dir)[0]["exit_code"] != 0
