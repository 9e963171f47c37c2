"""Fetching sources by URI, against local stand-ins: files, a loopback HTTP
server and gcp-storage-emulator for gs://."""

import functools
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest

from components import storage
from components.errors import InputError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def test_unreachable_host_is_retried_then_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "FIRST_BACKOFF_S", 0.01)
    attempts = []
    real_urlopen = storage.urllib.request.urlopen

    def counting_urlopen(*args, **kwargs):
        attempts.append(1)
        return real_urlopen(*args, **kwargs)

    monkeypatch.setattr(storage.urllib.request, "urlopen", counting_urlopen)
    url = f"http://127.0.0.1:{free_port()}/x.csv"  # nothing listens there
    with pytest.raises(InputError, match="unreachable after 4 attempts"):
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
