"""The model store on Google Cloud Storage: `gs://bucket/prefix/<model_name>/<N>/`.

TF-Serving and KServe read `gs://` model folders natively, so a cluster needs
no ReadWriteMany volume to share models between the deploy step and the
server. The layout is TF-Serving's, as in `components.store.folder`. A bucket keeps
no labels record: its labels live with its server (on a cluster the `serving-<model>`
ConfigMap); without one, TF-Serving serves the highest version.

GCS has neither folders nor rename: `<N>/` exists as soon as one object has
that prefix, and several objects cannot appear at once. A version is
published in four moves, so that a server that polls the model folder never
loads half a version and no object is ever overwritten:

1. Claim N: create the marker `<model>/.claims/<N>` with `if_generation_match=0`,
   which GCS grants only if no object of that name exists. Two deploys can
   never take the same N; the one that loses takes the next number.
2. Upload every file under a hidden staging prefix, `<model>/.staging-<N>-<token>/`.
   Servers ignore folder names that are not numbers.
3. Copy the files server-side into `<model>/<N>/`, each with
   `if_generation_match=0`, the SavedModel's graph (`saved_model.pb`) last.
   Until that last copy the folder holds no SavedModel, which TF-Serving
   refuses to load (it retries later, `--max_num_load_retries`) instead of
   loading part of one; when the graph appears, every variable and asset it
   refers to is already in place. The window is a few server-side copies long.
4. Delete the staging objects.

Network errors: the client library retries transient failures itself for
these calls (every write carries a precondition, which makes it safe to
repeat). A repeated copy that finds its own earlier copy in place (same
checksum) counts as done; any other object in the way is an error.
"""

import json
import re
import secrets
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from components.common.errors import InputError, TransientError
from components.common.storage import gcs_client
from components.store.base import EVALUATION_FILE, ModelStore, PublishedVersion, check_extra_files, check_model_name
from components.store.serving_labels import ServingLabels

GRAPH_FILES = ("saved_model.pb", "saved_model.pbtxt")  # copied last: a server loads a version from these
MAX_CLAIM_ATTEMPTS = 100


def parse_gcs_uri(uri: str) -> tuple[str, str]:
    """`gs://bucket/some/prefix` -> ("bucket", "some/prefix") (the prefix may be empty)."""
    parsed = urlparse(uri)
    if parsed.scheme != "gs" or not parsed.netloc:
        raise InputError(f"model_base_path '{uri}' is not a gs://bucket/path URI")
    prefix = parsed.path.strip("/")
    if parsed.query or parsed.fragment or "//" in prefix:
        raise InputError(f"model_base_path '{uri}' is not a plain gs://bucket/path URI")
    return parsed.netloc, prefix


def taken_numbers(bucket, model_prefix: str) -> list[int]:
    """Version numbers published or claimed under `<model_prefix>/`, ascending."""
    found = set()
    listing = bucket.client.list_blobs(bucket, prefix=f"{model_prefix}/", delimiter="/")
    for _ in listing.pages:  # the prefixes are filled in as the pages are read
        pass
    for folder in listing.prefixes:
        name = folder[len(model_prefix) + 1:].rstrip("/")
        if re.fullmatch(r"[0-9]+", name):
            found.add(int(name))
    for claim in bucket.client.list_blobs(bucket, prefix=f"{model_prefix}/.claims/"):
        name = claim.name.rsplit("/", 1)[-1]
        if re.fullmatch(r"[0-9]+", name):
            found.add(int(name))
    return sorted(found)


def claim_version(bucket, model_prefix: str) -> int:
    """Take the next free version number with a create-only marker object."""
    from google.api_core.exceptions import PreconditionFailed

    number = (taken_numbers(bucket, model_prefix) or [0])[-1] + 1
    for _ in range(MAX_CLAIM_ATTEMPTS):
        try:
            bucket.blob(f"{model_prefix}/.claims/{number}").upload_from_string(
                b"", if_generation_match=0)
        except PreconditionFailed:
            number += 1  # another deploy claimed it first
            continue
        if not _has_objects(bucket, f"{model_prefix}/{number}/"):
            return number
        number += 1  # published without a claim (another tool): never write into it
    raise TransientError(f"gs://{bucket.name}/{model_prefix}: no free version number after "
                         f"{MAX_CLAIM_ATTEMPTS} attempts")


def model_files(model: Path) -> list[Path]:
    """The files to publish, relative to the model; the graph last."""
    if model.is_file():
        return [Path(model.name)]
    files = sorted(p.relative_to(model) for p in model.rglob("*") if p.is_file())
    if not files:
        raise InputError(f"model to deploy is an empty folder: {model}")
    return sorted(files, key=lambda p: (p.as_posix() in GRAPH_FILES, p.as_posix()))


def _copy_into_place(bucket, staged, target_name: str) -> None:
    from google.api_core.exceptions import PreconditionFailed

    try:
        bucket.copy_blob(staged, bucket, target_name, if_generation_match=0)
    except PreconditionFailed:
        existing = bucket.get_blob(target_name)
        staged.reload()
        if existing is None or existing.crc32c != staged.crc32c or existing.size != staged.size:
            raise InputError(f"gs://{bucket.name}/{target_name} already exists: "
                             "a published version is never overwritten") from None


def _has_objects(bucket, prefix: str) -> bool:
    return any(True for _ in bucket.client.list_blobs(bucket, prefix=prefix, max_results=1))


@dataclass(frozen=True)
class BucketStore(ModelStore):
    """The model store under `uri`, `gs://bucket/prefix` (checked at the first request)."""

    uri: str

    def _bucket(self, model_name: str):
        """The bucket, and `<prefix>/<model_name>` in it."""
        bucket_name, base_prefix = parse_gcs_uri(self.uri)
        model_prefix = f"{base_prefix}/{model_name}" if base_prefix else model_name
        return gcs_client(self.uri).bucket(bucket_name), model_prefix

    def published_versions(self, model_name: str) -> list[int]:
        bucket, model_prefix = self._bucket(model_name)
        return [number for number in taken_numbers(bucket, model_prefix)
                if _has_objects(bucket, f"{model_prefix}/{number}/")]

    def publish(self, model: Path, model_name: str, evaluation: dict | None = None,
                extra_files: dict[str, Path] | None = None) -> PublishedVersion:
        """The four moves of this module's notes; `evaluation.json` and `extra_files` are uploaded
        before the graph, like every other file."""
        if not model.exists():
            raise InputError(f"model to deploy not found: {model}")
        check_model_name(model_name)
        extra = check_extra_files(extra_files, model)
        bucket, model_prefix = self._bucket(model_name)
        files = model_files(model)

        number = claim_version(bucket, model_prefix)
        staging = f"{model_prefix}/.staging-{number}-{secrets.token_hex(4)}"
        staged = []
        try:
            if evaluation is not None:
                blob = bucket.blob(f"{staging}/{EVALUATION_FILE}")
                blob.upload_from_string(json.dumps(evaluation, indent=2, sort_keys=True), if_generation_match=0)
                staged.append((Path(EVALUATION_FILE), blob))
            for name, source in extra.items():
                blob = bucket.blob(f"{staging}/{name}")
                blob.upload_from_filename(str(source), if_generation_match=0)
                staged.append((Path(name), blob))
            for relative in files:
                blob = bucket.blob(f"{staging}/{relative.as_posix()}")
                source = model if model.is_file() else model / relative
                blob.upload_from_filename(str(source), if_generation_match=0)
                staged.append((relative, blob))
            for relative, blob in staged:  # in model_files' order: the graph last
                _copy_into_place(bucket, blob, f"{model_prefix}/{number}/{relative.as_posix()}")
        finally:
            for _, blob in staged:
                blob.delete()
        return PublishedVersion(number, f"gs://{bucket.name}/{model_prefix}/{number}")

    def evaluation(self, model_name: str, version: int) -> dict | None:
        bucket, model_prefix = self._bucket(model_name)
        blob = bucket.get_blob(f"{model_prefix}/{version}/{EVALUATION_FILE}")
        if blob is None:
            return None
        try:
            return json.loads(blob.download_as_bytes())
        except ValueError as error:
            raise InputError(f"{self.uri}/{model_name}/{version}/{EVALUATION_FILE} is not valid JSON") from error

    @contextmanager
    def local_copy(self, model_name: str, version: int):
        """Every object of `<model>/<N>/` downloaded into a temporary folder, kept for the block."""
        bucket, model_prefix = self._bucket(model_name)
        prefix = f"{model_prefix}/{version}/"
        with tempfile.TemporaryDirectory(prefix=f"{model_name}-{version}-") as folder:
            found = False
            for blob in bucket.client.list_blobs(bucket, prefix=prefix):
                relative = blob.name[len(prefix):]
                if not relative or relative.endswith("/"):
                    continue
                target = Path(folder) / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                blob.download_to_filename(str(target))
                found = True
            if not found:
                raise InputError(f"gs://{bucket.name}/{prefix}: no such version in the model store")
            yield Path(folder)

    def version_file(self, model_name: str, version: int, name: str) -> bytes | None:
        bucket, model_prefix = self._bucket(model_name)
        blob = bucket.get_blob(f"{model_prefix}/{version}/{name}")
        return None if blob is None else blob.download_as_bytes()

    def stored_labels(self, model_name: str) -> ServingLabels | None:
        return None  # a bucket's labels live with its server

    def record_labels(self, model_name: str, labels: ServingLabels) -> str:
        """Nothing to write: without a server, TF-Serving would serve the highest version,
        which `serving_labels` reads back."""
        return "the bucket is the deployment"

    def cluster_uri(self, claim_mount: str) -> str:
        return self.uri  # TF-Serving and KServe read gs:// themselves: no claim
