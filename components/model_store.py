"""The model store: TF-Serving's versioned folder layout.

`<model_base_path>/<model_name>/<N>/` holds version N. TF-Serving serves the
highest integer folder by itself and ignores names that are not integers, so a
version is copied under a hidden temporary name and renamed into place only
when complete. An existing version is never overwritten: if another deploy took
number N meanwhile, this one becomes N+1.
"""

import os
import re
import shutil
import tempfile
from pathlib import Path

from components.errors import InputError


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


def publish_version(model: Path, model_base_path: Path | str, model_name: str) -> Path:
    """Copy `model` (a SavedModel folder or a single model file) in as a new version.

    Returns the new version folder (a `gs://` base path publishes to object
    storage: `components.gcs_model_store`, which returns the version's URI).
    """
    if str(model_base_path).startswith("gs://"):
        from components.gcs_model_store import publish_gcs_version

        return publish_gcs_version(model, str(model_base_path), model_name)
    if not model.exists():
        raise InputError(f"model to deploy not found: {model}")
    check_model_name(model_name)
    model_dir = Path(model_base_path) / model_name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=model_dir))
    try:
        if model.is_dir():
            shutil.copytree(model, staging, dirs_exist_ok=True)
        else:
            shutil.copy2(model, staging / model.name)
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
