"""Every step of a local run in its own container, started from the step's image
(`make run RUNNER=docker`).

kfp 2.17's `local.DockerRunner` starts each step's container with
`auto_remove=True` and then reads its logs and exit code: a step that exits
quickly is gone before either is read, so its output is lost and a vanished
container counts as a success. It also mounts only the pipeline root and the
workspace. This module keeps kfp's runner type (kfp resolves the workspace's
path for it, and dispatches on it) and starts the steps itself, as the `Launch`
of the local runner's task handler (pipelines.local.attach): the container is
removed only after its logs are streamed whole and its exit status is read, the
model store is mounted too, every step runs hardened, and each container is
recorded in the run folder (`containers.jsonl`) with the image it came from.

The steps see their image and the mounted folders, nothing else of the host:
no checkout and no virtual environment.

Two identity modes, the same on a cluster (components/settings/cluster.py):

- `root` (default): uid 0, as most KFP component images run, with every
  capability dropped. Root-owned volumes (the workspace claim the KFP backend
  makes, most storage classes' volumes) are writable without any preparation.
  Run by a user other than root, the steps run as that user (the run folders
  are theirs), with the same hardening.
- `nonroot`: uid/gid 1000. On a cluster the volumes must be made writable for
  it (an fsGroup, or pre-owned volumes); here the runner does to the mounted
  folders what the kubelet does for a pod's fsGroup of 1000 (group-own them,
  make them group-writable and setgid) and runs the host side with umask 002,
  since kfp.local creates the task folders from the host.

Both modes: no privilege escalation, all capabilities dropped, a read-only
root file system with only the mounts and a tmpfs /tmp writable.
"""

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from components.common.errors import InputError
from pipelines.local.attach import Exited, Launch, Step

MODES = ("root", "nonroot")
NONROOT_UID = 1000
FS_GROUP = 1000
RECORD_FILE = "containers.jsonl"


@dataclass
class ContainerSettings:
    """How the step containers run."""
    mode: str = "root"
    network: str = "host"  # the engine here has no bridge; host or none
    mounts: list[Path] = field(default_factory=list)  # host folders mounted at the same path (the model store)
    read_only_mounts: list[Path] = field(default_factory=list)  # the same, read-only (local data sources)
    record: Path | None = None  # containers.jsonl: one line per step container

    def check(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"STEP_USER '{self.mode}' is not one of {', '.join(MODES)}")

    def run_args(self) -> dict[str, Any]:
        """docker-py `containers.run` arguments: identity and hardening."""
        args: dict[str, Any] = {
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": True,
            "tmpfs": {"/tmp": "rw,nosuid,nodev,size=2g"},
            "network_mode": self.network,
        }
        if self.mode == "root":
            # uid 0 when this runs as root (CI, a root-owned checkout). Run by another user, the
            # run folders are theirs, which uid 0 without capabilities could not write: the steps
            # run as that user instead, still with nothing else.
            args["user"] = f"{os.geteuid()}:{os.getegid()}"
        else:
            args["user"] = f"{NONROOT_UID}:{FS_GROUP}"
        return args


def check_image(image: str) -> str:
    """The image's id; one line naming the image and how to build it if the engine lacks it."""
    import docker

    try:
        client = docker.from_env()
    except docker.errors.DockerException as error:
        raise _no_engine(error) from error
    with contextlib.closing(client):
        try:
            client.ping()
        except docker.errors.DockerException as error:
            raise _no_engine(error) from error
        try:
            return client.images.get(image).id
        except docker.errors.ImageNotFound:
            try:
                return client.images.pull(image).id
            except docker.errors.DockerException as error:
                raise InputError(f"image {image} is not in the Docker engine and cannot be pulled: "
                                 "build it with `make image` (same IMAGE), or publish it and set IMAGE") from error


def for_run(settings: ContainerSettings, params: dict[str, Any]) -> ContainerSettings:
    """`settings` checked, with the run's mounts: the local model store (made if missing) read-write,
    and the local data the parameters name read-only."""
    settings.check()
    mounts = list(settings.mounts)
    store = params.get("model_base_path")
    if store and "://" not in str(store):
        Path(store).mkdir(parents=True, exist_ok=True)
        mounts.append(Path(store))
    return replace(settings, mounts=mounts, read_only_mounts=[*settings.read_only_mounts, *local_sources(params)])


def local_sources(params: dict[str, Any], exclude: tuple[str, ...] = ("model_base_path",)) -> list[Path]:
    """What parameters name by absolute path on this machine (`source=/data/{ticker}.csv`): a step
    in a container sees it only when it is mounted (read-only). A file is mounted alone; a
    `{ticker}` pattern mounts its folder, which must not be / or the home folder."""
    found = set()
    for name, value in params.items():
        if name in exclude or not isinstance(value, str) or not value.startswith("/") or "://" in value:
            continue
        path = Path(value.split("{", 1)[0]) if "{" in value else Path(value)
        if "{" in value or not path.exists():
            path = path if path.is_dir() else path.parent
        if not path.exists():
            continue
        if path.is_dir() and path in (Path("/"), Path.home()):
            raise InputError(f"{name} '{value}' would mount {path} into every step: keep the data in a "
                             "folder of its own")
        found.add(path)
    return sorted(found)


def _no_engine(error: Exception) -> InputError:
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    return InputError(f"no Docker engine answers at {where} ({type(error).__name__}): start dockerd or set DOCKER_HOST")


def apply_fs_group(folder: Path, gid: int = FS_GROUP) -> None:
    """What the kubelet does to a volume for a pod's fsGroup: group-own everything,
    make it group-writable, and setgid the folders so new files keep the group."""
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, -1, gid, follow_symlinks=False)
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        extra = 0o2070 if path.is_dir() else 0o060
        os.chmod(path, mode | extra)


def _launch(settings: ContainerSettings, workspace: Path) -> Launch:
    """The steps' launch: each in a container of its image, with the pipeline root at its own path,
    the workspace where kfp resolved it for a DockerRunner, and the run's mounts."""
    def launch(step: Step, emit: Callable[[str], None]) -> Exited:
        import docker
        from kfp.dsl import constants

        try:
            client = docker.from_env()
            with contextlib.closing(client):
                # As kfp's own handler: SELinux hosts relabel what they mount.
                mode = "rw,z" if "name=selinux" in client.info().get("SecurityOptions", []) else "rw"
                volumes = {step.pipeline_root: {"bind": step.pipeline_root, "mode": mode},
                           str(workspace): {"bind": constants.WORKSPACE_MOUNT_PATH, "mode": mode}}
                for folder in settings.read_only_mounts:
                    volumes[str(folder)] = {"bind": str(folder), "mode": "ro"}
                for folder in settings.mounts:
                    volumes[str(folder)] = {"bind": str(folder), "mode": mode}
                return Exited(run_container(client, step.image, step.command, volumes, step.environment,
                                            settings.run_args(), settings.record, emit))
        except docker.errors.DockerException as error:
            emit(f"error: the Docker engine failed the step: {error}")
            return Exited(1)

    return launch


_running: set = set()  # the step containers started and not yet removed
_stopping = threading.Event()  # set by stop_running_containers: no new step container starts


def stop_running_containers() -> None:
    """Kill every step container of this process (Ctrl-C, SIGTERM); none starts after this."""
    _stopping.set()
    for container in list(_running):
        with contextlib.suppress(Exception):
            container.kill()


def run_container(client, image: str, command: list[str], volumes: dict, environment: dict[str, str],
                  run_args: dict[str, Any], record: Path | None, emit: Callable[[str], None]) -> int:
    """Start the step's container, `emit` its output line by line, and return its exit status;
    the container is removed only after both were read, also on an error or Ctrl-C. An engine
    error is one line and a failed step."""
    import docker

    if _stopping.is_set():
        return 1
    started = time.monotonic()
    try:
        container = client.containers.create(image=image, command=command, volumes=volumes,
                                             environment=environment, **run_args)
    except docker.errors.DockerException as error:
        emit(f"error: the Docker engine refused the step's container: {error}")
        return 1
    _running.add(container)
    try:
        container.start()
        pending = b""
        for chunk in container.logs(stream=True, follow=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                emit(line.decode(errors="replace"))
        if pending:
            emit(pending.decode(errors="replace"))
        code = container.wait()["StatusCode"]
        if record is not None:
            _record(container, image, code, started, record)
        return code
    except docker.errors.DockerException as error:
        emit(f"error: the Docker engine failed the step's container: {error}")
        return 1
    finally:
        _running.discard(container)
        with contextlib.suppress(Exception):
            container.remove(force=True)


def _record(container, image: str, code: int, started: float, record: Path) -> None:
    container.reload()
    entry = {"container": container.id, "image": image, "image_id": container.image.id,
             "user": container.attrs["Config"].get("User"), "exit_code": code,
             "mounts": sorted(m["Destination"] for m in container.attrs.get("Mounts", [])),
             "read_only": container.attrs["HostConfig"].get("ReadonlyRootfs"),
             "cap_drop": container.attrs["HostConfig"].get("CapDrop"),
             "security_opt": container.attrs["HostConfig"].get("SecurityOpt"),
             "seconds": round(time.monotonic() - started, 2)}
    with open(record, "a", encoding="utf-8") as file:
        file.write(json.dumps(entry) + "\n")


@contextlib.contextmanager
def container_steps(settings: ContainerSettings, workspace: Path, folders: list[Path]) -> Iterator[tuple[Any, Launch]]:
    """For the length of a run: kfp's DockerRunner and the launch of each step in a container
    (`workspace` mounted where kfp resolves it), and, in the nonroot mode, `folders` prepared as an
    fsGroup volume would be."""
    from kfp import local

    settings.check()
    previous_umask = None
    if settings.mode == "nonroot":
        for folder in folders:
            try:
                apply_fs_group(folder)
            except PermissionError as error:
                raise InputError(f"the nonroot mode needs {folder} group-owned by {FS_GROUP} "
                                 f"and group-writable, and this user cannot make it so ({error.strerror})") from error
        previous_umask = os.umask(0o002)
    _stopping.clear()
    try:
        yield local.DockerRunner(**settings.run_args()), _launch(settings, workspace)
    finally:
        if previous_umask is not None:
            os.umask(previous_umask)
