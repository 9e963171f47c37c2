"""crypto data: the Target recipe, the generator's fidelity to the Kaggle schema, the sources."""

import math
import socket
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common import storage
from components.common.errors import InputError, TransientError
from components.common.storage import display_uri
from pipelines.crypto import data
from pipelines.crypto.assets import ASSETS
from pipelines.crypto.definitions import TRAIN_COLUMNS
from pipelines.crypto.target import compute_target


def test_target_on_a_small_example_computed_by_hand():
    # Two assets, weights 1 and 3, 19 minutes; the beta window is 2 rows instead of 3750.
    # Asset 0 closes at 100 except 110 at t=17 and 90 at t=18: R0 = [0, +0.1, -0.1].
    # Asset 1 closes at 50 except 55 at t=16 and 45 at t=18, and has no row at t=17:
    # R1 = [+0.1, missing, -0.1].
    minutes = np.arange(19)
    close_0 = np.full(19, 100.0)
    close_0[17], close_0[18] = 110.0, 90.0
    close_1 = np.full(19, 50.0)
    close_1[16], close_1[18] = 55.0, 45.0
    present_1 = minutes != 17
    timestamps = np.concatenate([minutes, minutes[present_1]]) * 60
    asset_ids = np.concatenate([np.zeros(19, int), np.ones(18, int)])
    close = np.concatenate([close_0, close_1[present_1]])

    target = compute_target(timestamps, asset_ids, close, np.array([1.0, 3.0]), beta_window=2)

    # M = (1 R0 + 3 R1) / 4 with a missing R as 0: M = [0.075, 0.025, -0.1].
    # Asset 0, t=1: beta = (0.075*0 + 0.025*0.1) / (0.075^2 + 0.025^2) = 0.4 -> 0.1 - 0.4*0.025
    # Asset 0, t=2: beta = (0.025*0.1 + 0.1*0.1) / (0.025^2 + 0.1^2) = 20/17 -> -0.1 + (20/17)*0.1
    # t=0 has no full window and asset 1's window at t=2 holds a missing R: beta 0, Target = R.
    expected_0 = [0.0, 0.09, -0.1 + 2 / 17] + [math.nan] * 16
    expected_1 = [0.1, math.nan, -0.1] + [math.nan] * 15
    np.testing.assert_allclose(target[:19], expected_0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(target[19:], expected_1, rtol=1e-12, atol=1e-15)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated")
    rows = data.generate(folder, "2019-04-10", "2019-04-14", seed=7)
    return folder, rows


def test_generator_writes_the_kaggle_schema_with_the_real_weights(generated):
    folder, rows = generated
    with open(folder / "train.csv") as f:
        assert f.readline().strip() == ",".join(TRAIN_COLUMNS)
    train = pd.read_csv(folder / "train.csv")
    assert len(train) == rows
    assets = pd.read_csv(folder / "asset_details.csv")
    assert list(assets.columns) == ["Asset_ID", "Weight", "Asset_Name"]
    weights = dict(zip(assets["Asset_ID"], assets["Weight"], strict=True))
    assert weights[1] == math.log(880) and weights[6] == math.log(363) and weights[10] == math.log(3)
    assert sum(weights.values()) == pytest.approx(40.88, abs=0.005)
    assert set(assets["Asset_Name"]) == {a.name for a in ASSETS}
    # Like the real file: sorted by minute, not by asset within a minute; first minute 00:01.
    assert train["timestamp"].is_monotonic_increasing
    assert not train["Asset_ID"].head(14).is_monotonic_increasing
    assert train["timestamp"].min() == pd.Timestamp("2019-04-10 00:01", tz="UTC").timestamp()
    assert train["timestamp"].max() == pd.Timestamp("2019-04-14", tz="UTC").timestamp()


def test_generator_has_staggered_starts_gaps_and_real_dirt(generated):
    folder, _ = generated
    train = pd.read_csv(folder / "train.csv")
    per_asset = train.groupby("Asset_ID")["timestamp"]
    assert 10 not in per_asset.groups  # Maker is listed only in 2020
    assert per_asset.min()[4] == pd.Timestamp("2019-04-12", tz="UTC").timestamp()  # Dogecoin's listing
    minutes = (per_asset.max() - per_asset.min()) // 60 + 1
    coverage = per_asset.size() / minutes
    assert (coverage < 1).all() and (coverage > 0.9).all()
    assert np.isinf(train["VWAP"]).sum() >= 4 and train["VWAP"].isna().sum() >= 2
    assert (train["Volume"] < 0).sum() >= 2
    assert 0.005 < train["Target"].isna().mean() < 0.06
    assert (train["High"] >= train[["Open", "Close"]].max(axis=1)).all()
    assert (train["Low"] <= train[["Open", "Close"]].min(axis=1)).all()


def test_generated_target_equals_the_recipe_recomputed_with_plain_pandas(generated):
    folder, _ = generated
    train = pd.read_csv(folder / "train.csv")
    weights = pd.read_csv(folder / "asset_details.csv").set_index("Asset_ID")["Weight"].sort_index()
    # One row per minute present anywhere in the file, one column per asset (all 14, listed or not).
    close = train.pivot(index="timestamp", columns="Asset_ID", values="Close").reindex(columns=weights.index)
    returns = close.shift(-16) / close.shift(-1) - 1
    market = (returns.fillna(0) * weights).sum(axis=1) / weights.sum()
    beta = (returns.mul(market, axis=0).rolling(3750).mean()
            .div((market ** 2).rolling(3750).mean(), axis=0)
            .replace([np.inf, -np.inf], np.nan).fillna(0))
    expected = (returns - beta.mul(market, axis=0)).stack(future_stack=True).rename("expected")
    joined = train.join(expected, on=["timestamp", "Asset_ID"])
    assert (beta.to_numpy() != 0).sum() > 1000, "the window is long enough for the beta term to matter"
    np.testing.assert_allclose(joined["Target"], joined["expected"], rtol=1e-9, atol=1e-12)
    assert 0.002 < train["Target"].std() < 0.01  # the real Target's std is 0.0057


def test_generator_is_deterministic_for_a_seed(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        data.generate(tmp_path / name, "2021-01-01", "2021-01-02", seed=3)
    assert (tmp_path / "a" / "train.csv").read_bytes() == (tmp_path / "b" / "train.csv").read_bytes()


def test_a_folder_or_a_zip_can_be_the_source(generated, tmp_path):
    folder, _ = generated
    from_folder = data.download(str(folder), tmp_path / "from-folder")
    assert sorted(p.name for p in from_folder.iterdir()) == ["asset_details.csv", "train.csv"]
    archive = tmp_path / "competition.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(folder / "train.csv", "g-research/train.csv")
        zipped.write(folder / "asset_details.csv", "g-research/asset_details.csv")
    from_zip = data.download(f"file://{archive}", tmp_path / "from-zip")
    assert (from_zip / "train.csv").read_bytes() == (folder / "train.csv").read_bytes()
    assert sorted(p.name for p in from_zip.iterdir()) == ["asset_details.csv", "train.csv"]


def test_a_signed_url_of_a_zip_is_a_zip_and_its_token_is_never_printed(generated, tmp_path, monkeypatch):
    folder, _ = generated
    archive = tmp_path / "local.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(folder / "train.csv", "train.csv")
        zipped.write(folder / "asset_details.csv", "asset_details.csv")
    fetched = []

    def fetch(uri, destination):
        fetched.append((uri, destination.name))
        destination.write_bytes(archive.read_bytes())
        return destination

    monkeypatch.setattr(data, "fetch", fetch)
    signed = "https://storage.example.com/bucket/competition.zip?X-Goog-Signature=secret&X-Goog-Expires=60"
    raw = data.download(signed, tmp_path / "raw")
    assert fetched == [(signed, "competition.zip")]
    assert sorted(p.name for p in raw.iterdir()) == ["asset_details.csv", "train.csv"]
    assert display_uri(signed) == "https://storage.example.com/bucket/competition.zip"
    assert display_uri("/data/crypto") == "/data/crypto"


def test_a_zip_without_train_csv_is_bad_input_and_leaves_nothing(tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("asset_details.csv", "Asset_ID,Weight,Asset_Name\n")
    with pytest.raises(InputError, match="other.zip has no train.csv"):
        data.download(str(archive), tmp_path / "raw")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.zip"]


def without_kaggle_credentials(monkeypatch, home: Path) -> None:
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("provide", [
    lambda home, env: env.setenv("KAGGLE_API_TOKEN", "KGAT_not_a_real_token"),
    lambda home, env: write(home / ".kaggle" / "access_token", "KGAT_not_a_real_token"),
    lambda home, env: write(home / ".kaggle" / "kaggle.json", "{}"),
    lambda home, env: (write(home / "cfg" / "kaggle.json", "{}"), env.setenv("KAGGLE_CONFIG_DIR", str(home / "cfg"))),
    lambda home, env: (env.setenv("KAGGLE_USERNAME", "someone"), env.setenv("KAGGLE_KEY", "k")),
], ids=["api-token-env", "access-token-file", "kaggle-json", "kaggle-json-in-config-dir", "username-and-key"])
def test_every_credential_that_kaggle_reads_is_accepted(tmp_path, monkeypatch, provide):
    without_kaggle_credentials(monkeypatch, tmp_path)
    assert not data.kaggle_credentials_present()
    provide(tmp_path, monkeypatch)
    assert data.kaggle_credentials_present()


def test_missing_kaggle_credentials_fail_fast_without_the_network(tmp_path, monkeypatch):
    without_kaggle_credentials(monkeypatch, tmp_path / "home")
    monkeypatch.delitem(sys.modules, "kaggle", raising=False)

    def no_network(sock, address):
        raise AssertionError(f"connected to {address} without credentials")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(InputError, match="Kaggle credentials missing: set KAGGLE_USERNAME and KAGGLE_KEY"):
        data.download("kaggle", tmp_path / "raw")
    assert "kaggle" not in sys.modules, "the kaggle package (which authenticates on import) was not loaded"
    assert list(tmp_path.iterdir()) == []


def test_kaggle_files_are_fetched_one_by_one_and_unzipped(generated, tmp_path, monkeypatch):
    folder, _ = generated
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    asked = []

    def kaggle_sends(self, competition, name, path=None, force=False, quiet=False):
        asked.append((competition, name))
        if name == "train.csv":  # Kaggle zips the large file
            with zipfile.ZipFile(Path(path) / "train.csv.zip", "w") as zipped:
                zipped.write(folder / name, name)
        else:
            (Path(path) / name).write_bytes((folder / name).read_bytes())

    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.setattr(KaggleApi, "competition_download_file", kaggle_sends)
    raw = data.download("kaggle", tmp_path / "raw", competition="g-research-crypto-forecasting")
    assert asked == [("g-research-crypto-forecasting", "train.csv"),
                     ("g-research-crypto-forecasting", "asset_details.csv")]
    assert sorted(p.name for p in raw.iterdir()) == ["asset_details.csv", "train.csv"]
    assert (raw / "train.csv").read_bytes() == (folder / "train.csv").read_bytes()


def kaggle_answers(monkeypatch, answer) -> None:
    """The kaggle API with `answer` in place of its download (username and key set: it authenticates offline)."""
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.setattr(KaggleApi, "competition_download_file", answer)


def test_a_file_that_kaggle_did_not_send_is_named(generated, tmp_path, monkeypatch):
    folder, _ = generated

    def sends_only_train_csv(self, competition, name, path=None, force=False, quiet=False):
        if name == "train.csv":
            (Path(path) / name).write_bytes((folder / name).read_bytes())

    kaggle_answers(monkeypatch, sends_only_train_csv)
    with pytest.raises(InputError, match="Kaggle competition g-research-crypto-forecasting sent no asset_details.csv"):
        data.download("kaggle", tmp_path / "raw")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("status", [401, 403])
def test_kaggle_refusal_is_reported_and_not_retried(tmp_path, monkeypatch, status):
    from requests import HTTPError, Response

    calls = []

    def refuses(self, competition, name, path=None, force=False, quiet=False):
        calls.append(name)
        response = Response()
        response.status_code = status
        raise HTTPError(f"{status} Client Error", response=response)

    kaggle_answers(monkeypatch, refuses)
    with pytest.raises(InputError, match=f"Kaggle refused g-research-crypto-forecasting/train.csv "
                                         rf"\(HTTP {status}\): check the credentials and accept"):
        data.download("kaggle", tmp_path / "raw")
    assert calls == ["train.csv"]
    assert list(tmp_path.iterdir()) == []


def test_kaggle_download_is_retried_a_bounded_number_of_times(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    calls = []

    def unreachable(self, competition, name, path=None, force=False, quiet=False):
        calls.append(name)
        raise ConnectionError("no route to www.kaggle.com")

    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.setattr(KaggleApi, "competition_download_file", unreachable)
    monkeypatch.setattr(storage, "FIRST_BACKOFF_S", 0.001)
    with pytest.raises(TransientError, match=f"train.csv unreachable after {storage.RETRIES} attempts"):
        data.download("kaggle", tmp_path / "raw")
    assert calls == ["train.csv"] * storage.RETRIES
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("start, end, message", [
    ("2021-05-02", "2021-05-01", "generated_end 2021-05-01 is not after generated_start 2021-05-02"),
    ("yesterday", "2021-05-01", "generated_start 'yesterday' is not a date"),
    ("2017-01-01", "2017-02-01", "no asset is listed between 2017-01-01 and 2017-02-01"),
])
def test_bad_generator_ranges_are_clear_errors(tmp_path, start, end, message):
    with pytest.raises(InputError, match=message):
        data.download("generated", tmp_path / "raw", generated_start=start, generated_end=end)
    assert list(tmp_path.iterdir()) == []
