"""What a user sees when something fails, across modules: one `error:` line that names
what the user gave, the documented exit code, no traceback, no retry of what cannot succeed."""

import re

import pytest
from conftest import REPO, assert_failed_cleanly, free_port, run_cli

from components.common.errors import InputError
from pipelines.crypto import data as crypto_data
from pipelines.mnist import data as mnist_data


def test_compile_into_a_file_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "compiled").write_text("")
    result = run_cli("compile", "--output-dir", "compiled", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "error: --output-dir compiled is a file, not a folder\n"
    assert result.stdout == ""


def test_a_corrupt_npz_is_named_by_the_uri_the_user_gave(tmp_path):
    (tmp_path / "given").mkdir()
    (tmp_path / "given" / "digits.npz").write_bytes(b"PK\x03\x04 not really a zip")
    source = f"file://{tmp_path}/given/digits.npz"
    with pytest.raises(InputError) as error:
        mnist_data.fetch_digits(source, tmp_path / "workspace")
    assert str(error.value).startswith(f"{source}: not a readable .npz file")


def test_a_corrupt_zip_is_named_by_the_path_the_user_gave(tmp_path):
    given = tmp_path / "given" / "competition.zip"
    given.parent.mkdir()
    given.write_bytes(b"not a zip")
    with pytest.raises(InputError) as error:
        crypto_data.download(str(given), tmp_path / "workspace" / "raw")
    assert str(error.value).startswith(f"{given} is not a valid zip file")


@pytest.mark.e2e
def test_a_stalled_source_fails_the_step_once_within_the_budget(tmp_path, stalled_port):
    result = run_cli("run", "sp500", f"source=http://127.0.0.1:{stalled_port}/{{ticker}}.csv", cwd=tmp_path,
                     FETCH_RETRY_BUDGET_S="2")
    assert_failed_cleanly(result, tmp_path, "sp500", 1,
                          f"step 'download-prices' failed: http://127.0.0.1:{stalled_port}/sp500.csv "
                          "unreachable after")
    # The step's own clock: it gave up once its 2 s were spent (the socket timeout cut to the budget).
    assert re.search(r"unreachable after \d attempts? in [23]s \(retry budget 2s\)", result.stderr)


@pytest.mark.e2e
def test_gs_without_credentials_is_one_line_naming_the_uri(tmp_path):
    environment = {"CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"), "NO_GCE_CHECK": "true",
                   "GOOGLE_APPLICATION_CREDENTIALS": None, "STORAGE_EMULATOR_HOST": None}
    result = run_cli("run", "sp500", "source=gs://prices/daily/{ticker}.csv", cwd=tmp_path, **environment)
    assert_failed_cleanly(result, tmp_path, "sp500", 1,
                          "step 'download-prices' failed: gs://prices/daily/sp500.csv: no Google Cloud "
                          "credentials found: set GOOGLE_APPLICATION_CREDENTIALS")
    assert "attempt 1" not in result.stdout  # not retried


def test_predict_against_no_server_is_one_line_without_tensorflow_start_up_noise(tmp_path):
    closed_port = free_port()
    # Options right after the verb reach predict's own parser (they once stopped at kfp-ml's).
    result = run_cli("predict", "--model", "sp500", "--rest", "--host", "127.0.0.1", "--port", str(closed_port),
                     cwd=tmp_path, TF_CPP_MIN_LOG_LEVEL=None)
    assert result.returncode != 0
    assert result.stderr.startswith(f"error: cannot reach http://127.0.0.1:{closed_port}/v1/models/sp500/")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cuda" not in result.stdout.lower() + result.stderr.lower()


def test_no_compiled_pipeline_asks_kfp_to_retry_a_step():
    """KFP cannot tell a permanent error from a transient one: steps retry their own transient errors."""
    import yaml

    packages = sorted((REPO / "compiled").glob("*.yaml"))
    assert packages
    for package in packages:
        for document in yaml.safe_load_all(package.read_text()):
            assert "retryPolicy" not in str(document), f"{package.name} retries a step"
