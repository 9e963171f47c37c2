"""Reading sources by URI and writing outputs atomically.

A source is a local path, `file://`, `gs://bucket/key` (google-cloud-storage;
`STORAGE_EMULATOR_HOST` is honoured, which is how the tests reach a local
stand-in) or `http(s)://`.

Failures are classified once, here:
- permanent (`InputError`, never retried): a missing file, an unknown scheme,
  HTTP 4xx other than 429, missing or rejected cloud credentials, a host name
  that does not resolve, a bad TLS certificate;
- transient (`TransientError`): connection refused or reset, a timeout, HTTP
  5xx or 429. These are retried with exponential backoff, at most `RETRIES`
  attempts inside a total time budget (`RETRY_BUDGET_S`, 60 s by default,
  or the `FETCH_RETRY_BUDGET_S` environment variable). Each attempt's timeout
  is cut to what is left of the budget, so a server that accepts the
  connection and never answers fails within the budget too.

Every output is written under a temporary name beside its final place and
renamed when complete, so a failed step never leaves a half-written file.
"""

import contextlib
import http.client
import os
import shutil
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from contextvars import ContextVar
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import urlparse

from components.common.errors import InputError, TransientError

T = TypeVar("T")
RETRIES = 4  # attempts at most, whatever the budget
FIRST_BACKOFF_S = 1.0
RETRY_BUDGET_S = 60.0
BUDGET_VARIABLE = "FETCH_RETRY_BUDGET_S"
ATTEMPT_TIMEOUT_S = 30.0  # one attempt's socket timeout, before cutting to the budget
CHUNK = 1 << 20
GCS_CREDENTIALS_HELP = ("set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run "
                        "`gcloud auth application-default login`; on a cluster, give the pipeline's "
                        "service account access (GKE workload identity)")


def display_uri(uri: str) -> str:
    """`uri` without its query string and fragment: a signed URL's token must not reach a log."""
    parsed = urlparse(uri)
    return parsed._replace(query="", fragment="").geturl() if parsed.query or parsed.fragment else uri


def retry_budget_s() -> float:
    """The total time budget for one source's retries: FETCH_RETRY_BUDGET_S or 60 s."""
    text = os.environ.get(BUDGET_VARIABLE, "").strip()
    if not text:
        return RETRY_BUDGET_S
    try:
        budget = float(text)
    except ValueError:
        budget = -1.0
    if not 0 < budget < float("inf"):
        raise InputError(f"{BUDGET_VARIABLE}={text!r} should be a positive number of seconds")
    return budget


class Deadline:
    """The end of a retry budget, and what is left of it."""

    def __init__(self, seconds: float):
        self.seconds, self.started = seconds, time.monotonic()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def attempt_timeout(self) -> float:
        return max(0.05, min(ATTEMPT_TIMEOUT_S, self.left()))


# The budget every fetch and retry shares while a step downloads (`shared_retry_budget`).
_SHARED_DEADLINE: ContextVar[Deadline | None] = ContextVar("shared_deadline", default=None)


@contextlib.contextmanager
def shared_retry_budget() -> Iterator[Deadline]:
    """One retry budget for every fetch inside (usable as a decorator): a step that downloads
    several files ends within FETCH_RETRY_BUDGET_S, not within that much per file."""
    deadline = _SHARED_DEADLINE.get() or Deadline(retry_budget_s())
    token = _SHARED_DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _SHARED_DEADLINE.reset(token)


def is_transient_os_error(error: BaseException) -> bool:
    """Refused/reset/aborted connections and timeouts may pass; other OS errors do not."""
    if isinstance(error, socket.gaierror):  # a name that does not resolve is a typo, unless DNS is down
        return error.errno == socket.EAI_AGAIN
    if isinstance(error, ssl.SSLCertVerificationError):
        return False
    return isinstance(error, (ConnectionError, TimeoutError, http.client.HTTPException))


def with_retries(action: Callable[[], T], what: str, deadline: Deadline | None = None) -> T:
    """Run `action`, retrying transient failures with exponential backoff inside the budget.

    `InputError` (and any error that is not transient) goes straight through;
    `TransientError` and refused/reset/timed-out connections are retried until
    `RETRIES` attempts or the budget are spent, then reported as `TransientError`.
    """
    deadline = deadline or _SHARED_DEADLINE.get() or Deadline(retry_budget_s())
    for attempt in range(1, RETRIES + 1):
        try:
            return action()
        except InputError:
            raise
        except (TransientError, OSError, http.client.HTTPException) as error:
            if not isinstance(error, TransientError) and not is_transient_os_error(error):
                raise
            delay = FIRST_BACKOFF_S * 2 ** (attempt - 1)
            if attempt == RETRIES or deadline.left() <= delay:
                raise TransientError(f"{what} unreachable after {attempt} attempt{'s' if attempt > 1 else ''} in "
                                     f"{deadline.elapsed():.0f}s (retry budget {deadline.seconds:.0f}s): "
                                     f"{error}") from error
            print(f"{what}: attempt {attempt}/{RETRIES} failed ({error}); retrying in {delay:g}s",
                  flush=True)
            time.sleep(delay)
    raise AssertionError("unreachable")


def fetch(uri: str, destination: Path, budget_s: float | None = None) -> Path:
    """Copy the file at `uri` to `destination` (atomically) and return it.

    Network sources are retried inside `budget_s` seconds (default: what is left of the
    `shared_retry_budget` around the call, else `retry_budget_s()`).
    """
    parsed = urlparse(uri)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if parsed.scheme in ("", "file"):
        source = Path(parsed.path if parsed.scheme == "file" else uri)
        if not source.is_file():
            raise InputError(f"data file not found: {source}")
        with atomic_path(destination) as tmp:
            shutil.copyfile(source, tmp)
        return destination
    if parsed.scheme not in ("http", "https", "gs"):
        raise InputError(f"unsupported source scheme '{parsed.scheme}' in {display_uri(uri)} "
                         "(use a path, file://, gs:// or https://)")
    deadline = Deadline(budget_s) if budget_s is not None else _SHARED_DEADLINE.get() or Deadline(retry_budget_s())
    if parsed.scheme == "gs":
        client = gcs_client(uri)
        with_retries(lambda: _download_gcs(client, uri, destination, deadline), uri, deadline)
    else:
        with_retries(lambda: _download_http(uri, destination, deadline), display_uri(uri), deadline)
    return destination


def _download_http(url: str, destination: Path, deadline: Deadline) -> None:
    """One attempt. `TransientError` messages leave the URL to `with_retries`, which names it."""
    shown, timeout = display_uri(url), deadline.attempt_timeout()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, \
                atomic_path(destination) as tmp, open(tmp, "wb") as out:
            # The socket timeout bounds each read; the deadline bounds a server
            # that keeps trickling bytes.
            while chunk := response.read(CHUNK):
                out.write(chunk)
                if deadline.left() <= 0:
                    raise TransientError(f"download not finished within the {deadline.seconds:.0f}s budget")
    except urllib.error.HTTPError as error:
        if error.code == 429 or error.code >= 500:
            raise TransientError(f"HTTP {error.code} {error.reason}") from error
        raise InputError(f"{shown}: HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            raise TransientError(f"no answer within {timeout:.0f}s") from error
        if isinstance(reason, BaseException) and is_transient_os_error(reason):
            raise TransientError(str(reason)) from error
        raise InputError(f"{shown}: {reason}") from error
    except TimeoutError as error:  # while reading the answer
        raise TransientError(f"no answer within {timeout:.0f}s") from error
    except (ConnectionError, http.client.HTTPException) as error:
        raise TransientError(f"{type(error).__name__}: {error}") from error


def gcs_client(uri: str):
    """A storage client for `uri`: anonymous against an emulator (STORAGE_EMULATOR_HOST), else the
    pod's or the user's Google credentials; without any, an `InputError` naming `uri` and how to
    give them."""
    from google.auth import exceptions as auth_errors
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client.create_anonymous_client()
    try:
        return storage.Client()
    except auth_errors.DefaultCredentialsError as error:
        raise InputError(f"{uri}: no Google Cloud credentials found: {GCS_CREDENTIALS_HELP}") from error


def _download_gcs(client, uri: str, destination: Path, deadline: Deadline) -> None:
    from google.api_core import exceptions as gcs_errors
    from google.auth import exceptions as auth_errors
    from requests import exceptions as http_errors

    parsed = urlparse(uri)
    blob = client.bucket(parsed.netloc).blob(parsed.path.lstrip("/"))
    try:
        with atomic_path(destination) as tmp:
            # retry=None: the budget above is the only retry loop.
            blob.download_to_filename(str(tmp), timeout=deadline.attempt_timeout(), retry=None)
    except gcs_errors.NotFound as error:
        raise InputError(f"{uri} not found") from error
    except (gcs_errors.Unauthorized, gcs_errors.Forbidden) as error:
        raise InputError(f"{uri}: access refused (HTTP {error.code}): the credentials in use cannot read "
                         f"it; {GCS_CREDENTIALS_HELP}") from error
    except (gcs_errors.TooManyRequests, gcs_errors.ServerError) as error:
        raise TransientError(f"HTTP {error.code} {error.message}") from error
    except gcs_errors.GoogleAPICallError as error:
        raise InputError(f"{uri}: {error}") from error
    except auth_errors.DefaultCredentialsError as error:
        raise InputError(f"{uri}: no Google Cloud credentials found: {GCS_CREDENTIALS_HELP}") from error
    except auth_errors.RefreshError as error:
        if getattr(error, "retryable", False):
            raise TransientError(f"refreshing the credentials failed: {error}") from error
        raise InputError(f"{uri}: the Google Cloud credentials were rejected ({error}); "
                         f"{GCS_CREDENTIALS_HELP}") from error
    except (http_errors.ConnectionError, http_errors.Timeout, auth_errors.TransportError) as error:
        raise TransientError(f"{type(error).__name__}: {error}") from error


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
