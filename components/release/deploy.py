"""The deploy step shared by every pipeline, and how a pipeline adds it.

The step runs only inside the gate's `dsl.If` (see `components.release.gate`). It
copies the model into the model store as a new TF-Serving version, with the
evaluation the gate recorded (`evaluation.json`), and labels it: `stable` for a
full deploy (and for a first deploy), `canary` with a share of the traffic when
`canary_percent` < 100, the stable version staying as it is. When it runs in a
Kubernetes pod it makes sure a server serves the store with those labels
(TF-Serving for "tensorflow", KServe for "lightgbm" or `use_kserve`; see
`components.cluster.serving`). Outside a cluster (a laptop run through kfp.local)
the model store and its `labels.json` are the result.
"""

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model

from components.common.images import cpu_component
from components.release.config import ReleaseConfig, release_inputs
from components.release.gate import DEPLOY
from components.release.gate_step import add_gate_task, mount_model_store


@cpu_component
@release_inputs
def deploy_model(
    model: Input[Model],
    verdict: Input[Markdown],
    model_name: str,
    model_base_path: str,
    model_store_pvc: str,
    model_format: str = "tensorflow",
    serving_namespace: str = "",
    use_kserve: bool = False,
    canary_percent: int = 100,
    kserve_deployment_mode: str = "Knative",
    tf_serving_version: str = "2.21.0",
    statistics: Input[Artifact] = None,
) -> str:
    """Publish `model` as version N+1 of `model_name` with its evaluation, label it and,
    in a cluster, make sure a server serves that store.

    Args:
        model: The exported model: a TensorFlow SavedModel folder, or a LightGBM model file.
        verdict: The gate's verdict; its metadata carries the evaluation stored with the version.
        model_format: "tensorflow" (a SavedModel, served by TF-Serving or KServe) or
            "lightgbm" (served by KServe).
        tf_serving_version: The TF-Serving release that serves a TensorFlow model: the image
            tag of the TF-Serving Deployment, and KServe's runtimeVersion (KServe's own default,
            2.6.2, cannot load SavedModels of TensorFlow 2.21).
        statistics: The validation step's statistics and schema of the training data, stored with
            the version for a later run's validation (optional: a version without them is
            validated against nothing).

    Returns:
        Output: The new version's folder, `<model_base_path>/<model_name>/<N>`; an
            existing version is never overwritten.
    """
    from pathlib import Path

    from components.cluster.target import ClusterServing, serving_target
    from components.common import tracking
    from components.release.config import check_release_values
    from components.store import open_store
    from components.store.serving_labels import labels_after_deploy
    from components.validation.schema import SCHEMA_FILE
    from components.validation.statistics import STATISTICS_FILE

    check_release_values({"canary_percent": canary_percent})
    store = open_store(model_base_path)
    target = serving_target(serving_namespace, ClusterServing(
        model_format=model_format, use_kserve=use_kserve, kserve_deployment_mode=kserve_deployment_mode,
        tf_serving_version=tf_serving_version, model_store_pvc=model_store_pvc))
    # Checked before publishing: a version the server can never read is no deploy.
    target.check(store, model_name, canary_percent)
    current = target.current_labels(store, model_name)
    gate = {key: verdict.metadata.get(key) for key in ("decision", "reason", "comparisons")}
    version = store.publish(Path(model.path), model_name,
                            evaluation={**verdict.metadata.get("evaluation", {}), "gate": gate},
                            extra_files={name: Path(statistics.path) / name for name in (STATISTICS_FILE, SCHEMA_FILE)}
                            if statistics is not None else None)
    labels = labels_after_deploy(current, version.number, canary_percent)
    print(f"deployed {model_name} version {version.number} to {version}; labels: {labels.describe()}",
          flush=True)
    # The model stays in the model store, not in MLflow (README: Experiment tracking): its version and URI
    # go on this task's run and on the pipeline's run.
    deployed = {"model_store.model": model_name, "model_store.version": version.name,
                "model_store.uri": str(version), "model_store.labels": labels.describe()}
    tracking.task_run().set_tags(deployed)
    tracking.task_run().tag_parent(deployed)
    print(target.serve(store, model_name, version.number, labels), flush=True)
    return str(version)


def add_deploy_task(model, verdict, statistics, release: ReleaseConfig) -> dsl.PipelineTask:
    """Add the deploy step to a pipeline (call it inside the gate's `dsl.If`): `model`, `verdict`
    and `statistics` are the trained model's, the gate's and the validation step's channels,
    `release` the pipeline's release settings (`components.release.config`).

    Never cached (a deploy must happen every time it is asked for); the model
    store claim is mounted where `model_base_path` points by default, and the
    deployer's least-privilege credentials when their Secret exists.
    """
    task = deploy_model(model=model, verdict=verdict, statistics=statistics, model_name=release.model_name,
                        model_base_path=release.model_base_path, model_store_pvc=release.model_store_pvc,
                        model_format=release.model_format, serving_namespace=release.serving_namespace,
                        use_kserve=release.use_kserve, canary_percent=release.canary_percent,
                        kserve_deployment_mode=release.kserve_deployment_mode)
    task.set_caching_options(False)
    mount_model_store(task, release)
    return task


def add_gated_deploy(evaluation: dsl.PipelineTask, model, release: ReleaseConfig, *,
                     statistics) -> dsl.PipelineTask:
    """What every pipeline does after its evaluate step: the gate step decides, and the
    deploy step runs inside `dsl.If(gate decided "deploy")` with the gate's verdict.

    `evaluation` is the evaluate task (its `metrics`, `report` and `rows` outputs), `model` the model
    it scored, `release` the pipeline's release settings (the gate metric and the parameters
    of `components.release.config`), `statistics` the validation step's output of that name
    (`components.release.validation_step`): its drift scores are a gate input, its files are stored
    with the version. Returns the gate task.
    """
    gate = add_gate_task(evaluation.outputs["metrics"], model, evaluation.outputs["report"],
                         evaluation.outputs["rows"], release, statistics)
    # The gate's single return value: the only channel kfp 2.17's local runner resolves in a condition.
    with dsl.If(gate.outputs["Output"] == DEPLOY, name="deploy-gate"):
        add_deploy_task(model, gate.outputs["verdict"], statistics, release)
    return gate
