"""What the gate's comparison on the rows adds to the gate step, on crypto's full-scale test set.

    .venv/bin/python bench/bench_gate.py [--rows 1400000] [--block-length 240] [--repeats 3]

crypto's full-scale test set is about 1.4M rows: 14 assets a minute for about 100k
minutes (bench_crypto.py's data, the half of it after the validation start). This
script builds rows of that shape (`components.release.rows`: the model's 24 float32
features, the target, the asset weights, the challenger's and the reversal
baseline's predictions, the minute as the resampling key) and a LightGBM champion
trained with the pipeline's settings for its full `N_ESTIMATORS` rounds (early
stopping usually keeps fewer trees: its predictions cost the most here), published
in a folder model store as the stable version. It times, each the median of
`--repeats` runs in this process:

- the gate as it was (the anchor): read the champion's stored evaluation and decide
  on stored numbers (the gate module of this branch's base commit, loaded from git);
- the gate now: read the rows, score the champion on them, bootstrap the three
  paired differences (2000 resamples of blocks of `--block-length` minutes) and
  decide, with each part's time.

The goal is at most 5 s added on 2 cores. The values are synthetic (the time of
LightGBM's prediction depends on the trees, not on the values); the gate's work is
the same as on the pipeline's rows. Other processes on the machine slow it down:
the load average is printed with the result.
"""

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results import recorded  # this script's folder is on the path

from pipelines.crypto.evaluation import BLOCK_LENGTH_MINUTES

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BASE_COMMIT = "403ee00"  # the gate before the comparison on rows
ASSETS = 14
GOAL_S = 5.0
# The pipeline keeps the best iteration only: its full-scale run kept 18 trees (bench/results.md, bench_crypto);
# at most it keeps N_ESTIMATORS (500), the worst case for the champion's prediction.
REALISTIC_TREES, WORST_TREES = 20, 500

# The code these figures are about (bench/results.py keeps their digest).
MEASURES = ["components/release/bootstrap.py", "components/release/champion.py", "components/release/gate.py",
            "components/release/rows.py", "pipelines/crypto/evaluation.py"]


def old_gate_module():
    """components/release/gate.py as it was at BASE_COMMIT, loaded under another name."""
    source = subprocess.run(["git", "show", f"{BASE_COMMIT}:components/release/gate.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("old_gate", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_gate"] = module  # dataclasses look their module up by name
    exec(compile(source, "old_gate.py", "exec"), module.__dict__)  # noqa: S102 - the project's own file, from git
    return module


def make_rows(folder: Path, count: int, block_length: int, seed: int = 0):
    from components.release.rows import RowsInfo, write_rows
    from pipelines.crypto.definitions import MODEL_FEATURES

    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(count, len(MODEL_FEATURES))).astype(np.float32)
    inputs[:, 0] = np.tile(np.arange(ASSETS), -(-count // ASSETS))[:count]  # Asset_ID
    minute = np.arange(count) // ASSETS
    target = 0.002 * inputs[:, 5] + rng.normal(0, 0.01, count)
    challenger = target + rng.normal(0, 0.05, count)
    weight = 1 + inputs[:, 0] % 5
    info = RowsInfo("weighted_correlation", block_length, "minutes", list(MODEL_FEATURES), "")
    metadata = write_rows(folder, inputs, minute, target, weight, challenger, -inputs[:, 7], info)
    return inputs, target, metadata


def make_champions(store: Path, inputs: np.ndarray, target: np.ndarray, trees: list[int]) -> None:
    """One LightGBM model trained with the pipeline's settings, published with its first `n` trees as
    version i+1 for the i-th `n` of `trees`."""
    import lightgbm

    from components.store import open_store
    from pipelines.crypto import models

    sample = np.random.default_rng(1).choice(len(target), min(len(target), 200_000), replace=False)
    booster = lightgbm.train({"objective": "regression", "learning_rate": models.LEARNING_RATE, "num_leaves": 31,
                              "max_bin": models.MAX_BIN, "verbose": -1, "seed": 1},
                             lightgbm.Dataset(inputs[sample], target[sample]), max(trees))
    for count in trees:
        folder = store.parent / f"champion-{count}"
        folder.mkdir()
        booster.save_model(str(folder / "model.bst"), num_iteration=count)
        open_store(store).publish(folder, "crypto", {"metrics": {"weighted_correlation": 0.03}, "test_set": "old"})


CPU_TIMES: dict[str, float] = {}  # median process CPU time per timed part: less inflated by other processes


def timed(name: str, action, repeats: int) -> tuple[float, object]:
    times, cpu, result = [], [], None
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = action()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    CPU_TIMES[name] = statistics.median(cpu)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_400_000)
    parser.add_argument("--block-length", type=int, default=BLOCK_LENGTH_MINUTES,
                        help="minutes per resampled block (default: the crypto pipeline's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trees", type=int, nargs="+", default=[REALISTIC_TREES, WORST_TREES],
                        help="the champions' numbers of trees")
    args = parser.parse_args()

    from components.release import bootstrap, champion, gate
    from components.release.comparison import BASELINE, CHAMPION
    from components.release.rows import read_rows
    from components.store import open_store

    with tempfile.TemporaryDirectory(prefix="bench-gate-") as work:
        work = Path(work)
        inputs, target, metadata = make_rows(work / "rows", args.rows, args.block_length)
        store_path = work / "store"
        make_champions(store_path, inputs, target, args.trees)
        del inputs
        store = open_store(store_path)
        old = old_gate_module()

        def old_gate():
            record = store.evaluation("crypto", 1)
            return old.decide("weighted_correlation", 0.04, 0.01, "reversal", 0.01,
                              old.Champion(1, record["metrics"]["weighted_correlation"], record["test_set"]),
                              0.0, False)

        old_s, _ = timed("old", old_gate, args.repeats)
        read_s, rows = timed("read", lambda: read_rows(work / "rows", metadata), args.repeats)
        scored = {}
        for version, trees in enumerate(args.trees, 1):
            scored[trees] = timed(f"score {trees}", lambda: champion.score_version(
                store, "crypto", "stable", version, rows), args.repeats)  # noqa: B023 - called at once
            assert scored[trees][1].predictions is not None, scored[trees][1].incomparable
        served = scored[args.trees[0]][1]
        predictions = {"challenger": rows.challenger, BASELINE: rows.baseline, CHAMPION: served.predictions}
        boot_s, result = timed("bootstrap", lambda: bootstrap.paired_bootstrap(
            "weighted_correlation", rows.block, rows.target, rows.weight, predictions, "challenger",
            args.block_length, 0.95), args.repeats)
        decide_s, verdict = timed("decide", lambda: gate.decide(
            "weighted_correlation", result.scores["challenger"], gate.Rules(0.01), "reversal",
            result.differences[BASELINE], gate.Served(1, result.scores[CHAMPION], result.differences[CHAMPION],
                                                      history=served.history("weighted_correlation")),
            rows=len(rows)), args.repeats)
        cpu = CPU_TIMES
        print(f"\n{len(rows):,} rows, {result.keys:,} minutes, blocks of {args.block_length} minutes, "
              f"{bootstrap.RESAMPLES} resamples; median of {args.repeats}; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'':47}{'wall':>9}{'CPU':>10}")
        parts = [("the gate as it was (stored score, decide): anchor", old_s, "old"),
                 ("read the rows", read_s, "read")]
        parts += [(f"score a LightGBM champion of {trees} trees", scored[trees][0], f"score {trees}")
                  for trees in args.trees]
        parts += [("paired bootstrap of 3 differences", boot_s, "bootstrap"), ("decide", decide_s, "decide")]
        for label, wall, name in parts:
            print(f"  {label:50}{wall:6.2f} s{cpu[name]:8.2f} s")
        for trees in args.trees:
            added = read_s + scored[trees][0] + boot_s + decide_s
            print(f"  added with a champion of {trees} trees: {added:.2f} s wall "
                  f"({cpu['read'] + cpu[f'score {trees}'] + cpu['bootstrap'] + cpu['decide']:.2f} s CPU); "
                  f"goal <= {GOAL_S:g} s: {'met' if added <= GOAL_S else 'NOT met'}")
        for line in verdict.comparisons[1:3]:
            print(f"  {line}")


if __name__ == "__main__":
    with recorded("bench_gate", measures=MEASURES):
        main()
