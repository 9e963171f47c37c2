"""KFP steps of the crypto pipeline: thin wrappers around the plain modules.

Bulk tables (the raw CSV, the Arrow tables) live in the run's workspace under
`<workspace>/crypto/` and move between steps as path strings; the model,
metrics, reports and the rows evaluate scored are typed artifacts.
"""

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components.common.images import cpu_component


@cpu_component
def download_data(workspace: str, source: str, competition: str, generated_start: str,
                  generated_end: str, data_seed: int) -> str:
    """Put train.csv and asset_details.csv into the run's workspace.

    Args:
        workspace: The run's workspace folder; the files go to its crypto/raw folder.
        source: "generated" (offline data in the Kaggle schema), "kaggle" (the competition through the
            kaggle package), or a path or file://, gs:// or https:// URI of the competition zip or of a
            folder holding the two CSVs.
        competition: The Kaggle competition to download when source is "kaggle".
        generated_start: First day (YYYY-MM-DD) of generated data; its first minute is 00:01.
        generated_end: Day (YYYY-MM-DD) at whose 00:00 the generated data ends.
        data_seed: Seed of the generator (LightGBM has its own).

    Returns:
        Output: The folder holding train.csv and asset_details.csv.
    """
    from pathlib import Path

    from components.common.storage import display_uri
    from pipelines.crypto.data import download

    raw_dir = Path(workspace) / "crypto" / "raw"
    download(source, raw_dir, competition, generated_start, generated_end, data_seed)
    print(f"{display_uri(source)} data in {raw_dir}: "
          + ", ".join(f"{p.name} {p.stat().st_size / 1e6:,.1f} MB" for p in sorted(raw_dir.iterdir())),
          flush=True)
    return str(raw_dir)


@cpu_component
def load_data(raw_dir: str, start_date: str, summary: Output[Metrics]) -> str:
    """Convert train.csv to a typed Arrow table from start_date on, dirty values counted.

    Args:
        raw_dir: The folder holding train.csv and asset_details.csv (download-data's output).
        start_date: First day (YYYY-MM-DD, UTC) of the rows kept.

    Returns:
        Output: The folder holding train.arrow and assets.arrow (Arrow IPC files).
        summary: Rows kept and each kind of dirty value found (rows before start_date, rows without a
            usable price, rows with a missing Target).
    """
    from pathlib import Path

    from pipelines.crypto.load import load

    loaded_dir = Path(raw_dir).parent / "loaded"
    for name, count in load(Path(raw_dir), loaded_dir, start_date).items():
        summary.log_metric(name, count)
    return str(loaded_dir)


@cpu_component
def build_features(loaded_dir: str, valid_start: str, summary: Output[Metrics]) -> str:
    """Compute the source's features per asset in time order, with the asset weights joined.

    Args:
        loaded_dir: The folder holding train.arrow and assets.arrow (load-data's output).
        valid_start: First day (YYYY-MM-DD, UTC) of the validation period: train_flg is 0 from it on.

    Returns:
        Output: The path of the feature table (an Arrow IPC file).
        summary: Row counts: all rows, training rows and validation rows.
    """
    from pathlib import Path

    from pipelines.crypto.definitions import FEATURES_TABLE
    from pipelines.crypto.features import build_features as build

    features_path = Path(loaded_dir).parent / FEATURES_TABLE
    for name, count in build(Path(loaded_dir), features_path, valid_start).items():
        summary.log_metric(name, count)
    return str(features_path)


@cpu_component
def train_model(features_path: str, valid_start: str, n_estimators: int, learning_rate: float,
                early_stopping_rounds: int, num_leaves: int, seed: int, test_fraction: float,
                model: Output[Model], training: Output[Metrics], importance: Output[HTML]) -> str:
    """Train LightGBM with early stopping on the first part of the validation period.

    Args:
        features_path: The feature table (build-features' output).
        valid_start: First day (YYYY-MM-DD, UTC) of the validation period; the same as build-features'.
        n_estimators: Most boosting rounds.
        learning_rate: LightGBM's learning rate (shrinkage of each tree).
        early_stopping_rounds: Stop after this many rounds without a better validation weighted correlation.
        num_leaves: Most leaves per tree.
        seed: LightGBM's seed (the generator has its own, data_seed).
        test_fraction: Share of the validation period's minutes, the latest, held out for evaluate.

    Returns:
        Output: The first minute of the held-out test period, `YYYY-MM-DD HH:MM UTC`.
        model: The booster at its best iteration, as model.bst in LightGBM's text format; its
            metadata holds the metrics per boosting round (`history`) for the evaluation report
            and the `content_hash` by which the gate recognises the serving model.
        training: Best iteration, rounds trained, validation correlation and RMSE, and row counts.
        importance: Total gain per feature, as a plot and a table.
    """
    from pathlib import Path

    from components.common import history, tracking
    from components.common.readable import timestamp
    from components.common.reports import figure_html, table_html, write_report
    from components.store.base import content_hash
    from pipelines.crypto.models import MAX_BIN, ROW_FRACTION, importance_figure, train

    run = tracking.task_run()
    run.log_params({"max_bin": MAX_BIN, "row_fraction": ROW_FRACTION})
    result = train(Path(features_path), Path(model.path), valid_start, n_estimators, learning_rate,
                   early_stopping_rounds, seed, test_fraction, num_leaves,
                   progress=lambda line: print(line, flush=True), callbacks=run.lightgbm_callbacks())
    test_start = timestamp(result.test_start)
    model.metadata.update({"framework": "lightgbm", "file": "model.bst", "best_iteration": result.best_iteration,
                           "test_start": test_start, **history.as_metadata(result.history),
                           "content_hash": content_hash(Path(model.path))})
    for name in ("best_iteration", "rounds", "validation_correlation", "validation_rmse", "train_rows",
                 "validation_rows", "purged_rows"):
        training.log_metric(name, getattr(result, name))
    write_report(importance.path, "crypto: LightGBM feature importance", [
        ("Total gain per feature", figure_html(importance_figure(result.importance))),
        ("Table", table_html(["feature", "gain"], result.importance.items())),
    ])
    run.set_tags({"model_uri": model.uri, "model_framework": "lightgbm"})
    run.log_artifact(importance.path, "importance.html")
    print(f"best iteration {result.best_iteration}: validation weighted correlation "
          f"{result.validation_correlation:.4f} on {result.validation_rows:,} rows "
          f"({result.train_rows:,} training rows; {result.purged_rows:,} rows purged before the "
          f"split boundaries); held-out test from {test_start}", flush=True)
    return test_start


@cpu_component
def evaluate(features_path: str, loaded_dir: str, model: Input[Model], test_start: str,
             metrics: Output[Metrics], report: Output[HTML], rows: Output[Dataset]) -> float:
    """Score the model on the held-out test period beside the naive baselines.

    Args:
        features_path: The feature table (build-features' output).
        loaded_dir: load-data's folder, for the asset names.
        model: The trained booster (train-model's output).
        test_start: The first minute of the held-out test period, `YYYY-MM-DD HH:MM UTC`
            (train-model's output).

    Returns:
        Output: The weighted correlation, which the gate step decides on; every other figure is in
            `metrics`.
        metrics: Weighted correlation and RMSE, with the zero and reversal baselines', overall and per asset.
        report: An HTML report: the model beside the baselines, every metric, the training
            curves per boosting round, and a gate section the gate step fills in.
        rows: The test rows as scored, for the gate to re-score the serving model on them:
            inputs.npy (the float32 features the booster got) and rows.parquet (block: the row's
            minute, all assets of a minute sharing it; target: Target; weight: the asset's weight;
            challenger: the booster's prediction; baseline: the reversal baseline's); its metadata
            holds the metric and the block length in minutes.
    """
    from pathlib import Path

    from components.common import history, tracking
    from components.common.readable import number, parse_timestamp
    from components.release.gate import log_scores
    from pipelines.crypto.evaluation import baseline_comparisons, read_asset_names, write_evaluation_report
    from pipelines.crypto.evaluation import evaluate as score

    evaluation = score(Path(features_path), Path(model.path), parse_timestamp(test_start, "test_start"),
                       read_asset_names(Path(loaded_dir)))
    correlation = evaluation.metrics["weighted_correlation"]
    rows.metadata.update(evaluation.scored.write(rows.path))
    gate = log_scores(metrics, {**evaluation.metrics, **evaluation.per_asset_metrics()}, "weighted_correlation")
    best_iteration = model.metadata.get("best_iteration")  # KFP hands numbers back as floats
    write_evaluation_report(evaluation, Path(report.path), gate, history.from_metadata(model.metadata),
                            None if best_iteration is None else int(best_iteration))
    tracking.task_run().log_artifact(report.path, "report.html")
    # The data window, stored with a deployed version so a later gate knows what its scores mean.
    metrics.metadata["test_set"] = f"from {test_start} ({number(evaluation.metrics['test_rows'])} rows)"
    print(f"weighted correlation {correlation:.4f} (zero baseline 0, reversal baseline "
          f"{evaluation.metrics['weighted_correlation_reversal_baseline']:.4f}), RMSE "
          f"{evaluation.metrics['rmse']:.6f} (zero baseline {evaluation.metrics['rmse_zero_baseline']:.6f}) "
          f"on {number(evaluation.metrics['test_rows'])} test rows; {gate}", flush=True)
    for comparison in baseline_comparisons(evaluation.metrics):
        if comparison.model_loses:
            print(comparison.loss_sentence(), flush=True)
    return correlation
