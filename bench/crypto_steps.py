"""The two sides of bench_crypto.py, each step run in its own process, and how they are measured.

    python bench/crypto_steps.py STEP WORK_DIR [ARGS...]   (bench_crypto.py starts these)

Prints the step's result and its peak memory as one JSON line on stdout.
"""

import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START_DATE = "2020-01-01"
VALID_START = "2021-05-01"
REDEFINED = {"HL", "OC", "lower_shadow", "upper_shadow"}
# The pipeline's training settings before issue 14 (the source's): every round on every row.
PREVIOUS_SETTINGS = {"n_estimators": 1200, "learning_rate": 0.01, "early_stopping_rounds": 60, "num_leaves": 31,
                     "seed": 2022, "test_fraction": 0.5, "max_bin": 255, "row_fraction": 1.0}


# --- the source document's approach, re-implemented -------------------------------------------

def source_load(work: Path) -> None:
    """Read the whole CSV with pandas, keep rows from 2020 on, pickle for the next step."""
    import pandas as pd

    train = pd.read_csv(work / "raw" / "train.csv")
    assets = pd.read_csv(work / "raw" / "asset_details.csv").sort_values("Asset_ID")
    train["datetime"] = pd.to_datetime(train["timestamp"], unit="s")
    train = train[train["datetime"] >= f"{START_DATE} 00:00:00"].copy()
    with open(work / "source" / "df_train", "wb") as f:
        pickle.dump(train, f)
    with open(work / "source" / "df_asset_details", "wb") as f:
        pickle.dump(assets, f)


def source_asset_features(train, asset_id: int):
    import datetime

    import numpy as np
    import pandas as pd
    import talib

    rows = train[train["Asset_ID"] == asset_id].sort_values("timestamp")
    out = rows.copy()
    valid_from = np.int32(time.mktime(datetime.datetime.strptime("01/05/2021", "%d/%m/%Y").timetuple()))
    out["train_flg"] = np.where(out["timestamp"] >= valid_from, 0, 1)
    out = out[["timestamp", "Asset_ID", "High", "Low", "Open", "Close", "Volume", "Target", "train_flg"]].copy()
    for n in (30, 120, 240):
        out[f"RSI_{n}"] = talib.RSI(out["Close"], n)
        out[f"ATR_{n}"] = talib.ATR(out["High"], out["Low"], out["Close"], n)
        ema = out["Close"].ewm(span=n, adjust=False).mean()
        out[f"DEMA_{n}"] = 2 * ema - ema.ewm(span=n, adjust=False).mean()
    for n in (30, 120, 240):
        out[f"sma_{n}"] = out["Close"].rolling(n).mean() / out["Close"] - 1
        out[f"return_{n}"] = out["Close"] / out["Close"].shift(n) - 1
    with np.errstate(divide="ignore", invalid="ignore"):  # the source's logs of differences
        out["HL"] = np.log(out["High"] - out["Low"])
        out["OC"] = np.log(out["Close"] - out["Open"])
        out["lower_shadow"] = np.log(np.minimum(rows["Close"], rows["Open"]) - rows["Low"])
        out["upper_shadow"] = np.log(rows["High"] - np.maximum(rows["Close"], rows["Open"]))
    out.replace([np.inf, -np.inf], np.nan, inplace=True)
    out["Date"] = pd.to_datetime(out["timestamp"], unit="s")
    out["Day"] = out["Date"].dt.weekday.astype(np.int32)
    out["dayofyear"] = out["Date"].dt.dayofyear
    out["weekofyear"] = out["Date"].dt.isocalendar().week
    out["season"] = (out["Date"].dt.month % 12 + 3) // 3
    out = out.drop(["Open", "Close", "High", "Low", "Volume", "Date"], axis=1)
    return out.fillna(0)


def source_features(work: Path) -> None:
    """Unpickle, one asset at a time out of the whole frame, concat in a loop, pickle."""
    import pandas as pd

    with open(work / "source" / "df_train", "rb") as f:
        train = pickle.load(f)
    feature_df = pd.DataFrame()
    for asset_id in range(14):
        feature_df = pd.concat([feature_df, source_asset_features(train, asset_id)])
    with open(work / "source" / "feature_df", "wb") as f:
        pickle.dump(feature_df, f)


def source_merge(work: Path) -> None:
    """Unpickle the features and the assets, merge the weights, pickle again."""
    import pandas as pd

    with open(work / "source" / "feature_df", "rb") as f:
        feature_df = pickle.load(f)
    with open(work / "source" / "df_asset_details", "rb") as f:
        assets = pickle.load(f)
    feature_df = pd.merge(feature_df, assets[["Asset_ID", "Weight"]], how="left", on=["Asset_ID"])
    with open(work / "source" / "merge_feature_df", "wb") as f:
        pickle.dump(feature_df, f)


# --- the project's steps (the plain functions the KFP steps call) ------------------------------

def generate(work: Path, start: str, end: str) -> dict:
    from pipelines.crypto.data import generate as write_bars

    return {"generated_rows": write_bars(work / "raw", start, end)}


def project_load(work: Path) -> dict:
    from pipelines.crypto.load import load

    return {"loaded_rows": load(work / "raw", work / "project" / "loaded", START_DATE)["rows"]}


def project_features(work: Path) -> None:
    from pipelines.crypto.features import build_features

    build_features(work / "project" / "loaded", work / "project" / "features.arrow", VALID_START)


def project_one_process(work: Path) -> dict:
    """The same two steps one after the other in one process: the work without a second start."""
    loaded = project_load(work)
    project_features(work)
    return loaded


def compare(work: Path) -> dict:
    """Column by column, so that both tables are never held whole at once."""
    import numpy as np

    from pipelines.crypto.tables import open_table

    with open(work / "source" / "merge_feature_df", "rb") as f:
        theirs = pickle.load(f)
    mine = open_table(work / "project" / "features.arrow")  # memory-mapped: read column by column
    keys = ["Asset_ID", "timestamp"]
    for key in keys:
        if not np.array_equal(mine.column(key).to_numpy(), theirs[key].to_numpy()):
            raise AssertionError(f"row keys differ in {key}")
    report = {}
    for column in mine.column_names:
        if column in keys or column in REDEFINED:
            continue
        a = mine.column(column).to_numpy().astype(np.float64)
        b = theirs[column].to_numpy(np.float64)
        missing = np.isnan(a)
        scale = np.maximum(np.abs(a), np.abs(b))
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = np.where(scale > 0, np.abs(a - b) / scale, 0.0)
        report[column] = {"max_relative_difference": float(relative[~missing].max(initial=0.0)),
                          "missing_here": int(missing.sum()),
                          "missing_here_but_not_zero_there": int((b[missing] != 0).sum())}
    return {"rows": len(theirs), "columns": report}


def pipeline(work: Path) -> dict:
    from pipelines.local.run import run_local

    shutil.rmtree(work / "pipeline-run", ignore_errors=True)
    result = run_local("crypto", {"source": str(work / "raw"), "model_base_path": str(work / "model_store")},
                       run_dir=work / "pipeline-run")
    evaluate, training = result.tasks.get("evaluate"), result.tasks.get("train-model")
    return {"succeeded": result.succeeded, "error": result.error,
            "steps": {t.name: round(t.seconds, 1) for t in result.tasks.values()},
            "peaks_mib": {t.name: t.peak_rss_mib for t in result.tasks.values()},
            "weighted_correlation": evaluate.output if evaluate else None,
            "best_iteration": int(training.metrics.get("best_iteration", 0)) if training else None,
            "metrics": evaluate.metrics if evaluate else {}}


def before_training(work: Path) -> dict:
    """The previous training settings on the pipeline run's feature table, scored on the same test rows."""
    from pipelines.crypto.definitions import FEATURES_TABLE
    from pipelines.crypto.evaluation import evaluate
    from pipelines.crypto.models import train

    features = work / "pipeline-run" / "workspace" / "crypto" / FEATURES_TABLE
    started = time.perf_counter()
    result = train(features, work / "before-model", VALID_START, **PREVIOUS_SETTINGS)
    seconds = time.perf_counter() - started
    scores = evaluate(features, work / "before-model", result.test_start)
    return {"weighted_correlation": scores.metrics["weighted_correlation"], "train_seconds": seconds,
            "best_iteration": result.best_iteration}


STEPS = {f.__name__: f for f in (generate, source_load, source_features, source_merge, project_load,
                                 project_features, project_one_process, compare, pipeline, before_training)}


# --- measuring ---------------------------------------------------------------------------------

def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    parents, rss = {}, {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            resident = int(Path(f"/proc/{entry.name}/statm").read_text().split()[1])
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        rss[pid] = resident * page
    members, frontier = {root_pid}, [root_pid]
    while frontier:
        current = frontier.pop()
        for pid, parent in parents.items():
            if parent == current and pid not in members:
                members.add(pid)
                frontier.append(pid)
    return sum(rss.get(pid, 0) for pid in members)


def run_step(name: str, work: Path, *args: str, sample_tree: bool = False) -> dict:
    """Run one step in a fresh process; its wall time, peak memory and JSON output."""
    env = {**os.environ, "TZ": "UTC", "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, name, str(work), *args], env=env,
                               stdout=subprocess.PIPE, text=True)
    peak_tree = [0]
    if sample_tree:
        def sample() -> None:
            while process.poll() is None:
                peak_tree[0] = max(peak_tree[0], tree_rss_bytes(process.pid))
                time.sleep(0.2)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"step {name} failed with exit code {process.returncode}")
    measured = {**json.loads(output.strip().splitlines()[-1]), "wall_seconds": seconds}
    if sample_tree:
        measured["peak_tree_gb"] = peak_tree[0] / 1e9
    return measured


def child(name: str, work: Path, args: list[str]) -> None:
    """Run a step in this process and write its result and peak memory as one JSON line on stdout."""
    output, sys.stdout = sys.stdout, sys.stderr  # the steps' progress lines go to stderr
    result = STEPS[name](work, *args) or {}
    sys.stdout.flush()
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    output.write(json.dumps({**result, "peak_gb": own.ru_maxrss * 1024 / 1e9,
                             "cpu_seconds": own.ru_utime + own.ru_stime,  # all of this process's threads
                             "largest_child_peak_gb": children.ru_maxrss * 1024 / 1e9}) + "\n")


if __name__ == "__main__":
    _, step, work_dir, *step_args = sys.argv
    child(step, Path(work_dir), step_args)
