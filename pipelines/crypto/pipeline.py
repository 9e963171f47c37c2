"""G-Research crypto forecasting: download -> load -> features -> train -> evaluate -> gated deploy.

The raw CSV and the Arrow tables stay in the run's workspace (tens of GB on
the real data); the model, metrics and reports are typed artifacts. Kaggle
credentials reach the download step only as environment variables from a
Kubernetes Secret (keys `username` and `key`), named by `kaggle_secret`; the
Secret is optional, so runs on generated data or a URI need none. `data_seed`
drives the generator, `seed` LightGBM: one can change without the other.

There is no GPU variant: LightGBM trains on CPU here (its OpenCL build is not
in the project's images), and the pipeline's heavy lifting is I/O and memory.
"""

import json

from kfp import dsl, kubernetes

from components.release.config import ReleaseConfig, release_parameters
from components.release.deploy import add_gated_deploy
from components.release.validation_step import add_validation_task
from components.settings.cluster import apply_cluster_settings, pipeline_config
from pipelines.crypto import steps
from pipelines.crypto.assets import ASSETS
from pipelines.crypto.spec import SPEC

# The competition's fixed asset ids, named in the validation step's messages ("Asset_ID: 3 (Cardano) is missing").
ASSET_NAMES = json.dumps({"Asset_ID": {str(asset.asset_id): asset.name for asset in ASSETS}}, sort_keys=True)


def make_pipeline(gpu: bool = False):
    """The crypto pipeline (CPU only: `gpu=True` is refused)."""
    if gpu:
        from components.common.errors import InputError

        raise InputError("the crypto pipeline has no GPU variant (LightGBM trains on CPU)")

    @dsl.pipeline(
        name="crypto",
        description="G-Research crypto forecasting: TA-Lib features and LightGBM, deployed "
                    "(KServe LightGBM) when it passes the gate.",
        pipeline_config=pipeline_config(workspace_size="20Gi"),
    )
    @release_parameters(SPEC.release)
    def crypto(
        source: str = "generated",
        competition: str = "g-research-crypto-forecasting",
        kaggle_secret: str = "kaggle-credentials",
        generated_start: str = "2021-04-11",
        generated_end: str = "2021-05-11",
        start_date: str = "2020-01-01",
        valid_start: str = "2021-05-01",
        test_fraction: float = 0.5,
        n_estimators: int = 500,
        learning_rate: float = 0.02,
        early_stopping_rounds: int = 30,
        num_leaves: int = 31,
        seed: int = 2022,
        data_seed: int = 2022,
        *,
        release: ReleaseConfig,
    ):
        """G-Research crypto forecasting: TA-Lib features and LightGBM, deployed when good enough.

        Args:
            source: "generated" (offline data in the Kaggle schema), "kaggle", or a path or file://,
                gs:// or https:// URI of the competition zip or of a folder holding the two CSVs.
            competition: The Kaggle competition to download when source is "kaggle".
            kaggle_secret: Kubernetes Secret with keys username and key, for source "kaggle" (optional).
            generated_start: First day (YYYY-MM-DD) of generated data.
            generated_end: Day (YYYY-MM-DD) at whose 00:00 generated data ends.
            start_date: First day (YYYY-MM-DD, UTC) of the rows used.
            valid_start: First day (YYYY-MM-DD, UTC) of the validation period; everything before is training.
            test_fraction: Share of the validation period's minutes, the latest, held out for the evaluation.
            n_estimators: Most boosting rounds.
            learning_rate: LightGBM's learning rate.
            early_stopping_rounds: Stop after this many rounds without a better validation weighted correlation.
            num_leaves: Most leaves per tree.
            seed: LightGBM's seed.
            data_seed: Seed of the generator for source "generated".
            release: Gate, deploy and canary settings (`release_parameters` puts a line per parameter here).
        """
        download = steps.download_data(
            workspace=dsl.WORKSPACE_PATH_PLACEHOLDER, source=source, competition=competition,
            generated_start=generated_start, generated_end=generated_end, data_seed=data_seed)
        kubernetes.use_secret_as_env(
            download, secret_name=kaggle_secret,
            secret_key_to_env={"username": "KAGGLE_USERNAME", "key": "KAGGLE_KEY"}, optional=True)

        loaded = steps.load_data(raw_dir=download.output, start_date=start_date)
        features = steps.build_features(loaded_dir=loaded.outputs["Output"], valid_start=valid_start)
        # Calendar features and the time itself move with every data window: checked, not scored for drift.
        validation = add_validation_task(release, data_path=features.outputs["Output"], categorical_columns="Asset_ID",
                                         time_columns="timestamp,train_flg,Day,dayofyear,weekofyear,season",
                                         category_names=ASSET_NAMES)

        training = steps.train_model(
            features_path=features.outputs["Output"], valid_start=valid_start, n_estimators=n_estimators,
            learning_rate=learning_rate,
            early_stopping_rounds=early_stopping_rounds, num_leaves=num_leaves, seed=seed,
            test_fraction=test_fraction)
        training.after(validation)  # data that breaks the champion's schema stops the run before training
        evaluation = steps.evaluate(
            features_path=features.outputs["Output"], loaded_dir=loaded.outputs["Output"],
            model=training.outputs["model"], test_start=training.outputs["Output"])

        for task in (download, loaded, features, training, evaluation):
            # The workspace is per run, so a cached result would point at another run's files.
            task.set_caching_options(False)

        add_gated_deploy(evaluation, training.outputs["model"], release, statistics=validation.outputs["statistics"])
        apply_cluster_settings(SPEC.resources)

    return crypto


def check_parameters(params: dict) -> None:
    """Fail before any step runs on parameters that can never work (dates alone: no numpy, no pandas)."""
    from components.common.errors import InputError
    from pipelines.crypto.definitions import check_training_options, to_timestamp

    if not params["source"]:
        raise InputError("source is empty: use 'generated', 'kaggle' or a path/URI")
    day = {name: to_timestamp(params[name], name)
           for name in ("generated_start", "generated_end", "start_date", "valid_start")}
    if day["start_date"] >= day["valid_start"]:
        raise InputError(f"start_date {params['start_date']} is not before valid_start {params['valid_start']}: "
                         "nothing would be left to train on")
    if params["source"] == "generated":
        if day["generated_end"] <= day["generated_start"]:
            raise InputError(f"generated_end {params['generated_end']} is not after "
                             f"generated_start {params['generated_start']}")
        if not day["generated_start"] < day["valid_start"] < day["generated_end"]:
            raise InputError(f"valid_start {params['valid_start']} must lie strictly between generated_start "
                             f"{params['generated_start']} and generated_end {params['generated_end']}")
    check_training_options(params["n_estimators"], params["learning_rate"], params["early_stopping_rounds"],
                           params["num_leaves"], params["test_fraction"])
