"""The validation step shared by every pipeline: `components.validation` as a KFP component.

It runs after a pipeline's features, beside its training, and checks the data
against the serving champion's: the version labelled `stable`, found the way
the gate finds it (`components.cluster.target.serving_target`). Its
`statistics` artifact (a folder: the statistics and the schema) goes to the
gate, whose drift limit reads its `drift` metadata, and to the deploy step,
which stores both files in the new version's folder; so a later run finds them
beside the model it compares with, in a folder store, on the claim, or in gs://.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components.common.images import cpu_component
from components.release.config import ReleaseConfig
from components.release.gate_step import mount_model_store


@cpu_component
def validate_data(
    model_name: str,
    model_base_path: str,
    serving_namespace: str,
    skip_validation: bool,
    statistics: Output[Artifact],
    report: Output[HTML],
    data: Input[Dataset] = None,
    data_path: str = "",
    categorical_columns: str = "",
    time_columns: str = "",
    category_names: str = "",
    source_quality: Input[Metrics] = None,
):
    """Profile the training data, check it against the serving champion's schema, and measure drift.

    Args:
        model_name: The model's folder in the model store (where the champion is found).
        model_base_path: The model store's root, as the deploy step sees it.
        serving_namespace: On a cluster, the namespace whose serving labels name the champion
            (empty: the pod's own).
        skip_validation: Let data that breaks the champion's schema through (the step still reports).
        data: The data to validate: a Parquet or Arrow IPC table, or an .npz of images and labels
            (give this or data_path).
        data_path: The same as a path, for data in the run's workspace.
        categorical_columns: Comma-separated numeric columns that are categories (their domain is
            checked); strings, booleans and an image set's labels always are.
        time_columns: Comma-separated columns that advance with time (timestamps, calendar
            features): checked, never scored for drift.
        category_names: JSON naming categories in the messages, a column -> {value: name},
            e.g. {"Asset_ID": {"3": "Cardano"}}; empty for none.
        source_quality: A step's counts of what the data's source lacked, `<series>_<unit>` kept
            beside `<series>_skipped_<unit>` (sp500's download quality): each series' skipped share
            is checked like a column's missing rate (optional).

    Returns:
        statistics: A folder with statistics.json and schema.json (docs/validation.md); its metadata
            holds `drift` (PSI per column against the champion, or why none) and the anomalies.
        report: The validation report: anomalies, drift worst first, each column's histogram over
            the champion's.
    """
    from pathlib import Path

    from components.cluster.target import serving_target
    from components.common.errors import InputError
    from components.store import open_store
    from components.validation.validate import (
        champion_baseline,
        parse_category_names,
        parse_names,
        validate,
        write_outputs,
    )

    if (data is None) == (not data_path):
        raise InputError("validate-data: give the data to validate as data or as data_path, one of them")
    store = open_store(model_base_path)
    stable = serving_target(serving_namespace).current_labels(store, model_name).stable
    validation = validate(Path(data.path if data is not None else data_path),
                          champion_baseline(lambda name: store.version_file(model_name, stable, name), stable),
                          parse_names(categorical_columns), parse_names(time_columns),
                          parse_category_names(category_names),
                          source_counts=dict(source_quality.metadata) if source_quality is not None else None)
    for anomaly in validation.anomalies:
        print(f"validation: {anomaly}{'' if anomaly.fatal else ' (warning)'}", flush=True)
    print(f"validation: {validation.summary()}", flush=True)
    error = validation.error()
    if error and not skip_validation:
        raise InputError(error)  # before any output: a failed step leaves nothing half-done
    if error:
        print(f"validation: skip_validation is set, so this does not stop the run: {error}", flush=True)
    write_outputs(validation, Path(statistics.path), Path(report.path), skip_validation)
    statistics.metadata.update(validation.metadata())


def add_validation_task(release: ReleaseConfig, data=None, data_path=None, categorical_columns: str = "",
                        time_columns: str = "", category_names: str = "",
                        source_quality=None) -> dsl.PipelineTask:
    """Add the validation step for `data` (a Dataset channel) or `data_path` (a path in the run's
    workspace), and optionally a `source_quality` Metrics channel (the step's argument of that
    name); pass its `statistics` output to `add_gated_deploy`. Never cached: the champion
    changes between runs. It reads the model store and, on a cluster, the serving labels."""
    optional = {"data": data, "data_path": data_path, "source_quality": source_quality}
    task = validate_data(model_name=release.model_name, model_base_path=release.model_base_path,
                         serving_namespace=release.serving_namespace, skip_validation=release.skip_validation,
                         categorical_columns=categorical_columns, time_columns=time_columns,
                         category_names=category_names,
                         **{name: value for name, value in optional.items() if value is not None})
    task.set_display_name("validate data").set_caching_options(False)
    mount_model_store(task, release)
    return task
