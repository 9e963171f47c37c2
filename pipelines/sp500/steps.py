"""KFP steps of the sp500 pipeline: thin wrappers around the plain modules."""

from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.common.images import cpu_component, gpu_component


@cpu_component
def download_prices(workspace: str, tickers: str, source: str, quality: Output[Metrics]) -> str:
    """Fetch daily prices into the run's workspace; return the Parquet path.

    Days without a Close are skipped and counted in `quality` (`<ticker>_skipped_days`,
    beside `<ticker>_days` kept); a Close that is not a positive finite number stops the step.

    Args:
        workspace: Folder shared by the run's steps (the pipeline passes the run's
            workspace); prices go to `<workspace>/sp500/prices.parquet`.
        tickers: Comma-separated tickers, e.g. "sp500,nasdaq" (the offline data also
            has "vix", from 2014).
        source: URI template with `{ticker}` (a path, file://, gs:// or https://; CSV or
            Parquet with at least Date and Close); empty uses the offline S&P 500,
            NASDAQ and VIX files that the `arch` package ships (1999-2018).

    Returns:
        Output: Path of the Parquet table (Date, Ticker, OHLCV), one row per ticker and day.
        quality: Days kept and days skipped (no Close) per ticker.
    """
    from pathlib import Path

    from pipelines.sp500.data import download_prices as download

    output = Path(workspace) / "sp500" / "prices.parquet"
    prices = download(tickers, source, output)
    for ticker, skipped in prices.attrs["skipped_days"].items():
        quality.log_metric(f"{ticker}_days", int((prices["Ticker"] == ticker).sum()))
        quality.log_metric(f"{ticker}_skipped_days", skipped)
    return str(output)


@cpu_component
def preprocess(
    prices_path: str,
    target: str,
    num_lags: int,
    same_day_tickers: str,
    start_date: str,
    end_date: str,
    test_fraction: float,
    train_data: Output[Dataset],
    test_data: Output[Dataset],
):
    """Align calendars, compute lagged log returns and labels, split by date.

    Args:
        prices_path: Parquet table of daily prices (download_prices' output).
        target: Ticker whose next-day direction is predicted (one of the downloaded tickers).
        num_lags: Lagged daily log returns per ticker (at least 1).
        same_day_tickers: Comma-separated tickers that close before New York opens:
            they get lags 0..num_lags-1 instead of 1..num_lags. May be empty.
        start_date: First day kept, YYYY-MM-DD (features may use earlier history).
        end_date: Last day kept, YYYY-MM-DD.
        test_fraction: Share of the last days that form the test set (the split is
            chronological), between 0 and 1.

    Returns:
        train_data: Parquet table of the training days: Date, the lagged returns
            (`<ticker>_lag<n>`), label (1 if the target closed up) and target_return.
        test_data: Parquet table of the test days, which all come after the training days.
    """
    import pandas as pd

    from components.common.storage import atomic_path
    from pipelines.sp500 import features as f

    table = f.build_features(pd.read_parquet(prices_path), target, num_lags,
                             f.parse_same_day_tickers(same_day_tickers))
    train, test = f.chronological_split(f.select_dates(table, start_date, end_date), test_fraction)
    for artifact, part in ((train_data, train), (test_data, test)):
        with atomic_path(artifact.path) as tmp:
            part.to_parquet(tmp, index=False)
        artifact.metadata.update({"rows": len(part), "first_day": f"{part['Date'].min():%Y-%m-%d}",
                                  "last_day": f"{part['Date'].max():%Y-%m-%d}"})
    print(f"train {len(train)} days {train['Date'].min():%Y-%m-%d}..{train['Date'].max():%Y-%m-%d}, "
          f"test {len(test)} days {test['Date'].min():%Y-%m-%d}..{test['Date'].max():%Y-%m-%d}, "
          f"features: {', '.join(f.feature_columns(train))}", flush=True)


def train(
    train_data: Input[Dataset],
    model_type: str,
    epochs: int,
    learning_rate: float,
    seed: int,
    version_tag: str,
    model: Output[Model],
):
    """Train FlatModel or DeepModel and export a SavedModel.

    Args:
        train_data: Parquet table of the training days (preprocess' train_data).
        model_type: "flat" (one softmax layer) or "deep" (50 -> 25 ReLU -> softmax).
        epochs: Passes over the training days (at least 1).
        learning_rate: Adam's learning rate (above 0).
        seed: Random seed: the same seed gives the same weights.
        version_tag: Tag the served model reports as `model_version` (the pipeline
            passes the run's name).

    Returns:
        model: SavedModel whose serving_default signature takes `features` (float32,
            [batch, n]) and returns predicted_class, probability, probabilities and
            model_version; its metadata holds the loss and accuracy per epoch (`history`) and
            the `content_hash` by which the gate recognises the serving model.
    """
    import numpy as np
    import pandas as pd

    from components.common import history, tracking
    from components.common.saved_model import content_hash
    from components.common.storage import atomic_path
    from pipelines.sp500.features import LABEL, feature_columns
    from pipelines.sp500.models import export_saved_model, train_model, training_history

    table = pd.read_parquet(train_data.path)
    columns = feature_columns(table)
    run = tracking.task_run()
    run.log_params({"features": ",".join(columns), "train_days": len(table)})
    fitted = train_model(table[columns].to_numpy(np.float32), table[LABEL].to_numpy(),
                         model_type, epochs, learning_rate, seed,
                         progress=lambda line: print(line, flush=True), callbacks=run.keras_callbacks())
    with atomic_path(model.path) as tmp:
        export_saved_model(fitted, tmp, version_tag)
    model.metadata.update({"model_type": model_type, "features": columns, "version_tag": version_tag,
                           **history.as_metadata(training_history(fitted)), "content_hash": content_hash(model.path)})
    run.set_tags({"model_uri": model.uri, "model_framework": "tensorflow"})


train_model_cpu = cpu_component(train)
train_model_gpu = gpu_component(train)


@cpu_component
def evaluate(
    model: Input[Model],
    test_data: Input[Dataset],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
    rows: Output[Dataset],
) -> float:
    """Score the exported model on the test period beside the always-up baseline.

    The step returns the accuracy, which the gate step decides on; every other figure
    is in `metrics`.

    Args:
        model: SavedModel from train (a `features` input, `predicted_class` output).
        test_data: Parquet table of the test days (preprocess' test_data).

    Returns:
        Output: Test accuracy, what the pipeline's gate compares with its threshold.
        metrics: Accuracy, precision, recall, F1 and the always-up baseline's accuracy.
        confusion: Confusion matrix of the test days (down/up).
        report: HTML report: the metrics beside the always-up baseline, the training curves
            (loss and accuracy per epoch), the signal's cumulative return against buy-and-hold,
            and a gate section the gate step fills in with its verdict.
        rows: The test days as scored, for the gate to re-score the serving model on them:
            inputs.npy (the float32 features the model got) and rows.parquet (block: the day's
            position in the test period; target: the label; challenger: the predicted class;
            baseline: always up); its metadata holds the metric and the block length in days.
    """
    import numpy as np
    import pandas as pd

    from components.common import history, tracking
    from components.common.saved_model import load_predictor
    from components.release.gate import log_scores
    from pipelines.sp500 import evaluation as ev
    from pipelines.sp500.features import LABEL, feature_columns

    test = pd.read_parquet(test_data.path)
    columns = feature_columns(test)
    features, labels = test[columns].to_numpy(np.float32), test[LABEL].to_numpy()
    predicted = load_predictor(model.path)(features=features)["predicted_class"].numpy()
    scores = ev.direction_metrics(labels, predicted)
    confusion.log_confusion_matrix(["down", "up"], ev.confusion_matrix(labels, predicted))
    rows.metadata.update(ev.write_scored_rows(rows.path, features, columns, labels, predicted))
    gate = log_scores(metrics, scores.as_dict(), "accuracy")
    # The data window, stored with a deployed version so a later gate knows what its scores mean.
    metrics.metadata["test_set"] = f"{test['Date'].min():%Y-%m-%d}..{test['Date'].max():%Y-%m-%d} ({len(test)} days)"
    ev.write_direction_report(report.path, test, predicted, scores, gate, history.from_metadata(model.metadata))
    tracking.task_run().log_artifact(report.path, "report.html")
    print(f"accuracy {scores.accuracy:.4f} (always up {scores.always_up_accuracy:.4f}) on "
          f"{scores.test_days} test days; {gate}", flush=True)
    for comparison in ev.baseline_comparisons(scores):
        if comparison.model_loses:
            print(comparison.loss_sentence(), flush=True)
    return scores.accuracy
