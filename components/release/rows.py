"""The rows a model was scored on, kept so that the gate can score other models on exactly them.

Every evaluate step writes one `rows` artifact (a folder) beside its metrics:

- `inputs.npy`: the float32 input exactly as the challenger got it (its serving
  signature's input, or the LightGBM booster's feature matrix), one entry per
  scored row, in the order of `rows.parquet`;
- `rows.parquet`, one row per scored row:
  - `block` (int64): the resampling key. Rows that share a key are resampled
    together, and keys ascend in time, neighbours being neighbours in time
    (sp500: the day's position in the test period; crypto: the minute's
    timestamp, all assets of a minute together; mnist: the row's position);
  - `target` (float64): the label (a class) or the value to predict;
  - `weight` (float64): the row's weight in the metric (1 where the metric has none);
  - `challenger` (float64): the evaluated model's prediction (the class for accuracy);
  - `baseline` (float64): the naive baseline's prediction on the same row.

Its metadata (`RowsInfo`) says how to score and resample them: the metric
(`accuracy` or `weighted_correlation`), the block length in keys and its unit,
the feature names in input order, and which output of a TensorFlow serving
signature is the prediction.

Why the gate gets the rows rather than scores: it re-scores the serving champion
on these very rows (TFX's Evaluator compares candidate and baseline on the same
split), and a paired bootstrap needs each model's prediction per row.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from components.common.storage import atomic_path

INPUTS_FILE, TABLE_FILE = "inputs.npy", "rows.parquet"
COLUMNS = ("block", "target", "weight", "challenger", "baseline")
METRICS = ("accuracy", "weighted_correlation")


@dataclass(frozen=True)
class RowsInfo:
    """How the rows are scored and resampled (the `rows` artifact's metadata)."""

    metric: str  # "accuracy" (share of rows whose predicted class is the target) or "weighted_correlation"
    block_length: int  # consecutive keys resampled together (1: single rows)
    block_unit: str  # what a key is, in words ("trading days", "minutes", "rows")
    features: list[str]  # the input's feature names, in order ([] when the input is an image)
    prediction_output: str = "predicted_class"  # the TensorFlow signature's output compared with `target`

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"metric '{self.metric}': expected one of {', '.join(METRICS)}")
        if self.block_length < 1:
            raise ValueError(f"block_length must be at least 1, got {self.block_length}")

    def as_metadata(self) -> dict:
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict) -> "RowsInfo":
        fields = {key: metadata[key] for key in cls.__dataclass_fields__ if key in metadata}
        fields["block_length"] = int(fields["block_length"])  # KFP hands numbers back as floats
        return cls(**fields)


@dataclass(frozen=True)
class EvaluationRows:
    """The rows as read back: the inputs and one array per column of `rows.parquet`."""

    inputs: np.ndarray
    block: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    challenger: np.ndarray
    baseline: np.ndarray
    info: RowsInfo

    def __len__(self) -> int:
        return len(self.target)


def write_rows(folder: str | Path, inputs: np.ndarray, block: np.ndarray, target: np.ndarray,
               weight: np.ndarray | None, challenger: np.ndarray, baseline: np.ndarray, info: RowsInfo) -> dict:
    """Write the rows artifact into `folder` (atomically); return its metadata for the artifact."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    count = len(target)
    weight = np.ones(count) if weight is None else weight
    columns = {"block": np.asarray(block, np.int64), "target": target, "weight": weight,
               "challenger": challenger, "baseline": baseline}
    if any(len(values) != count for values in columns.values()) or len(inputs) != count:
        raise ValueError(f"every column and the inputs need {count} rows")
    with atomic_path(folder) as tmp:
        Path(tmp).mkdir(parents=True)
        np.save(Path(tmp) / INPUTS_FILE, np.ascontiguousarray(inputs, np.float32))
        pq.write_table(pa.table({name: np.asarray(values, np.int64 if name == "block" else np.float64)
                                 for name, values in columns.items()}), Path(tmp) / TABLE_FILE)
    return {**info.as_metadata(), "rows": count}


def read_rows(folder: str | Path, metadata: dict) -> EvaluationRows:
    """The rows artifact in `folder`, with `metadata` as `write_rows` returned it."""
    import pyarrow.parquet as pq

    table = pq.read_table(Path(folder) / TABLE_FILE, columns=list(COLUMNS))
    arrays = {name: table.column(name).to_numpy() for name in COLUMNS}
    return EvaluationRows(inputs=np.load(Path(folder) / INPUTS_FILE, mmap_mode="r"), **arrays,
                          info=RowsInfo.from_metadata(metadata))
