"""crypto features: each one against a plain per-asset computation, no lookahead, weights joined."""

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from components.common.errors import InputError
from pipelines.crypto import data
from pipelines.crypto.definitions import (
    ASSETS_TABLE,
    CALENDAR,
    MODEL_FEATURES,
    PRICE_FEATURES,
    TRAIN_TABLE,
    WINDOWS,
)
from pipelines.crypto.features import build_features
from pipelines.crypto.features import ema as fast_ema
from pipelines.crypto.load import load


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    data.generate(root, "2021-04-28", "2021-05-02", seed=11)
    return load(root, root / "loaded", "2020-01-01") and root / "loaded"


@pytest.fixture(scope="module")
def features(loaded):
    path = loaded.parent / "features.arrow"
    build_features(loaded, path, "2021-05-01")
    return pd.read_feather(path)


# --- plain, loop-by-loop definitions (Wilder's RSI and ATR as TA-Lib defines them) ---

def rsi(close, n):
    out = [math.nan] * len(close)
    changes = [close[i] - close[i - 1] for i in range(1, len(close))]
    gain = sum(max(c, 0) for c in changes[:n]) / n
    loss = sum(max(-c, 0) for c in changes[:n]) / n
    out[n] = 100 * gain / (gain + loss)
    for i in range(n + 1, len(close)):
        c = changes[i - 1]
        gain = (gain * (n - 1) + max(c, 0)) / n
        loss = (loss * (n - 1) + max(-c, 0)) / n
        out[i] = 100 * gain / (gain + loss)
    return out


def atr(high, low, close, n):
    true_range = [max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
                  for i in range(1, len(close))]
    out = [math.nan] * len(close)
    average = sum(true_range[:n]) / n
    out[n] = average
    for i in range(n + 1, len(close)):
        average = (average * (n - 1) + true_range[i - 1]) / n
        out[i] = average
    return out


def ema(values, span):
    alpha, out = 2 / (span + 1), [values[0]]
    for value in values[1:]:
        out.append(alpha * value + (1 - alpha) * out[-1])
    return out


def plain_features(rows: pd.DataFrame) -> dict[str, list[float]]:
    o, h, lo, c = (rows[k].tolist() for k in ("Open", "High", "Low", "Close"))
    out = {}
    for n in WINDOWS:
        out[f"RSI_{n}"] = rsi(c, n)
        out[f"ATR_{n}"] = atr(h, lo, c, n)
        first = ema(c, n)
        out[f"DEMA_{n}"] = [2 * a - b for a, b in zip(first, ema(first, n), strict=True)]
        out[f"sma_{n}"] = [sum(c[i - n + 1:i + 1]) / n / c[i] - 1 if i >= n - 1 else math.nan
                           for i in range(len(c))]
        out[f"return_{n}"] = [c[i] / c[i - n] - 1 if i >= n else math.nan for i in range(len(c))]
    out["HL"] = [math.log(h[i] / lo[i]) for i in range(len(c))]
    out["OC"] = [math.log(c[i] / o[i]) for i in range(len(c))]
    out["lower_shadow"] = [math.log(min(c[i], o[i]) / lo[i]) for i in range(len(c))]
    out["upper_shadow"] = [math.log(h[i] / max(c[i], o[i])) for i in range(len(c))]
    days = [dt.datetime.fromtimestamp(t, dt.timezone.utc) for t in rows["timestamp"]]
    out["Day"] = [d.weekday() for d in days]
    out["dayofyear"] = [d.timetuple().tm_yday for d in days]
    out["weekofyear"] = [d.isocalendar()[1] for d in days]
    out["season"] = [{12: 1, 1: 1, 2: 1, 3: 2, 4: 2, 5: 2, 6: 3, 7: 3, 8: 3}.get(d.month, 4) for d in days]
    return out


@pytest.mark.parametrize("length, span", [(0, 30), (1, 240), (100, 240), (5000, 30)])
def test_the_ema_is_pandas_ewm_without_adjustment(length, span):
    values = 100 * np.exp(np.cumsum(np.random.default_rng(length).normal(0, 1e-3, length)))
    expected = pd.Series(values).ewm(span=span, adjust=False).mean().to_numpy()
    np.testing.assert_allclose(fast_ema(values, span), expected, rtol=1e-14)
    assert len(fast_ema(values, span)) == length


def test_every_feature_matches_a_plain_per_asset_computation(loaded, features):
    raw = pd.read_feather(loaded / TRAIN_TABLE)
    assert set(MODEL_FEATURES) <= set(features.columns)
    for asset_id in (1, 4, 13):  # the heaviest weight, a late listing, a small coin
        rows = raw[raw["Asset_ID"] == asset_id].sort_values("timestamp")
        mine = features[features["Asset_ID"] == asset_id]
        np.testing.assert_array_equal(mine["timestamp"].to_numpy(), rows["timestamp"].to_numpy())
        for name, expected in plain_features(rows).items():
            np.testing.assert_allclose(mine[name].to_numpy(np.float64), expected, rtol=2e-6, atol=1e-9,
                                       err_msg=f"asset {asset_id} {name}")


def test_weights_split_and_target_are_joined_per_row(loaded, features):
    weights = pd.read_feather(loaded / ASSETS_TABLE).set_index("Asset_ID")["Weight"]
    np.testing.assert_allclose(features["Weight"], features["Asset_ID"].map(weights), rtol=1e-7)
    valid_from = pd.Timestamp("2021-05-01", tz="UTC").timestamp()
    assert ((features["timestamp"] >= valid_from) == (features["train_flg"] == 0)).all()
    raw = pd.read_feather(loaded / TRAIN_TABLE).set_index(["Asset_ID", "timestamp"])["Target"]
    joined = features.set_index(["Asset_ID", "timestamp"])["Target"]
    np.testing.assert_array_equal(joined.to_numpy(), raw.loc[joined.index].to_numpy())
    assert features[CALENDAR].dtypes.unique().tolist() == [np.dtype("int16")]


def write_loaded(folder, train, loaded):
    folder.mkdir()
    train.reset_index(drop=True).to_feather(folder / TRAIN_TABLE)
    (folder / ASSETS_TABLE).write_bytes((loaded / ASSETS_TABLE).read_bytes())
    return folder


def test_changing_a_later_price_leaves_every_earlier_feature_unchanged(loaded, features, tmp_path):
    train = pd.read_feather(loaded / TRAIN_TABLE)
    bitcoin = train.index[train["Asset_ID"] == 1]
    changed_at = bitcoin[len(bitcoin) // 2]
    moment = train.loc[changed_at, "timestamp"]
    train.loc[changed_at, ["High", "Close"]] *= 1.05
    build_features(write_loaded(tmp_path / "changed", train, loaded), tmp_path / "f.arrow", "2021-05-01")
    after = pd.read_feather(tmp_path / "f.arrow")
    earlier = (features["timestamp"] < moment) | (features["Asset_ID"] != 1)
    pd.testing.assert_frame_equal(after[earlier.to_numpy()], features[earlier])
    later = after.loc[~earlier.to_numpy(), PRICE_FEATURES].to_numpy()
    assert (later != features.loc[~earlier, PRICE_FEATURES].to_numpy()).any(), "the change was seen"


def test_row_order_of_the_input_does_not_matter(loaded, features, tmp_path):
    shuffled = pd.read_feather(loaded / TRAIN_TABLE).sample(frac=1.0, random_state=0)
    build_features(write_loaded(tmp_path / "shuffled", shuffled, loaded), tmp_path / "f.arrow", "2021-05-01")
    pd.testing.assert_frame_equal(pd.read_feather(tmp_path / "f.arrow"), features)


def test_a_repeated_minute_is_bad_input_and_writes_nothing(loaded, tmp_path):
    train = pd.read_feather(loaded / TRAIN_TABLE)
    doubled = pd.concat([train, train[train["Asset_ID"] == 3].head(1)])
    with pytest.raises(InputError, match="Asset_ID 3 has two rows at timestamp"):
        build_features(write_loaded(tmp_path / "doubled", doubled, loaded), tmp_path / "f.arrow")
    assert not (tmp_path / "f.arrow").exists()
    assert not list(tmp_path.glob("*.partial"))
