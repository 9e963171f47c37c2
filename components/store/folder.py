"""The model store: TF-Serving's versioned folder layout, each version with its evaluation.

`<model_base_path>/<model_name>/<N>/` holds version N. TF-Serving serves the
highest integer folder by itself (or the versions its model config names) and
ignores names that are not integers, so a version is copied under a hidden
temporary name (`.incoming-<host>-<pid>-…`) and renamed into place only when
complete. An existing version is never overwritten: if another deploy took
number N meanwhile, this one becomes N+1.

Every version carries `evaluation.json` beside the model: its metrics on the
pipeline's test set, that test set's description (the data window), the run
and the gate's verdict. TF-Serving reads only the SavedModel's own files and
KServe's LightGBM server only `*.bst` files, so the record disturbs neither.
The record also holds the model's `content_hash` (`content_hash` below), by
which the gate recognises a model identical to the one serving.

Which versions serve, and under which label (`stable`, `canary`), is the
`ServingLabels` record: `<model_name>/labels.json` in a local store; on a
cluster a ConfigMap (see `components.cluster.serving`), because the promote and
rollback commands run where the model store's claim is not mounted.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from components.common.errors import InputError
from components.common.storage import atomic_path

EVALUATION_FILE = "evaluation.json"
LABELS_FILE = "labels.json"
INCOMING_PREFIX = ".incoming-"
# A staging folder from another machine (a pod on the same claim) is only
# removed when nothing can still be writing it: copying a model takes minutes.
STALE_INCOMING_S = 6 * 3600


def versions(model_dir: Path) -> list[int]:
    """The version numbers present under `<model_base_path>/<model_name>`, ascending."""
    if not model_dir.is_dir():
        return []
    # ASCII digits only, as TF-Serving reads them ("²".isdigit() is true too).
    return sorted(int(p.name) for p in model_dir.iterdir() if re.fullmatch(r"[0-9]+", p.name))


def latest_version(model_dir: Path) -> int | None:
    found = versions(model_dir)
    return found[-1] if found else None


def check_model_name(model_name: str) -> None:
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise InputError(f"model_name '{model_name}' is not a valid folder name")


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
                    evaluation: dict | None = None) -> Path:
    """Copy `model` (a SavedModel folder or a single model file) in as a new version,
    with `evaluation` as its `evaluation.json`.

    Returns the new version folder (a `gs://` base path publishes to object
    storage: `components.store.bucket`, which returns the version's URI).
    """
    if is_gcs(model_base_path):
        from components.store.bucket import publish_gcs_version

        return publish_gcs_version(model, str(model_base_path), model_name, evaluation)
    if not model.exists():
        raise InputError(f"model to deploy not found: {model}")
    check_model_name(model_name)
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


def content_hash(model: Path) -> str:
    """What identifies a model's content: a SavedModel's signature and variable values
    (`components.common.saved_model.content_hash`: its files differ between identical trainings),
    for any other model (a LightGBM model file) the bytes of its files."""
    from components.common.saved_model import is_saved_model

    if model.is_dir() and is_saved_model(model):
        from components.common.saved_model import content_hash as saved_model_hash

        return saved_model_hash(model)
    if not model.exists():
        raise InputError(f"model not found: {model}")
    digest = hashlib.sha256()
    for path in sorted(p for p in (model.rglob("*") if model.is_dir() else [model]) if p.is_file()):
        digest.update(f"{path.relative_to(model) if model.is_dir() else path.name}|".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def is_gcs(model_base_path: Path | str) -> bool:
    """A bucket store (`gs://…`, `components.store.bucket`) rather than a folder."""
    return str(model_base_path).startswith("gs://")


def evaluation_at(model_base_path: str, model_name: str, version: int) -> dict | None:
    """Version N's stored evaluation, from a folder or a bucket store."""
    if is_gcs(model_base_path):
        from components.store.bucket import read_gcs_evaluation

        return read_gcs_evaluation(model_base_path, model_name, version)
    return read_evaluation(Path(model_base_path) / model_name, version)


def labels_at(model_base_path: str, model_name: str) -> "ServingLabels":
    """Which versions serve, read from the store: a folder's labels record, or for a
    bucket (whose labels live with its server) the highest version, as TF-Serving serves it."""
    if is_gcs(model_base_path):
        from components.store.bucket import gcs_versions

        found = gcs_versions(model_base_path, model_name)
        return ServingLabels(stable=found[-1] if found else None, known_versions=tuple(found))
    return current_labels(Path(model_base_path) / model_name)


def read_evaluation(model_dir: Path, version: int) -> dict | None:
    """Version N's stored evaluation, or None (a version published before records existed)."""
    path = model_dir / str(version) / EVALUATION_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise InputError(f"{path} is not valid JSON: {error}") from error


# --------------------------------------------------------------------------- labels

@dataclass(frozen=True)
class ServingLabels:
    """Which versions serve: `stable` for every client, `canary` (if any) for a share."""

    stable: int | None = None
    canary: int | None = None
    canary_percent: int = 0  # the canary's share of traffic where a router splits it (KServe)
    known_versions: tuple[int, ...] = field(default=())  # published versions (for a cluster record)

    def served(self) -> list[int]:
        return sorted({v for v in (self.stable, self.canary) if v is not None})

    def describe(self, router: bool = True) -> str:
        """`stable=1, canary=2 (20% of traffic)`; without a router that splits traffic
        (`router=False`: the local server, TF-Serving alone), what unlabelled requests get instead."""
        if self.stable is None:
            return "nothing labelled yet"
        text = f"stable={self.stable}"
        if not self.canary:
            return text
        if router:
            return text + f", canary={self.canary} ({self.canary_percent}% of traffic)"
        return text + (f", canary={self.canary} (asked for by label; requests without a label get the highest "
                       f"version, {max(self.served())}: the {self.canary_percent}% split is KServe's, on a cluster)")

    def to_json(self) -> dict:
        return {**asdict(self), "known_versions": list(self.known_versions)}

    @classmethod
    def from_json(cls, document: dict) -> "ServingLabels":
        return cls(document.get("stable"), document.get("canary"), int(document.get("canary_percent", 0)),
                   tuple(document.get("known_versions", ())))


def check_canary_percent(canary_percent: int) -> None:
    if not 1 <= canary_percent <= 100:
        raise InputError(f"canary_percent must be between 1 and 100 (100: no canary), got {canary_percent}")


def labels_after_deploy(current: ServingLabels, version: int, canary_percent: int) -> ServingLabels:
    """A full deploy makes `version` stable; a canary keeps stable and adds it as canary.

    With nothing stable yet (a first deploy) the version is stable whatever the share.
    """
    check_canary_percent(canary_percent)
    known = tuple(sorted({*current.known_versions, version}))
    if canary_percent == 100 or current.stable is None:
        return ServingLabels(stable=version, known_versions=known)
    return ServingLabels(current.stable, version, canary_percent, known)


def _check_known(version: int, available: list[int], model_name: str) -> None:
    if version not in available:
        listed = ", ".join(map(str, available)) or "none"
        raise InputError(f"version {version} of {model_name} is not in the model store (versions: {listed})")


def promoted(current: ServingLabels, available: list[int], model_name: str,
             version: int | None = None) -> ServingLabels:
    """`version` (default: the canary) becomes stable for all traffic; no canary remains."""
    target = version if version is not None else current.canary
    if target is None:
        return current  # no canary and no version named: nothing to promote
    _check_known(target, available, model_name)
    return ServingLabels(stable=target, known_versions=current.known_versions)


def rolled_back(current: ServingLabels, available: list[int], model_name: str,
                version: int | None = None) -> ServingLabels:
    """Without `version`: drop the canary (stable keeps all traffic). With it: serve
    that version as stable and drop any canary."""
    if version is None:
        return ServingLabels(stable=current.stable, known_versions=current.known_versions)
    _check_known(version, available, model_name)
    return ServingLabels(stable=version, known_versions=current.known_versions)


def read_labels(model_dir: Path) -> ServingLabels | None:
    """The store's labels record, or None when nothing has written one."""
    path = model_dir / LABELS_FILE
    try:
        return ServingLabels.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, AttributeError) as error:
        raise InputError(f"{path} is not a labels record: {error}") from error


def current_labels(model_dir: Path) -> ServingLabels:
    """The labels record; without one, the highest version is stable (what TF-Serving serves)."""
    found = read_labels(model_dir)
    if found is not None:
        return found
    latest = latest_version(model_dir)
    return ServingLabels(stable=latest, known_versions=tuple(versions(model_dir)))


def write_labels(model_dir: Path, labels: ServingLabels) -> None:
    # Under a temporary name, then renamed: a server polling the store never reads half a record.
    with atomic_path(model_dir / LABELS_FILE) as tmp:
        tmp.write_text(json.dumps(labels.to_json(), indent=2, sort_keys=True), encoding="utf-8")
        os.chmod(tmp, 0o644)
