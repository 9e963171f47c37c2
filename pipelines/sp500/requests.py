"""`predict --model sp500 --date YYYY-MM-DD`: one trading day's features, sent to the served model.

The features (lagged log returns) are computed by the pipeline's own feature
code with the pipeline's default tickers and lags (`--tickers`, `--num-lags`,
`--same-day-tickers`, `--source` to match a model trained otherwise); the
day's actual direction is printed beside the answer.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from components.common.errors import InputError
from components.serving.client import NUMPY_DTYPES, Request, Signature
from pipelines.spec import parameter_defaults


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `--date`'s features."""
    features = parser.add_argument_group("sp500 --date features (default: the pipeline's defaults)")
    features.add_argument("--tickers")
    features.add_argument("--num-lags", type=int)
    features.add_argument("--same-day-tickers")
    features.add_argument("--source", help="price source URI with {ticker} (default: offline data)")


def date_request(signature: Signature, args: argparse.Namespace) -> Request:
    """The features of one trading day, built exactly as the pipeline builds them."""
    import pandas as pd

    from pipelines.sp500.data import load_ticker, parse_tickers
    from pipelines.sp500.features import (
        DATE,
        LABEL,
        TARGET_RETURN,
        build_features,
        feature_columns,
        parse_same_day_tickers,
    )
    from pipelines.sp500.pipeline import make_pipeline

    trained = parameter_defaults(make_pipeline())  # the data a model was trained on unless told otherwise
    tickers = args.tickers or trained["tickers"]
    num_lags = args.num_lags or trained["num_lags"]
    same_day_text = trained["same_day_tickers"] if args.same_day_tickers is None else args.same_day_tickers
    same_day = parse_same_day_tickers(same_day_text)
    source = trained["source"] if args.source is None else args.source
    try:
        day = pd.Timestamp(args.date)
    except ValueError as error:
        raise InputError(f"--date '{args.date}' is not a date (YYYY-MM-DD)") from error
    with tempfile.TemporaryDirectory() as downloads:
        prices = pd.concat([load_ticker(t, source, Path(downloads)).assign(Ticker=t)
                            for t in parse_tickers(tickers)], ignore_index=True)
    table = build_features(prices, trained["target"], num_lags, same_day)
    row = table[table[DATE] == day]
    if row.empty:
        raise InputError(f"--date {args.date}: not a trading day with all features in the data "
                         f"({table[DATE].min():%Y-%m-%d} .. {table[DATE].max():%Y-%m-%d}, "
                         "weekends and holidays excluded)")
    columns = feature_columns(table)
    name, spec = signature.single_input()
    if spec.shape and spec.shape[-1] not in (-1, len(columns)):
        raise InputError(f"the served model takes {spec.shape[-1]} features but tickers '{tickers}' with "
                         f"{num_lags} lags give {len(columns)}: pass the --tickers/--num-lags it was trained with")
    features = row[columns].to_numpy(NUMPY_DTYPES.get(spec.dtype, np.float32))
    actual = "up" if int(row[LABEL].iloc[0]) == 1 else "down (or flat)"
    return Request({name: features}, f"features of {day:%Y-%m-%d}: " + ", ".join(
        f"{c}={v:+.4f}" for c, v in zip(columns, features[0], strict=True)),
        truth=f"the S&P 500 closed {actual} that day ({float(row[TARGET_RETURN].iloc[0]):+.2%} log return)")
