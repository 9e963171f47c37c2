"""S&P 500 direction: download -> preprocess -> train -> evaluate -> gated deploy.

Raw prices go through the run's workspace (a volume KFP creates per run);
the train/test tables, the model, metrics and the report are typed artifacts.
"""

from kfp import dsl

from components.release.config import ReleaseConfig, release_parameters
from components.release.deploy import add_gated_deploy
from components.release.validation_step import add_validation_task
from components.settings.cluster import apply_cluster_settings, pipeline_config
from components.settings.gpu import GpuSettings
from pipelines.sp500 import steps
from pipelines.sp500.spec import SPEC


def make_pipeline(gpu: bool = False):
    """The sp500 pipeline; `gpu=True` trains in the GPU image on NVIDIA GPUs
    (count, node selector and toleration: `components.settings.gpu.GpuSettings`)."""
    train_step = steps.train_model_gpu if gpu else steps.train_model_cpu

    @dsl.pipeline(
        name="sp500-gpu" if gpu else "sp500",
        description="S&P 500 daily direction with TensorFlow (FlatModel/DeepModel), "
                    "deployed to TF-Serving when it passes the gate.",
        pipeline_config=pipeline_config(workspace_size="1Gi"),
    )
    @release_parameters(SPEC.release)
    def sp500(
        tickers: str = "sp500,nasdaq",
        source: str = "",
        target: str = "sp500",
        same_day_tickers: str = "",
        num_lags: int = 3,
        start_date: str = "2010-01-01",
        end_date: str = "2018-12-31",
        test_fraction: float = 0.2,
        model_type: str = "deep",
        epochs: int = 20,
        learning_rate: float = 0.001,
        seed: int = 42,
        *,
        release: ReleaseConfig,
    ):
        """S&P 500 daily direction, deployed when it passes the gate (threshold, champion, baseline).

        Args:
            tickers: Comma-separated tickers to download (add "vix" for the VIX: data from 2014).
            source: URI template with {ticker} (path, file://, gs:// or https://; CSV or
                Parquet with Date and Close); empty uses the offline data (1999-2018).
            target: The ticker whose daily direction is predicted.
            same_day_tickers: Comma-separated tickers that close before New York opens:
                lags 0..num_lags-1 instead of 1..num_lags. Empty for none.
            num_lags: Lagged daily log returns per ticker.
            start_date: First day kept, YYYY-MM-DD (features use earlier history).
            end_date: Last day kept, YYYY-MM-DD.
            test_fraction: Share of the last days used for the test (chronological split).
            model_type: "flat" (one softmax layer) or "deep" (50 -> 25 ReLU -> softmax).
            epochs: Training passes over the training days.
            learning_rate: Adam's learning rate.
            seed: Random seed of the training (same seed, same weights).
            release: Gate, deploy and canary settings (`release_parameters` puts a line per parameter here).
        """
        download = steps.download_prices(
            workspace=dsl.WORKSPACE_PATH_PLACEHOLDER, tickers=tickers, source=source)
        download.set_caching_options(False)

        split = steps.preprocess(
            prices_path=download.outputs["Output"], target=target, num_lags=num_lags,
            same_day_tickers=same_day_tickers, start_date=start_date, end_date=end_date,
            test_fraction=test_fraction)
        # Its input path is the same string in every run while the file behind
        # it is new: a cache hit would reuse the first run's split.
        split.set_caching_options(False)

        # The download's skipped days: a day without a close is carried forward, so no column shows it.
        validation = add_validation_task(release, data=split.outputs["train_data"], categorical_columns="label",
                                         source_quality=download.outputs["quality"])

        training = train_step(
            train_data=split.outputs["train_data"], model_type=model_type, epochs=epochs,
            learning_rate=learning_rate, seed=seed, version_tag=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
        training.after(validation)  # data that breaks the champion's schema stops the run before training
        if gpu:
            GpuSettings.from_env().apply(training)

        evaluation = steps.evaluate(model=training.outputs["model"], test_data=split.outputs["test_data"])

        add_gated_deploy(evaluation, training.outputs["model"], release, statistics=validation.outputs["statistics"])
        apply_cluster_settings(SPEC.resources)

    return sp500


def check_parameters(params: dict) -> None:
    """Fail before any step runs on parameters that can never work."""
    from components.common.errors import InputError
    from pipelines.sp500 import features
    from pipelines.sp500.data import check_offline_ticker, check_source_template, parse_tickers
    from pipelines.sp500.models import check_model_type, check_training

    tickers = parse_tickers(params["tickers"])
    if params["source"]:
        check_source_template(params["source"])
    else:
        for ticker in tickers:
            check_offline_ticker(ticker)
    if params["target"] not in tickers:
        raise InputError(f"target '{params['target']}' is not among tickers {params['tickers']}")
    same_day = features.parse_same_day_tickers(params["same_day_tickers"])
    if not same_day <= set(tickers) - {params["target"]}:
        raise InputError(f"same_day_tickers '{params['same_day_tickers']}' must name other tickers "
                         f"of {params['tickers']} than the target")
    features.parse_date_range(params["start_date"], params["end_date"])
    features.check_test_fraction(params["test_fraction"])
    check_model_type(params["model_type"])
    check_training(params["epochs"], params["learning_rate"])
    if params["num_lags"] < 1:
        raise InputError(f"num_lags must be at least 1, got {params['num_lags']}")
