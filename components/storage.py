"""Reading sources by URI and writing outputs atomically.

A source is a local path, `file://`, `gs://bucket/key` (google-cloud-storage;
`STORAGE_EMULATOR_HOST` is honoured, which is how the tests reach a local
stand-in) or `http(s)://`. Network sources are retried with backoff; a source
that stays unreachable raises `InputError` naming it.

Every output is written under a temporary name beside its final place and
renamed when complete, so a failed step never leaves a half-written file.
"""

import contextlib
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import urlparse

from components.errors import InputError

T = TypeVar("T")
RETRIES = 4
FIRST_BACKOFF_S = 1.0


def display_uri(uri: str) -> str:
    """`uri` without its query string and fragment: a signed URL's token must not reach a log."""
    parsed = urlparse(uri)
    return parsed._replace(query="", fragment="").geturl() if parsed.query or parsed.fragment else uri


def with_retries(action: Callable[[], T], what: str, retries: int = RETRIES) -> T:
    """Run `action`, retrying transient failures (OSError) with exponential backoff."""
    for attempt in range(1, retries + 1):
        try:
            return action()
        except InputError:
            raise
        except OSError as error:
            if attempt == retries:
                raise InputError(f"{what} unreachable after {retries} attempts: {error}") from error
            delay = FIRST_BACKOFF_S * 2 ** (attempt - 1)
            print(f"{what}: attempt {attempt}/{retries} failed ({error}); retrying in {delay:.0f}s",
                  flush=True)
            time.sleep(delay)
    raise AssertionError("unreachable")


def fetch(uri: str, destination: Path) -> Path:
    """Copy the file at `uri` to `destination` (atomically) and return it."""
    parsed = urlparse(uri)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if parsed.scheme in ("", "file"):
        source = Path(parsed.path if parsed.scheme == "file" else uri)
        if not source.is_file():
            raise InputError(f"data file not found: {source}")
        with atomic_path(destination) as tmp:
            shutil.copyfile(source, tmp)
    elif parsed.scheme in ("http", "https"):
        with_retries(lambda: _download_http(uri, destination), display_uri(uri))
    elif parsed.scheme == "gs":
        with_retries(lambda: _download_gcs(parsed.netloc, parsed.path.lstrip("/"), destination), uri)
    else:
        raise InputError(f"unsupported source scheme '{parsed.scheme}' in {display_uri(uri)} "
                         "(use a path, file://, gs:// or https://)")
    return destination


def _download_http(url: str, destination: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(destination) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
    except urllib.error.HTTPError as error:
        if error.code in (404, 403, 401):  # permanent: retrying will not help
            raise InputError(f"{display_uri(url)}: HTTP {error.code} {error.reason}") from error
        raise


def _download_gcs(bucket: str, key: str, destination: Path) -> None:
    from google.api_core import exceptions as gcs_errors
    from google.cloud import storage

    client = storage.Client.create_anonymous_client() if os.environ.get(
        "STORAGE_EMULATOR_HOST") else storage.Client()
    try:
        with atomic_path(destination) as tmp:
            client.bucket(bucket).blob(key).download_to_filename(str(tmp))
    except gcs_errors.NotFound as error:
        raise InputError(f"gs://{bucket}/{key} not found") from error
    except gcs_errors.GoogleAPICallError as error:
        raise OSError(str(error)) from error


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it to `final` only on success.

    Works for a file or a directory written at the yielded path.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    target = tmp / final.name
    try:
        yield target
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(target, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
