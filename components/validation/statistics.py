"""A run's data statistics: one JSON document per run, versioned (`FORMAT_VERSION`).

The data is a table (Parquet or an Arrow IPC file) or images (an .npz holding
`train_images` and `train_labels`, or `images` and `labels`). Images are
profiled as two columns: `pixel`, every pixel intensity of every image, and
`label`, the class of each image (a categorical column: its domain is the
count per class).

Per column: its type, `count` (values present), `missing`; for a numeric column
`min`, `max`, `mean`, `std`, `quantiles` and a `histogram` whose edges are the
column's deciles, so that a later run's values can be binned on them (drift
compares like with like); for a categorical column its `domain`, the count of
each value. Quantiles and histograms are computed on a uniform random sample of
at most `SAMPLE_ROWS` values per column (fixed seed): exact below that, and on
crypto's 12M rows the difference to the exact figures is far below what the
drift measures resolve, at a fraction of the time. Every other figure is exact.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.common.errors import InputError

FORMAT, FORMAT_VERSION = "kfp-ml-statistics", 1
STATISTICS_FILE = "statistics.json"
SAMPLE_ROWS = 100_000
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
EDGE_QUANTILES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
PIXEL, LABEL = "pixel", "label"
FLOAT, INT, BOOL, STRING, DATETIME, SOURCE = "float", "int", "bool", "string", "datetime", "source"
TYPES = {"f": FLOAT, "i": INT, "u": INT, "b": BOOL, "M": DATETIME, "O": STRING, "U": STRING}


@dataclass(frozen=True)
class Profile:
    """A run's statistics (the JSON document) and the sampled values of each numeric column,
    which drift bins on the champion's histogram edges."""

    statistics: dict
    samples: dict[str, np.ndarray]


def read_columns(path: Path) -> dict[str, np.ndarray]:
    """The columns of the data at `path`: a Parquet or Arrow IPC table, or .npz images."""
    if not path.exists():
        raise InputError(f"data to validate not found: {path}")
    with open(path, "rb") as file:
        magic = file.read(4)  # an artifact's file has no suffix to tell
    if magic[:2] == b"PK":  # an .npz is a zip
        return image_columns(path)
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path) if magic == b"PAR1" else \
            ipc.open_file(pa.memory_map(str(path))).read_all()
    except (OSError, pa.ArrowInvalid) as error:
        raise InputError(f"{path}: neither Parquet nor an Arrow IPC file ({error})") from error
    return {name: column.to_numpy() for name, column in zip(table.column_names, table.columns, strict=True)}


def image_columns(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            prefix = "train_" if "train_images" in archive else ""
            images, labels = archive[f"{prefix}images"], archive[f"{prefix}labels"]
    except (OSError, KeyError, ValueError) as error:
        raise InputError(f"{path}: not an .npz with images and labels ({error})") from error
    return {PIXEL: images.reshape(-1), LABEL: labels}


def column_type(values: np.ndarray) -> str:
    return TYPES.get(values.dtype.kind, STRING)


def profile(columns: dict[str, np.ndarray], categorical: set[str] = frozenset(), seed: int = 0,
            source_counts: dict[str, float] | None = None) -> Profile:
    """The statistics of `columns`; `categorical` names the numeric columns that are categories
    (booleans, strings and the images' `label` always are). `source_counts` are a step's counts of
    values its source lacked (`source_statistics`). The columns are profiled on every CPU at once
    (numpy's and Arrow's kernels release the GIL); each has its own sampling seed, so the result
    does not depend on the order they finish in."""
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int, name: str, values: np.ndarray) -> tuple[dict, np.ndarray | None]:
        kind = column_type(values)
        if kind in (BOOL, STRING) or name in categorical or (name == LABEL and PIXEL in columns):
            return categorical_statistics(values, kind), None
        if kind == DATETIME:
            present = values[~np.isnat(values)]
            return {"type": kind, "count": int(present.size), "missing": int(values.size - present.size),
                    "min": str(present.min()) if present.size else None,
                    "max": str(present.max()) if present.size else None}, None
        return numeric_statistics(values, kind, np.random.default_rng([seed, index]))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        profiled = list(pool.map(one, range(len(columns)), columns.keys(), columns.values()))
    features = source_statistics(source_counts or {})
    samples = {}
    for name, (stats, sample) in zip(columns, profiled, strict=True):
        features[name] = stats
        if sample is not None:
            samples[name] = sample
    statistics = {"format": FORMAT, "format_version": FORMAT_VERSION,
                  "rows": max((v.size for v in columns.values()), default=0), "features": features}
    if PIXEL in columns:
        statistics["images"] = int(columns[LABEL].size)
    return Profile(statistics, samples)


def source_statistics(counts: dict[str, float]) -> dict[str, dict]:
    """Values the source lacked before the table was made, which no column of the table can show
    (sp500 skips a day without a close and carries the last one forward): from a step's counts
    `<series>_<unit>` kept and `<series>_skipped_<unit>` skipped (nasdaq_days, nasdaq_skipped_days),
    the column `<series> (source)` of type "source", with its count and missing."""
    found = {}
    for key, skipped in counts.items():
        series, marker, unit = key.partition("_skipped_")
        kept = counts.get(f"{series}_{unit}")
        if marker and series and isinstance(kept, (int, float)) and isinstance(skipped, (int, float)):
            found[f"{series} (source)"] = {"type": SOURCE, "count": int(kept), "missing": int(skipped)}
    return found


def categorical_statistics(values: np.ndarray, kind: str) -> dict:
    present = values[~is_missing(values)]
    found, counts = np.unique(present.astype(str) if kind == STRING else present, return_counts=True)
    return {"type": kind, "categorical": True, "count": int(present.size), "missing": int(values.size - present.size),
            "domain": {domain_key(value): int(count) for value, count in zip(found, counts, strict=True)}}


def domain_key(value) -> str:
    """A category as the JSON document's key: integers without a decimal point (3, not 3.0)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def is_missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.array([v is None or v != v for v in values], dtype=bool)  # None, or NaN (NaN != NaN)
    return np.zeros(values.shape, dtype=bool)


def numeric_statistics(values: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    missing = int(np.count_nonzero(np.isnan(values))) if kind == FLOAT else 0
    present = values[~np.isnan(values)] if missing else values
    stats = {"type": kind, "count": int(present.size), "missing": missing}
    if not present.size:
        return stats, present
    sample = present if present.size <= SAMPLE_ROWS else present[rng.integers(0, present.size, SAMPLE_ROWS)]
    # One sort gives every quantile and the histogram's counts (bisections of it): numpy's quantile
    # partitions once per quantile, several times slower with fifteen of them.
    ordered = np.sort(sample)
    quantiles = sorted_quantiles(ordered, QUANTILES)
    edges = histogram_edges(sorted_quantiles(ordered, EDGE_QUANTILES))
    stats |= exact_moments(present) | {
        "quantiles": {str(q): float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        "histogram": {"edges": edges, "counts": sorted_bin_counts(ordered, edges).tolist(),
                      "sampled": int(sample.size)}}
    return stats, ordered


def exact_moments(values: np.ndarray) -> dict[str, float]:
    """min, max, mean and the population standard deviation, by Arrow's kernels: one pass each in
    C++ with float64 accumulators, where numpy's float64 variance makes full-size temporaries."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values)  # no copy for a numeric array without missing values
    extremes = pc.min_max(array)
    return {"min": float(extremes["min"].as_py()), "max": float(extremes["max"].as_py()),
            "mean": float(pc.mean(array).as_py()), "std": float(pc.stddev(array, ddof=0).as_py())}


def sorted_quantiles(ordered: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """The quantiles of sorted values, interpolated linearly (numpy's default method)."""
    position = np.asarray(quantiles) * (ordered.size - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, ordered.size - 1)
    below, above = ordered[low].astype(np.float64), ordered[high].astype(np.float64)
    return below + (position - low) * (above - below)


def sorted_bin_counts(ordered: np.ndarray, edges: list[float]) -> np.ndarray:
    """`bin_counts` of sorted values, by bisection."""
    inner = np.searchsorted(ordered, np.asarray(edges[1:-1], dtype=np.float64), side="left")
    return np.diff(np.concatenate([[0], inner, [ordered.size]]))


def histogram_edges(deciles: np.ndarray) -> list[float]:
    """The distinct deciles as bin edges; a constant column gets one bin."""
    edges = np.unique(deciles.astype(np.float64))
    return [float(edges[0]), float(edges[0])] if edges.size == 1 else edges.tolist()


def bin_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """How many of `values` fall in each bin of `edges`; the outer bins are open-ended, so a value
    beyond the edges of the run that made them still counts (in the first or last bin)."""
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    return np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(edges) - 1)


def check_statistics(statistics: dict, where: str) -> dict:
    """`statistics` if it is a document of a format version this code reads; else an InputError naming `where`."""
    if statistics.get("format") != FORMAT or statistics.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{where}: not a {FORMAT} document of format_version {FORMAT_VERSION} "
                         f"(found {statistics.get('format')!r} version {statistics.get('format_version')!r})")
    return statistics
