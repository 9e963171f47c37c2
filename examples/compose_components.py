"""A pipeline of your own, composed from the published component YAML, compiled for a cluster.

It chains the sp500 steps (download -> preprocess -> train -> evaluate) and the shared
release steps (gate-model, then deploy-model when the gate says "deploy"), as
pipelines/sp500/pipeline.py does, but from the files in compiled/components/ alone:
no import of this project is needed to compile it. What each component takes and
returns is listed in compiled/components/README.md.

    python examples/compose_components.py --output my-sp500.yaml

run_locally.py runs the same pipeline on this machine.
"""

import argparse
from pathlib import Path

from kfp import compiler, components, dsl, kubernetes

# Outside this checkout, load them from a release instead:
# components.load_component_from_url(
#     "https://raw.githubusercontent.com/<owner>/kfp-ml-pipelines/<tag>/compiled/components/<name>.yaml")
COMPONENTS = Path(__file__).resolve().parents[1] / "compiled" / "components"


def load(name: str):
    return components.load_component_from_file(str(COMPONENTS / f"{name}.yaml"))


download_prices = load("sp500-download-prices")
preprocess = load("sp500-preprocess")
train_model = load("sp500-train-model-cpu")
evaluate = load("sp500-evaluate")
gate_model = load("gate-model")
deploy_model = load("deploy-model")

# Where the model store claim is mounted in the gate and deploy steps on a cluster.
MODEL_STORE_MOUNT = "/models"


# The download step writes the prices into the run's workspace (a volume KFP creates
# per run on a cluster; a folder under kfp.local's `workspace_root` on a laptop).
@dsl.pipeline(name="my-sp500", pipeline_config=dsl.PipelineConfig(workspace=dsl.WorkspaceConfig(size="1Gi")))
def my_sp500(
    model_type: str = "flat",
    epochs: int = 5,
    threshold: float = 0.5,
    model_name: str = "my-sp500",
    model_base_path: str = MODEL_STORE_MOUNT,
    model_store_pvc: str = "model-store",
):
    """Train on the offline S&P 500 and NASDAQ prices; deploy the model when the gate passes it.

    Args:
        model_type: "flat" (one softmax layer) or "deep" (50 -> 25 ReLU -> softmax).
        epochs: Training passes over the training days.
        threshold: The least test accuracy a deployed model must reach (0 to 1).
        model_name: The model's folder in the model store.
        model_base_path: Root of the model store (/models, where the claim is mounted, on a cluster).
        model_store_pvc: PersistentVolumeClaim holding the model store (cluster only).
    """
    download = download_prices(workspace=dsl.WORKSPACE_PATH_PLACEHOLDER, tickers="sp500,nasdaq", source="")
    # A task with more than one output has no `.output`: name the one you want.
    split = preprocess(prices_path=download.outputs["Output"], target="sp500", num_lags=3, same_day_tickers="",
                       start_date="2010-01-01", end_date="2018-12-31", test_fraction=0.2)
    training = train_model(train_data=split.outputs["train_data"], model_type=model_type, epochs=epochs,
                           learning_rate=0.001, seed=42, version_tag=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
    model = training.outputs["model"]
    evaluation = evaluate(model=model, test_data=split.outputs["test_data"])

    # The gate scores the version serving now on the rows the evaluate step scored, and compares the
    # model with it and with the naive baseline (paired intervals). The pipelines also hand it the
    # validate-data step's statistics, whose drift it then checks; without them it compares no drift.
    gate = gate_model(metrics=evaluation.outputs["metrics"], model=model, rows=evaluation.outputs["rows"],
                      evaluation_report=evaluation.outputs["report"], gate_metric="accuracy",
                      baseline_metric="always_up_accuracy", threshold=threshold, tolerance=0.0,
                      require_beat_baseline=False, model_name=model_name, model_base_path=model_base_path,
                      serving_namespace="", run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
    # The caches would skip a new download, or judge against yesterday's champion.
    for task in (download, split, gate):
        task.set_caching_options(False)
    # Condition on the gate's single return value "Output" ("deploy" or "refuse"): kfp.local
    # resolves conditions on that channel only. The deploy step needs the gate's verdict.
    with dsl.If(gate.outputs["Output"] == "deploy", name="deploy-gate"):
        deploy = deploy_model(model=model, verdict=gate.outputs["verdict"], model_name=model_name,
                              model_base_path=model_base_path, model_store_pvc=model_store_pvc)
        deploy.set_caching_options(False)
    # A YAML component carries no Kubernetes settings: mount the model store claim yourself
    # (kfp.local ignores this). From Python, components.release.deploy.add_deploy_task does it,
    # and also mounts the deployer's credentials.
    for task in (gate, deploy):
        kubernetes.mount_pvc(task, pvc_name=model_store_pvc, mount_path=MODEL_STORE_MOUNT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("my-sp500.yaml"), help="the compiled pipeline")
    args = parser.parse_args()
    compiler.Compiler().compile(my_sp500, str(args.output))
    print(f"compiled {my_sp500.name} to {args.output}")


if __name__ == "__main__":
    main()
