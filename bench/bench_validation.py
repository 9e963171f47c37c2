"""The validation step's work on crypto's full-scale feature table, against pandas' describe() as the anchor.

    python bench/bench_validation.py [--rows 12700000] [--features PATH] [--work-dir DIR]

The table: `--features`, a real feature table (`bench/bench_crypto.py --keep` leaves one in its
work folder: project/features.arrow), or else one of the same schema and size made here
(pipelines.crypto.features.SCHEMA: 12.7M rows, 14 assets, float32 features with the 240-row
warm-up of missing values per asset), written as an Arrow IPC file like the feature step's.

Measured, each three times and the median shown:
- validate, first run: read the table, its statistics and schema (no champion);
- validate, later run: the same, plus the anomalies against a champion's schema and the drift
  of every column against its statistics (what the step does on every recurring run);
- the anchor: pandas reads the same file and runs `describe()` with the same quantiles, the
  summary a person writes by hand (no histograms, no drift).

The goal: the later run within 5 s on 2 cores. Other processes on the machine slow every side;
the load average is printed with the results.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for a plain `python bench/...`

from results import recorded  # noqa: E402  (this script's folder is on the path)

GOAL_S = 5.0
ASSETS, WARM_UP = 14, 240
REPEATS = 3


def make_table(path: Path, rows: int) -> None:
    """A feature table of crypto's schema: `rows` rows, assets interleaved per minute."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from pipelines.crypto.features import SCHEMA

    rng = np.random.default_rng(0)
    asset = np.resize(np.arange(ASSETS, dtype=np.int8), rows)
    warm_up = np.arange(rows) < WARM_UP * ASSETS
    columns = {"timestamp": 1_577_836_800 + 60 * (np.arange(rows, dtype=np.int64) // ASSETS), "Asset_ID": asset}
    for field in SCHEMA:
        if field.name in columns:
            continue
        if pa.types.is_floating(field.type):
            values = rng.standard_normal(rows, dtype=np.float32)
            values[warm_up] = np.nan
        else:
            values = rng.integers(0, 53, rows).astype(field.type.to_pandas_dtype())
        columns[field.name] = values
    table = pa.table(columns, schema=SCHEMA)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, SCHEMA) as writer:
        writer.write_table(table, max_chunksize=1 << 20)


def timed(work) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def median_time(work) -> tuple[float, object]:
    runs = [timed(work) for _ in range(REPEATS)]
    return statistics.median(t for t, _ in runs), runs[-1][1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12_700_000)
    parser.add_argument("--features", type=Path, help="a real feature table (Arrow IPC) instead of a made one")
    parser.add_argument("--work-dir", type=Path)
    args = parser.parse_args()

    import pandas as pd

    from components.validation.validate import Baseline, validate

    categorical = frozenset({"Asset_ID"})
    time_columns = frozenset({"timestamp", "train_flg", "Day", "dayofyear", "weekofyear", "season"})
    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        table = args.features or Path(work) / "features.arrow"
        if not args.features:
            made, _ = timed(lambda: make_table(table, args.rows))
            print(f"made {table.name}: {args.rows:,} rows of crypto's schema in {made:.1f} s "
                  f"({table.stat().st_size / 1e9:.2f} GB)")
        nothing = Baseline(None, reason="first run")
        first_s, first = median_time(lambda: validate(table, nothing, categorical, time_columns))
        champion = Baseline(1, first.statistics, first.schema)
        later_s, later = median_time(lambda: validate(table, champion, categorical, time_columns))
        quantiles = [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
        anchor_s, _ = median_time(lambda: pd.read_feather(table).describe(percentiles=quantiles))

    rows = first.statistics["rows"]
    print(f"\n{rows:,} rows, {len(first.statistics['features'])} columns, {len(later.drifts)} scored for drift "
          f"(largest PSI {later.drifts[0].psi:.4f}: the same table), {len(later.anomalies)} anomalies")
    print(f"{'':34}{'median s':>10}   (of {REPEATS})")
    print(f"{'validate, first run (no champion)':34}{first_s:10.2f}")
    print(f"{'validate, later run (+ drift)':34}{later_s:10.2f}   goal <= {GOAL_S:.0f} s")
    print(f"{'anchor: pandas describe()':34}{anchor_s:10.2f}   (statistics only)")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    return 0 if later_s <= GOAL_S else 1


if __name__ == "__main__":
    with recorded("bench_validation", measures=["components/validation/*.py"]):
        status = main()
    sys.exit(status)
