"""The model store on a folder: TF-Serving's versioned folder layout, each version with its evaluation.

`<model_base_path>/<model_name>/<N>/` holds version N. TF-Serving serves the
highest integer folder by itself (or the versions its model config names) and
ignores names that are not integers, so a version is copied under a hidden
temporary name (`.incoming-<host>-<pid>-…`) and renamed into place only when
complete. An existing version is never overwritten: if another deploy took
number N meanwhile, this one becomes N+1. Each version's `evaluation.json` is
described in `components.store.base`.

Which versions serve, and under which label (`stable`, `canary`), is the
`ServingLabels` record: `<model_name>/labels.json` in a local store; on a
cluster a ConfigMap (see `components.cluster.labels`), because the promote and
rollback commands run where the model store's claim is not mounted.
"""

import json
import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from components.common.errors import InputError
from components.common.storage import atomic_path
from components.store.base import EVALUATION_FILE, ModelStore, PublishedVersion, check_extra_files, check_model_name
from components.store.serving_labels import ServingLabels

LABELS_FILE = "labels.json"
INCOMING_PREFIX = ".incoming-"
# A staging folder from another machine (a pod on the same claim) is only
# removed when nothing can still be writing it: copying a model takes minutes.
STALE_INCOMING_S = 6 * 3600


def published_versions(model_dir: Path) -> list[int]:
    """The version numbers present under `<model_base_path>/<model_name>`, ascending."""
    if not model_dir.is_dir():
        return []
    # ASCII digits only, as TF-Serving reads them ("²".isdigit() is true too).
    return sorted(int(p.name) for p in model_dir.iterdir() if re.fullmatch(r"[0-9]+", p.name))


def latest_version(model_dir: Path) -> int | None:
    found = published_versions(model_dir)
    return found[-1] if found else None


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_abandoned_incoming(model_dir: Path, now: float | None = None) -> list[Path]:
    """Remove staging folders of deploys that were killed; return what was removed.

    A folder made on this host whose process is gone is abandoned; one from
    another host (or named otherwise) only once it is older than STALE_INCOMING_S.
    A concurrent deploy's folder is left alone.
    """
    removed = []
    now = time.time() if now is None else now
    host = socket.gethostname()
    for staging in model_dir.glob(f"{INCOMING_PREFIX}*"):
        match = re.fullmatch(rf"{re.escape(INCOMING_PREFIX)}(.+)-(\d+)-[^-]+", staging.name)
        same_host = match is not None and match[1] == host
        try:
            age = now - staging.stat().st_mtime
        except FileNotFoundError:  # its deploy finished meanwhile
            continue
        if (same_host and not _pid_running(int(match[2]))) or (not same_host and age > STALE_INCOMING_S):
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    return removed


def publish_version(model: Path, model_base_path: Path | str, model_name: str,
                    evaluation: dict | None = None, extra_files: dict[str, Path] | None = None) -> Path:
    """Copy `model` (a SavedModel folder or a single model file) in as a new version,
    with `evaluation` as its `evaluation.json` and `extra_files` beside it; returns the new version folder."""
    if not model.exists():
        raise InputError(f"model to deploy not found: {model}")
    check_model_name(model_name)
    extra = check_extra_files(extra_files, model)
    model_dir = Path(model_base_path) / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    for abandoned in remove_abandoned_incoming(model_dir):
        print(f"removed {abandoned.name}, left by a deploy that did not finish", flush=True)
    prefix = f"{INCOMING_PREFIX}{socket.gethostname()}-{os.getpid()}-"
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=model_dir))
    try:
        if model.is_dir():
            shutil.copytree(model, staging, dirs_exist_ok=True)
        else:
            shutil.copy2(model, staging / model.name)
        if evaluation is not None:
            (staging / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2, sort_keys=True),
                                                   encoding="utf-8")
        for name, source in extra.items():
            shutil.copyfile(source, staging / name)
        os.chmod(staging, 0o755)
        while True:
            target = model_dir / str((latest_version(model_dir) or 0) + 1)
            if target.exists():
                continue
            try:
                # rename(2) onto an existing non-empty folder fails, so a version
                # that another deploy completed meanwhile is never replaced.
                os.rename(staging, target)
            except OSError:
                if target.exists():
                    continue
                raise
            return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_evaluation(model_dir: Path, version: int) -> dict | None:
    """Version N's stored evaluation, or None (a version published before records existed)."""
    path = model_dir / str(version) / EVALUATION_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise InputError(f"{path} is not valid JSON: {error}") from error


def read_labels(model_dir: Path) -> ServingLabels | None:
    """The folder's labels record, or None when nothing has written one."""
    path = model_dir / LABELS_FILE
    try:
        return ServingLabels.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, AttributeError) as error:
        raise InputError(f"{path} is not a labels record: {error}") from error


def write_labels(model_dir: Path, labels: ServingLabels) -> None:
    # Under a temporary name, then renamed: a server polling the store never reads half a record.
    with atomic_path(model_dir / LABELS_FILE) as tmp:
        tmp.write_text(json.dumps(labels.to_json(), indent=2, sort_keys=True), encoding="utf-8")
        os.chmod(tmp, 0o644)


@dataclass(frozen=True)
class FolderStore(ModelStore):
    """The model store in a folder: on this machine, or a claim mounted in a pod."""

    root: Path

    def model_dir(self, model_name: str) -> Path:
        check_model_name(model_name)
        return self.root / model_name

    def published_versions(self, model_name: str) -> list[int]:
        return published_versions(self.model_dir(model_name))

    def publish(self, model: Path, model_name: str, evaluation: dict | None = None,
                extra_files: dict[str, Path] | None = None) -> PublishedVersion:
        version_dir = publish_version(model, self.root, model_name, evaluation, extra_files)
        return PublishedVersion(int(version_dir.name), str(version_dir))

    def version_file(self, model_name: str, version: int, name: str) -> bytes | None:
        try:
            return (self.model_dir(model_name) / str(version) / name).read_bytes()
        except FileNotFoundError:
            return None

    def evaluation(self, model_name: str, version: int) -> dict | None:
        return read_evaluation(self.model_dir(model_name), version)

    @contextmanager
    def local_copy(self, model_name: str, version: int):
        folder = self.model_dir(model_name) / str(version)
        if not folder.is_dir():
            raise InputError(f"{folder}: no such version in the model store")
        yield folder

    def stored_labels(self, model_name: str) -> ServingLabels | None:
        return read_labels(self.model_dir(model_name))

    def write_labels(self, model_name: str, labels: ServingLabels) -> None:
        write_labels(self.model_dir(model_name), labels)

    def record_labels(self, model_name: str, labels: ServingLabels) -> str:
        """`labels.json`, which the local server re-reads on its next poll."""
        self.write_labels(model_name, labels)
        return ("the model store (with labels.json) is the deployment"
                + (f"; served locally: {labels.describe(router=False)}" if labels.canary else ""))

    def cluster_uri(self, claim_mount: str) -> str:
        if self.root != Path(claim_mount):
            raise InputError(f"model_base_path '{self.root}': on a cluster the model store claim is "
                             f"mounted at {claim_mount}, where the server reads it")
        return ""
