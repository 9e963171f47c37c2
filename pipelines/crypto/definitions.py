"""What the crypto steps share that needs nothing but the standard library.

Column names, dates and the checks of the training options live here so that
each step imports only what it uses: the train and evaluate pods need the
feature names but not TA-Lib, and the parameter check before a run needs dates
but not numpy, pandas or pyarrow.
"""

import calendar
import datetime

from components.common.errors import InputError

TRAIN_CSV = "train.csv"            # the competition's files
ASSETS_CSV = "asset_details.csv"
TRAIN_COLUMNS = ("timestamp", "Asset_ID", "Count", "Open", "High", "Low", "Close", "Volume",
                 "VWAP", "Target")
ASSET_COLUMNS = ("Asset_ID", "Weight", "Asset_Name")
# The columns of train.csv that a later step uses: the load step keeps only these.
LOADED_COLUMNS = ("timestamp", "Asset_ID", "Open", "High", "Low", "Close", "Target")
TRAIN_TABLE = "train.arrow"        # the load step's tables (Arrow IPC files: pipelines.crypto.tables)
ASSETS_TABLE = "assets.arrow"
FEATURES_TABLE = "features.arrow"  # the feature step's
MINUTE = 60
DAY = 86400

WINDOWS = (30, 120, 240)
INDICATORS = [f"{name}_{n}" for n in WINDOWS for name in ("RSI", "ATR", "DEMA")]
LAGGED = [f"{name}_{n}" for n in WINDOWS for name in ("sma", "return")]
CANDLE = ["HL", "OC", "lower_shadow", "upper_shadow"]
CALENDAR = ["Day", "dayofyear", "weekofyear", "season"]
PRICE_FEATURES = INDICATORS + LAGGED + CANDLE
MODEL_FEATURES = ["Asset_ID"] + PRICE_FEATURES + CALENDAR  # the source's list, in its order


def to_timestamp(day: str, what: str = "date") -> int:
    """Seconds since the epoch of the start (UTC) of an ISO date such as 2021-05-01."""
    try:
        return calendar.timegm(datetime.date.fromisoformat(day).timetuple())
    except (ValueError, TypeError) as error:
        raise InputError(f"{what} '{day}' is not a date (use YYYY-MM-DD)") from error


def check_training_options(n_estimators: int, learning_rate: float, early_stopping_rounds: int,
                           num_leaves: int, test_fraction: float) -> None:
    """The one check of the LightGBM options: before a run and again in the train step."""
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if n_estimators < 1 or early_stopping_rounds < 1 or num_leaves < 2:
        raise InputError("n_estimators and early_stopping_rounds must be at least 1, num_leaves at least 2")
    if learning_rate <= 0:
        raise InputError(f"learning_rate must be positive, got {learning_rate}")
