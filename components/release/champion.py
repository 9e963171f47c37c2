"""The serving versions (stable, canary) scored on the challenger's rows, the way a server would score them.

The gate compares models on the same rows (`components.release.rows`): the
challenger's exact float32 inputs go through each serving version's
`serving_default` signature (a SavedModel: sp500, mnist) or its LightGBM booster
(crypto), found in the version folder as the servers find them
(`components.common.model_files`). TensorFlow and LightGBM are imported only
here, and only when a version is served.

A version that cannot be scored on these rows is `incomparable`, with one line
saying why: no stored model, other features than the rows' (its record's
`features`), another input width (checked before predicting), or an unreadable
model (any load or predict error, by its type and message). Its stored score
(`evaluation.json`) is history only: it was measured on another test set.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.common.errors import InputError
from components.release.rows import EvaluationRows
from components.store.base import ModelStore

BATCH_ROWS = 65536  # rows per call of a SavedModel signature: bounds its memory on crypto-sized inputs


class Incomparable(Exception):
    """A version that cannot be scored on these rows; the message says why, in one line."""


@dataclass(frozen=True)
class ServedVersion:
    """A serving version, its stored record and its predictions on the rows (None: incomparable)."""

    label: str  # "stable" or "canary"
    version: int
    record: dict  # its evaluation.json ({} when it has none)
    predictions: np.ndarray | None
    incomparable: str = ""  # why it could not be scored, in one line ("" when scored)

    @property
    def content_hash(self) -> str:
        return self.record.get("content_hash", "")

    def history(self, metric: str) -> str:
        """Its stored score, as history: measured on its own test set when it was deployed."""
        stored = self.record.get("metrics", {}).get(metric)
        if stored is None:
            return "no stored score"
        test_set = self.record.get("test_set")
        return (f"scored {stored:.4f} on its own test set{f' ({test_set})' if test_set else ''} when deployed; "
                "not compared")


def score_version(store: ModelStore, model_name: str, label: str, version: int,
                  rows: EvaluationRows) -> ServedVersion:
    """Version `version` of `model_name`, labelled `label`, scored on `rows` (or why it cannot be)."""
    try:
        record = store.evaluation(model_name, version) or {}
    except InputError as error:  # an evaluation.json that is not JSON: the model may still be scored
        record = {"unreadable_record": str(error)}
    try:
        check_features(record.get("features"), rows.info.features)
        with store.local_copy(model_name, version) as folder:
            predictions = predict(folder, rows)
    except Incomparable as error:
        return ServedVersion(label, version, record, None, str(error))
    except InputError as error:  # no such version: nothing stored under its number
        return ServedVersion(label, version, record, None, f"no stored model ({error})")
    except Exception as error:  # noqa: BLE001 - any failure to load or run it makes it unreadable, said in one line
        message = " ".join(str(error).split())[:300]
        return ServedVersion(label, version, record, None, f"unreadable: {type(error).__name__}: {message}")
    return ServedVersion(label, version, record, predictions)


def check_features(recorded: list[str] | None, features: list[str]) -> None:
    """Refuse a version trained on other features than the rows' (when both are known)."""
    if not recorded or not features or list(recorded) == list(features):
        return
    missing = [f for f in features if f not in recorded]
    extra = [f for f in recorded if f not in features]
    if not missing and not extra:
        raise Incomparable("its features are these rows' features in another order")
    parts = ([f"lacks {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"] if missing else []) + \
        ([f"has {', '.join(extra[:3])}{' …' if len(extra) > 3 else ''} that these rows lack"] if extra else [])
    raise Incomparable(f"other features: it {' and '.join(parts)}")


def predict(folder: Path, rows: EvaluationRows) -> np.ndarray:
    """The model in `folder` on `rows.inputs`: a SavedModel's prediction output, or a LightGBM booster's."""
    from components.common.model_files import lightgbm_model_files

    if (folder / "saved_model.pb").is_file():  # as TF-Serving decides: a broken one is unreadable, not absent
        return predict_saved_model(folder, rows)
    models = lightgbm_model_files(folder)
    if len(models) == 1:
        return predict_lightgbm(models[0], rows.inputs)
    raise Incomparable("no stored model: its folder holds no SavedModel and not exactly one LightGBM model file")


def predict_saved_model(folder: Path, rows: EvaluationRows) -> np.ndarray:
    import tensorflow as tf

    from components.common.saved_model import load_predictor

    predictor = load_predictor(folder)
    _, inputs = predictor.structured_input_signature
    if len(inputs) != 1:
        raise Incomparable(f"its serving signature takes {len(inputs)} inputs, these rows are one")
    (name, spec), = inputs.items()
    given = tf.TensorShape([None, *rows.inputs.shape[1:]])
    if not spec.shape.is_compatible_with(given):
        raise Incomparable(f"another input width: its input '{name}' is {shape_text(spec.shape)}, "
                           f"these rows are {shape_text(given)}")
    if rows.info.prediction_output not in predictor.structured_outputs:
        raise Incomparable(f"its serving signature has no output '{rows.info.prediction_output}'")
    batches = [predictor(**{name: tf.constant(rows.inputs[start:start + BATCH_ROWS])})
               [rows.info.prediction_output].numpy()
               for start in range(0, len(rows.inputs), BATCH_ROWS)]
    return np.concatenate(batches) if batches else np.empty(0)


def predict_lightgbm(model_file: Path, inputs: np.ndarray) -> np.ndarray:
    import lightgbm

    booster = lightgbm.Booster(model_file=str(model_file))
    if inputs.ndim != 2 or booster.num_feature() != inputs.shape[1]:
        raise Incomparable(f"another input width: it takes {booster.num_feature()} features, "
                           f"these rows have {shape_text(inputs.shape[1:])}")
    return np.asarray(booster.predict(np.asarray(inputs)), np.float64)


def shape_text(shape) -> str:
    """[None, 28, 28] -> "[batch, 28, 28]"; (14,) -> "14"."""
    dims = ["batch" if d is None else str(d) for d in (shape.as_list() if hasattr(shape, "as_list") else shape)]
    return dims[0] if len(dims) == 1 else f"[{', '.join(dims)}]"
