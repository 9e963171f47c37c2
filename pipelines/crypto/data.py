"""Getting `train.csv` and `asset_details.csv`: Kaggle, a URI, or the offline generator.

Sources (`source` parameter of the download step):
- "generated": minute bars written by `generate` in the exact Kaggle schema.
- "kaggle": the competition files through the `kaggle` package. Credentials are
  what kaggle 2.2.4 accepts: KAGGLE_USERNAME and KAGGLE_KEY (on a cluster,
  injected from a Secret), an API token in KAGGLE_API_TOKEN or in
  ~/.kaggle/access_token, or a kaggle.json in KAGGLE_CONFIG_DIR or ~/.kaggle;
  without any of them the step fails before any network call. The
  competition's rules must have been accepted on kaggle.com by that account.
- a path, file://, gs:// or https:// URI of the competition zip (its path ends
  in .zip; a signed URL's query string does not count) or of a folder holding
  the two CSVs. A URI is printed without its query string, which can hold a token.

The generator is synthetic data shaped like the real set (reference.md): the 14
assets with their real weights, staggered listing dates (approximate), about 2%
of minutes missing per listed asset in clustered gaps (a missing minute has no
row), rows within a minute in a fixed non-sorted asset order as in the real
file, the real dirty values (±inf and missing VWAP, negative Volume, a few
zero-volume bars) and the exact Target recipe of `pipelines.crypto.target`.
Prices are a market factor plus per-asset noise with fat tails and slowly
varying volatility, plus a weak mean-reverting component per asset: it gives a
model the kind of small, honest edge the real data holds (weighted correlation
of a few hundredths), instead of pure noise where every score is luck.
"""

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from components.common.errors import InputError, TransientError
from components.common.storage import atomic_path, display_uri, fetch, shared_retry_budget, with_retries
from pipelines.crypto.assets import ASSETS, weight_vector
from pipelines.crypto.definitions import ASSETS_CSV, MINUTE, TRAIN_COLUMNS, TRAIN_CSV, to_timestamp
from pipelines.crypto.target import compute_target

COMPETITION = "g-research-crypto-forecasting"


@dataclass(frozen=True)
class Simulation:
    """Made-up but plausible per-asset parameters (only the listing dates follow the real set)."""
    listed: str          # first day with rows
    price: float         # price when listed
    volatility: float    # per-minute idiosyncratic volatility
    beta: float          # exposure to the market factor
    digits: int          # significant digits of quoted prices
    trades: float        # mean trades per minute
    missing: float       # share of missing minutes once listed


SIMULATION = {
    0: Simulation("2018-01-01", 8.5, 0.00075, 0.9, 5, 12, 0.010),
    1: Simulation("2018-01-01", 13800.0, 0.00030, 1.0, 7, 250, 0.0005),
    2: Simulation("2018-01-01", 2400.0, 0.00052, 1.1, 6, 40, 0.005),
    3: Simulation("2018-04-17", 0.25, 0.00075, 1.2, 5, 20, 0.015),
    4: Simulation("2019-04-12", 0.003, 0.00082, 1.1, 5, 15, 0.020),
    5: Simulation("2018-01-01", 7.6, 0.00060, 1.2, 5, 30, 0.008),
    6: Simulation("2018-01-01", 740.0, 0.00038, 1.1, 6, 170, 0.001),
    7: Simulation("2018-01-01", 26.0, 0.00060, 1.1, 5, 12, 0.015),
    8: Simulation("2018-05-09", 2.2, 0.00082, 1.2, 5, 6, 0.040),
    9: Simulation("2018-01-01", 225.0, 0.00052, 1.1, 6, 160, 0.004),
    10: Simulation("2020-08-10", 500.0, 0.00090, 0.8, 5, 4, 0.060),
    11: Simulation("2018-01-01", 330.0, 0.00060, 0.9, 5, 7, 0.030),
    12: Simulation("2018-02-13", 0.45, 0.00068, 1.1, 5, 10, 0.020),
    13: Simulation("2018-02-17", 0.07, 0.00068, 1.1, 5, 12, 0.015),
}
# The order of assets within a minute in the real train.csv starts 2,0,1,5,7,6,9,11.
CSV_ASSET_ORDER = (2, 0, 1, 5, 7, 6, 9, 11, 13, 12, 3, 8, 4, 10)
MARKET_VOLATILITY = 0.0006
MEAN_REVERSION_HALF_LIFE = 30   # minutes
MEAN_REVERSION_SCALE = 4.0      # the mean-reverting part's spread in units of the asset's volatility
GAP_LENGTH = 4                  # mean length of a run of missing minutes
DIRTY_RATE = 2e-6               # share of rows with each kind of dirty value (at least 2 each)
ROWS_PER_CHUNK = 2_000_000


# ---------------------------------------------------------------- download

@shared_retry_budget()
def download(source: str, destination: Path, competition: str = COMPETITION,
             generated_start: str = "2021-04-11", generated_end: str = "2021-05-11",
             data_seed: int = 2022) -> Path:
    """Put train.csv and asset_details.csv into `destination` (written as a whole or not at all)."""
    with atomic_path(destination) as staging:
        staging.mkdir()
        if source == "generated":
            generate(staging, generated_start, generated_end, data_seed)
        elif source == "kaggle":
            download_from_kaggle(competition, staging)
        elif urlparse(source).path.endswith(".zip"):
            extract_competition_zip(fetch(source, staging / Path(urlparse(source).path).name), staging,
                                    shown_as=display_uri(source))
        else:
            for name in (TRAIN_CSV, ASSETS_CSV):
                fetch(f"{source.rstrip('/')}/{name}", staging / name)
    return destination


def kaggle_credentials_present() -> bool:
    """Whether any credential that kaggle 2.2.4 reads is there (kaggle_api_extended, kagglesdk.kaggle_env)."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    kaggle_home = Path(os.path.expanduser("~/.kaggle"))
    if any((kaggle_home / name).is_file() for name in ("access_token", "access_token.txt")):
        return True
    config_dir = os.environ.get("KAGGLE_CONFIG_DIR") or kaggle_home
    return Path(config_dir, "kaggle.json").is_file()


def download_from_kaggle(competition: str, destination: Path) -> None:
    if not kaggle_credentials_present():
        raise InputError("Kaggle credentials missing: set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN "
                         "(on a cluster: the Secret named by the kaggle_secret parameter, "
                         "keys 'username' and 'key')")
    # Imported only now: importing kaggle authenticates, and must not run without credentials.
    from kaggle.api.kaggle_api_extended import KaggleApi
    from requests import HTTPError

    api = KaggleApi()
    api.authenticate()
    for name in (TRAIN_CSV, ASSETS_CSV):
        def download_one(name: str = name) -> None:
            try:
                api.competition_download_file(competition, name, path=str(destination),
                                              force=True, quiet=False)
            except HTTPError as error:
                status = error.response.status_code if error.response is not None else None
                if status in (401, 403, 404):  # retrying cannot fix these
                    raise InputError(f"Kaggle refused {competition}/{name} (HTTP {status}): check "
                                     "the credentials and accept the competition's rules") from error
                if status is None or status == 429 or status >= 500:
                    raise TransientError(f"Kaggle answered HTTP {status} for {competition}/{name}") from error
                raise InputError(f"Kaggle refused {competition}/{name} (HTTP {status})") from error
        with_retries(download_one, f"kaggle competition {competition} file {name}")
        zipped = destination / f"{name}.zip"
        if zipped.exists():  # Kaggle sends large files zipped
            extract_competition_zip(zipped, destination, (name,))
        if not (destination / name).is_file():  # the API can return without having written it
            raise InputError(f"Kaggle competition {competition} sent no {name}")


def extract_competition_zip(archive: Path, destination: Path, names: tuple[str, ...] = (TRAIN_CSV, ASSETS_CSV),
                            shown_as: str | None = None) -> None:
    """Extract `names` (wherever they sit in the zip) and delete the zip; errors name `shown_as`."""
    shown = shown_as or archive.name
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = {Path(m).name: m for m in zipped.namelist()}
            for name in names:
                if name not in members:
                    raise InputError(f"{shown} has no {name}")
                with zipped.open(members[name]) as source, open(destination / name, "wb") as out:
                    shutil.copyfileobj(source, out, length=1 << 22)
    except zipfile.BadZipFile as error:
        raise InputError(f"{shown} is not a valid zip file: {error}") from error
    archive.unlink()


# ---------------------------------------------------------------- generator

def generate(destination: Path, start: str, end: str, seed: int = 2022) -> int:
    """Write train.csv and asset_details.csv for the minutes in (start, end]; return the row count.

    Like the real file, the first minute is start 00:01 and the last end 00:00.
    """
    first, last = to_timestamp(start, "generated_start") + MINUTE, to_timestamp(end, "generated_end")
    if last < first:
        raise InputError(f"generated_end {end} is not after generated_start {start}")
    rng = np.random.default_rng(seed)
    minutes = np.arange(first, last + 1, MINUTE, dtype=np.int64)
    regime = _volatility_regime(len(minutes), rng)
    market = MARKET_VOLATILITY * regime * _fat_tailed(len(minutes), rng)
    listed = [a for a in CSV_ASSET_ORDER if to_timestamp(SIMULATION[a].listed) <= last]
    if not listed:
        raise InputError(f"no asset is listed between {start} and {end}")
    bars = [_asset_bars(asset_id, minutes, market, regime, rng) for asset_id in listed]
    # Popping each asset's column as it is joined keeps one copy of the data, not two.
    table = {column: np.concatenate([b.pop(column) for b in bars]) for column in list(bars[0])}
    table["Target"] = compute_target(table["timestamp"], table["Asset_ID"], table["Close"],
                                     weight_vector())
    _add_dirty_values(table, rng)
    _write_train_csv(table, destination / TRAIN_CSV)
    write_asset_details(destination / ASSETS_CSV)
    return len(table["timestamp"])


def write_asset_details(path: Path) -> None:
    by_id = {a.asset_id: a for a in ASSETS}
    rows = [by_id[i] for i in CSV_ASSET_ORDER]
    frame = pd.DataFrame({"Asset_ID": [a.asset_id for a in rows],
                          "Weight": [a.weight for a in rows],
                          "Asset_Name": [a.name for a in rows]})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _fat_tailed(n: int, rng: np.random.Generator) -> np.ndarray:
    """Student-t with 4 degrees of freedom scaled to unit variance (minute returns are fat-tailed)."""
    return rng.standard_t(4, n) / np.sqrt(2.0)


def _ar1(shocks: np.ndarray, half_life: float) -> np.ndarray:
    """x_t = phi x_(t-1) + shock_t (x_-1 = 0), with phi set by the half-life in minutes.

    pandas' ewm(adjust=False) runs y_t = phi y_(t-1) + (1 - phi) v_t from y_0 = v_0,
    so a leading 0 and a rescale give the AR(1) recursion in compiled code.
    """
    phi = 0.5 ** (1.0 / half_life)
    smoothed = pd.Series(np.concatenate([[0.0], shocks])).ewm(alpha=1 - phi, adjust=False).mean()
    return smoothed.to_numpy()[1:] / (1 - phi)


def _volatility_regime(n: int, rng: np.random.Generator) -> np.ndarray:
    """A slowly varying volatility multiplier, shared by all assets (crypto calms and panics together)."""
    half_life = 3 * 1440
    phi = 0.5 ** (1.0 / half_life)
    log_vol = _ar1(rng.normal(0.0, 0.35 * np.sqrt(1 - phi ** 2), n), half_life)
    return np.exp(log_vol)


def _asset_bars(asset_id: int, minutes: np.ndarray, market: np.ndarray, regime: np.ndarray,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    sim = SIMULATION[asset_id]
    listed = minutes >= to_timestamp(sim.listed)
    n = int(listed.sum())
    market, regime = market[listed], regime[listed]
    sigma = sim.volatility * regime
    walk = np.cumsum(sim.beta * market + sigma * _fat_tailed(n, rng))
    phi = 0.5 ** (1.0 / MEAN_REVERSION_HALF_LIFE)
    reverting = _ar1(rng.normal(0.0, 1.0, n) * sigma * MEAN_REVERSION_SCALE * np.sqrt(1 - phi ** 2),
                     MEAN_REVERSION_HALF_LIFE)
    close = sim.price * np.exp(walk + reverting)
    open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(0.1 * sigma * rng.normal(size=n))
    high = np.maximum(open_, close) * np.exp(np.abs(0.6 * sigma * rng.normal(size=n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(0.6 * sigma * rng.normal(size=n)))
    open_, high, low, close = (_quote(p, sim.digits) for p in (open_, high, low, close))
    count = 1.0 + rng.poisson(sim.trades * regime)
    volume = count * rng.lognormal(0.0, 1.0, n) * 1000.0 / sim.price
    vwap = low + (high - low) * rng.uniform(0.25, 0.75, n)
    present = ~_gaps(n, sim.missing, rng)
    return {"timestamp": minutes[listed][present],
            "Asset_ID": np.full(int(present.sum()), asset_id, dtype=np.int64),
            "Count": count[present], "Open": open_[present], "High": high[present],
            "Low": low[present], "Close": close[present], "Volume": volume[present],
            "VWAP": vwap[present]}


def _quote(price: np.ndarray, digits: int) -> np.ndarray:
    """Round to `digits` significant digits, as an exchange quotes (flat bars happen).

    Multiplying or dividing by an exact power of ten keeps the quotes short in the CSV.
    """
    decimals = digits - 1 - np.floor(np.log10(price))
    scale = 10.0 ** np.abs(decimals)
    return np.where(decimals >= 0, np.round(price * scale) / scale, np.round(price / scale) * scale)


def _gaps(n: int, missing: float, rng: np.random.Generator) -> np.ndarray:
    """True for missing minutes: runs of mean length GAP_LENGTH covering about `missing` of them."""
    starts = np.flatnonzero(rng.random(n) < missing / GAP_LENGTH)
    ends = np.minimum(starts + rng.geometric(1.0 / GAP_LENGTH, len(starts)), n)
    depth = np.zeros(n + 1, dtype=np.int32)
    np.add.at(depth, starts, 1)
    np.add.at(depth, ends, -1)
    return np.cumsum(depth[:-1]) > 0


def _add_dirty_values(table: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """The kinds of dirt the real train.csv has: ±inf VWAP, missing VWAP at zero volume, negative Volume."""
    n = len(table["timestamp"])
    k = max(2, int(n * DIRTY_RATE))
    rows = rng.choice(n, size=4 * k, replace=False).reshape(4, k)
    table["VWAP"][rows[0]] = np.inf
    table["VWAP"][rows[1]] = -np.inf
    table["Volume"][rows[2]], table["VWAP"][rows[2]] = 0.0, np.nan
    table["Volume"][rows[3]] = -table["Volume"][rows[3]]


def _write_train_csv(table: dict[str, np.ndarray], path: Path) -> None:
    """Rows ordered by minute, then in the real file's asset order; missing values as empty fields."""
    rank = np.empty(max(CSV_ASSET_ORDER) + 1, dtype=np.int64)
    rank[list(CSV_ASSET_ORDER)] = np.arange(len(CSV_ASSET_ORDER))
    order = np.lexsort((rank[table["Asset_ID"]], table["timestamp"]))
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write((",".join(TRAIN_COLUMNS) + "\n").encode())
        for begin in range(0, len(order), ROWS_PER_CHUNK):
            chunk = order[begin:begin + ROWS_PER_CHUNK]
            arrays = [pa.array(table[c][chunk], from_pandas=True) for c in TRAIN_COLUMNS]
            pacsv.write_csv(pa.table(arrays, names=list(TRAIN_COLUMNS)), out,
                            pacsv.WriteOptions(include_header=False, quoting_style="none"))
