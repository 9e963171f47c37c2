"""Fetching sources by URI, against local stand-ins: files, a loopback HTTP
server and gcp-storage-emulator for gs://."""

import functools
import http.server
import os
import threading
import time
import types
from pathlib import Path

import pytest
from conftest import free_port

from components.common import storage
from components.common.errors import InputError, TransientError


@pytest.fixture
def http_root(tmp_path):
    """A loopback HTTP server over tmp_path/www (stand-in for an https:// source)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def gcs_bucket(monkeypatch):
    """gcp-storage-emulator on loopback with one bucket (stand-in for gs://)."""
    from gcp_storage_emulator.server import create_server
    from google.cloud import storage as gcs

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="prices")
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    yield gcs.Client.create_anonymous_client().bucket("prices")
    server.stop()


def test_local_path_and_file_uri(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    assert storage.fetch(str(tmp_path / "a.csv"), tmp_path / "out" / "1.csv").read_text() == "x"
    assert storage.fetch(f"file://{tmp_path}/a.csv", tmp_path / "out" / "2.csv").read_text() == "x"


def test_http_source(http_root, tmp_path):
    root, url = http_root
    (root / "sp500.csv").write_text("Date,Close\n")
    assert storage.fetch(f"{url}/sp500.csv", tmp_path / "got.csv").read_text() == "Date,Close\n"


def test_http_404_is_not_retried_and_names_the_url_without_its_token(http_root, tmp_path):
    _, url = http_root
    with pytest.raises(InputError, match=r"missing.csv: HTTP 404") as error:
        storage.fetch(f"{url}/missing.csv?X-Goog-Signature=secret", tmp_path / "got.csv")
    assert "secret" not in str(error.value)
    assert not (tmp_path / "got.csv").exists()


def test_refused_connection_is_retried_then_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "FIRST_BACKOFF_S", 0.01)
    attempts = []
    real_urlopen = storage.urllib.request.urlopen

    def counting_urlopen(*args, **kwargs):
        attempts.append(1)
        return real_urlopen(*args, **kwargs)

    monkeypatch.setattr(storage.urllib.request, "urlopen", counting_urlopen)
    url = f"http://127.0.0.1:{free_port()}/x.csv"  # nothing listens there
    with pytest.raises(TransientError, match="unreachable after 4 attempts"):
        storage.fetch(url, tmp_path / "x.csv")
    assert len(attempts) == storage.RETRIES
    assert list(tmp_path.iterdir()) == []


def test_gcs_source(gcs_bucket, tmp_path):
    gcs_bucket.blob("daily/sp500.csv").upload_from_string("Date,Close\n2020-01-02,1\n")
    got = storage.fetch("gs://prices/daily/sp500.csv", tmp_path / "sp500.csv")
    assert got.read_text().startswith("Date,Close")


def test_gcs_missing_object_names_it(gcs_bucket, tmp_path):
    with pytest.raises(InputError, match="gs://prices/nope.csv not found"):
        storage.fetch("gs://prices/nope.csv", tmp_path / "x.csv")


def test_unknown_scheme(tmp_path):
    with pytest.raises(InputError, match="unsupported source scheme 's3'"):
        storage.fetch("s3://b/k", tmp_path / "x")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with storage.atomic_path(final) as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("step died")
    assert os.listdir(tmp_path) == []
    with storage.atomic_path(final) as tmp:
        Path(tmp).write_text("whole")
    assert final.read_text() == "whole" and os.listdir(tmp_path) == ["out.parquet"]


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    """Answers GETs with the next status of `server.statuses` (200 once they run out)."""

    def do_GET(self):
        self.server.requests += 1
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        body = b"Date,Close\n" if status == 200 else b"no"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted_server():
    """A loopback server answering with scripted HTTP statuses, counting requests."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
    server.statuses, server.requests = [], 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_permanent_and_tried_once(scripted_server, tmp_path, status):
    scripted_server.statuses = [status] * 5
    url = f"http://127.0.0.1:{scripted_server.server_port}/sp500.csv"
    with pytest.raises(InputError, match=rf"127.0.0.1:\d+/sp500.csv: HTTP {status}"):
        storage.fetch(url, tmp_path / "x.csv")
    assert scripted_server.requests == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("statuses", [[503, 500], [429], [502, 429, 504]])
def test_server_errors_and_429_are_retried_until_the_file_comes(scripted_server, tmp_path, monkeypatch,
                                                                statuses):
    monkeypatch.setattr(storage, "FIRST_BACKOFF_S", 0.01)
    scripted_server.statuses = list(statuses)
    url = f"http://127.0.0.1:{scripted_server.server_port}/sp500.csv"
    assert storage.fetch(url, tmp_path / "x.csv").read_text() == "Date,Close\n"
    assert scripted_server.requests == len(statuses) + 1


def test_retries_stop_when_the_budget_is_spent(scripted_server, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "FIRST_BACKOFF_S", 0.4)  # backoffs 0.4, 0.8: the second exceeds 1 s
    scripted_server.statuses = [503] * 10
    url = f"http://127.0.0.1:{scripted_server.server_port}/sp500.csv"
    with pytest.raises(TransientError, match=r"unreachable after 2 attempts .*retry budget 1s.*HTTP 503"):
        storage.fetch(url, tmp_path / "x.csv", budget_s=1.0)
    assert scripted_server.requests == 2


class Waits:
    """What the fetch waited for, by its own accounting: each attempt's socket timeout and each
    backoff (the backoffs are still slept)."""

    def __init__(self, monkeypatch):
        self.timeouts, self.backoffs = [], []
        real_urlopen, real_sleep = storage.urllib.request.urlopen, time.sleep

        def urlopen(url, timeout):
            self.timeouts.append(timeout)
            return real_urlopen(url, timeout=timeout)

        def sleep(seconds):
            self.backoffs.append(seconds)
            real_sleep(seconds)

        monkeypatch.setattr(storage.urllib.request, "urlopen", urlopen)
        # storage's own clock only: another thread's sleep is no backoff of the fetch
        monkeypatch.setattr(storage, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))

    @property
    def total(self) -> float:
        return sum(self.timeouts) + sum(self.backoffs)


@pytest.mark.parametrize("how", ["parameter", "environment"])
def test_a_stalled_port_fails_within_the_budget(stalled_port, tmp_path, monkeypatch, how):
    monkeypatch.setattr(storage, "FIRST_BACKOFF_S", 0.1)
    budget = None
    if how == "parameter":
        budget = 1.0
    else:
        monkeypatch.setenv("FETCH_RETRY_BUDGET_S", "1")
    waits = Waits(monkeypatch)
    with pytest.raises(TransientError, match=r"127.0.0.1:\d+/x.csv unreachable after \d attempts? in .*budget 1s"):
        storage.fetch(f"http://127.0.0.1:{stalled_port}/x.csv", tmp_path / "x.csv", budget_s=budget)
    # Every attempt's timeout is cut to what was left of the budget, so all the waiting fits in it
    # (however slow the machine: the code's own clock, not the test's, is what is checked).
    assert waits.timeouts and waits.total <= 1.0, (waits.timeouts, waits.backoffs)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_budget_setting_is_an_input_error(monkeypatch, tmp_path):
    monkeypatch.setenv("FETCH_RETRY_BUDGET_S", "soon")
    with pytest.raises(InputError, match="FETCH_RETRY_BUDGET_S='soon' should be a positive number"):
        storage.fetch("http://127.0.0.1:9/x.csv", tmp_path / "x.csv")


def test_gcs_without_credentials_names_the_uri_and_how_to_log_in(monkeypatch, tmp_path):
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud login
    # Not on GCE: what NO_GCE_CHECK=true says, read by google-auth when it is imported.
    from google.auth.compute_engine import _metadata
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)
    attempts = []
    monkeypatch.setattr(storage, "_download_gcs", lambda *args: attempts.append(1))
    with pytest.raises(InputError) as error:
        storage.fetch("gs://prices/daily/sp500.csv", tmp_path / "out" / "x.csv")
    message = str(error.value)
    assert message.startswith("gs://prices/daily/sp500.csv: no Google Cloud credentials found")
    for hint in ("GOOGLE_APPLICATION_CREDENTIALS", "gcloud auth application-default login", "workload identity"):
        assert hint in message
    assert attempts == []


@pytest.mark.parametrize("error_name, expected, tries", [
    ("Forbidden", InputError, 1), ("Unauthorized", InputError, 1), ("BadRequest", InputError, 1),
    ("ServiceUnavailable", TransientError, storage.RETRIES), ("TooManyRequests", TransientError, storage.RETRIES),
])
def test_gcs_errors_are_classified(gcs_bucket, tmp_path, monkeypatch, error_name, expected, tries):
    from google.api_core import exceptions as gcs_errors
    from google.cloud.storage import Blob

    monkeypatch.setattr(storage, "FIRST_BACKOFF_S", 0.001)
    calls = []

    def refuses(self, *args, **kwargs):
        calls.append(kwargs)
        raise getattr(gcs_errors, error_name)("refused")

    monkeypatch.setattr(Blob, "download_to_filename", refuses)
    with pytest.raises(expected, match="gs://prices/sp500.csv"):
        storage.fetch("gs://prices/sp500.csv", tmp_path / "x.csv")
    assert len(calls) == tries
    assert calls[0]["retry"] is None and 0 < calls[0]["timeout"] <= storage.ATTEMPT_TIMEOUT_S


def test_one_budget_bounds_every_download_of_a_step(scripted_server, tmp_path, monkeypatch):
    """Two files, the first late and the second failing: the step gives up within one budget,
    not one budget per file."""
    from pipelines.crypto.data import download

    monkeypatch.setattr(storage, "FIRST_BACKOFF_S", 0.6)
    monkeypatch.setenv("FETCH_RETRY_BUDGET_S", "2.5")
    scripted_server.statuses = [503, 503, 200] + [503] * 10  # train.csv after 0.6 + 1.2 s, then asset_details.csv
    waits = Waits(monkeypatch)
    with pytest.raises(TransientError, match="asset_details.csv unreachable .* budget 2s"):
        download(f"http://127.0.0.1:{scripted_server.server_address[1]}/data", tmp_path / "raw")
    # One budget: asset_details.csv gets what train.csv left of the 2.5 s (0.7 s: one 0.6 s backoff at
    # most), not a budget of its own (which would add 0.6 + 1.2 s of backoffs).
    assert sum(waits.backoffs) <= 2.5 and waits.backoffs[:2] == [0.6, 1.2], waits.backoffs
    assert not (tmp_path / "raw").exists()
