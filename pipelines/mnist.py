"""MNIST digits: download -> preprocess -> sweep (N train tasks) -> select best
-> evaluate -> gated deploy to TF-Serving.

The sweep grid (learning rate x number of hidden layers) is unrolled when the
pipeline is built: one train task per grid point, all fed by the same
preprocess step and all followed by the select step, so a cluster runs them in
parallel and kfp.local runs them one after another. (`dsl.ParallelFor` would
be the natural tool, but kfp 2.17's local runner mishandles it.) The grid is
therefore chosen at compile time: the `learning_rates` / `hidden_layer_counts`
arguments of `make_pipeline`, or the environment variables
`MNIST_LEARNING_RATES` and `MNIST_HIDDEN_LAYERS` (comma-separated) when
`make compile` / `make run` build it.

The GPU variant trains every trial in the GPU image on `GPU_COUNT` NVIDIA GPUs
(default 1), tolerates the GPU nodes' taint and selects GPU nodes by label;
see `components.gpu.GpuSettings` for the settings and their environment variables. Accelerator
settings are compile-time: KFP cannot take them from pipeline parameters in
every runner.
"""

import os
from typing import Sequence

from kfp import dsl

from components.cluster_settings import apply_cluster_settings, pipeline_config
from components.deploy import add_deploy_task
from components.errors import InputError
from components.gate_step import add_gate_task
from components.gpu import GpuSettings
from components.mnist import steps
from components.mnist.sweep import parse_grid_values, sweep_grid

DEFAULT_LEARNING_RATES = (0.001, 0.003)
DEFAULT_HIDDEN_LAYER_COUNTS = (1, 2)


def _grid_from_env(name: str, default: Sequence, kind: type) -> Sequence:
    text = os.environ.get(name)
    return default if text is None else parse_grid_values(text, kind, name)


def make_pipeline(gpu: bool = False, learning_rates: Sequence[float] | None = None,
                  hidden_layer_counts: Sequence[int] | None = None, gpu_settings: GpuSettings | None = None):
    """The mnist pipeline with its sweep grid unrolled; `gpu=True` trains on NVIDIA GPUs."""
    trials = sweep_grid(
        _grid_from_env("MNIST_LEARNING_RATES", DEFAULT_LEARNING_RATES, float)
        if learning_rates is None else learning_rates,
        _grid_from_env("MNIST_HIDDEN_LAYERS", DEFAULT_HIDDEN_LAYER_COUNTS, int)
        if hidden_layer_counts is None else hidden_layer_counts)
    settings = (gpu_settings or GpuSettings.from_env()) if gpu else None
    train_step = steps.train_trial_gpu if gpu else steps.train_trial_cpu

    @dsl.pipeline(
        name="mnist-gpu" if gpu else "mnist",
        description="MNIST digits with a Keras CNN: a sweep over learning rate x hidden layers, the best "
                    "trial evaluated and deployed to TF-Serving when test accuracy >= threshold.",
        pipeline_config=pipeline_config(workspace_size="2Gi"),
    )
    def mnist(
        source: str = "",
        validation_fraction: float = 0.1,
        test_fraction: float = 0.2,
        hidden_units: int = 128,
        epochs: int = 6,
        batch_size: int = 64,
        seed: int = 42,
        threshold: float = 0.7,
        model_name: str = "mnist",
        model_base_path: str = "/models",
        model_store_pvc: str = "model-store",
        serving_namespace: str = "",
        use_kserve: bool = False,
        tolerance: float = 0.0,
        require_beat_baseline: bool = False,
        canary_percent: int = 100,
    ):
        download = steps.download_digits(workspace=dsl.WORKSPACE_PATH_PLACEHOLDER, source=source)
        download.set_caching_options(False)

        preprocess = steps.preprocess_digits(
            digits_path=download.output, workspace=dsl.WORKSPACE_PATH_PLACEHOLDER,
            validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed)
        preprocess.set_caching_options(False)

        trial_tasks = []
        for trial in trials:
            task = train_step(
                splits_path=preprocess.output, workspace=dsl.WORKSPACE_PATH_PLACEHOLDER,
                trial_name=trial.name, learning_rate=trial.learning_rate, hidden_layers=trial.hidden_layers,
                hidden_units=hidden_units, epochs=epochs, batch_size=batch_size, seed=seed,
                version_tag=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
            task.set_display_name(f"train {trial.name}").set_caching_options(False)
            if settings:
                settings.apply(task)
            trial_tasks.append(task)

        # The trials hand their models over through the workspace, so the
        # select step waits for all of them explicitly.
        select = steps.select_best_trial(
            workspace=dsl.WORKSPACE_PATH_PLACEHOLDER, trial_names=[t.name for t in trials])
        select.set_caching_options(False).after(*trial_tasks)

        evaluation = steps.evaluate(
            model=select.outputs["best_model"], splits_path=preprocess.output, threshold=threshold)
        evaluation.set_caching_options(False)

        gate = add_gate_task(evaluation.outputs["metrics"], "accuracy", "majority_class_accuracy", threshold,
                             tolerance, require_beat_baseline, model_name, model_base_path, model_store_pvc,
                             serving_namespace)
        with dsl.If(gate.outputs["Output"] == "deploy", name="deploy-gate"):
            add_deploy_task(select.outputs["best_model"], gate.outputs["verdict"], model_name, model_base_path,
                            model_store_pvc, serving_namespace, use_kserve=use_kserve,
                            canary_percent=canary_percent)
        apply_cluster_settings("mnist")

    return mnist


def check_parameters(params: dict) -> None:
    """Fail before any step runs on parameters that can never work."""
    from components.mnist.models import TrainConfig
    from components.mnist.preprocess import check_fraction

    check_fraction("validation_fraction", params["validation_fraction"])
    check_fraction("test_fraction", params["test_fraction"])
    if params["validation_fraction"] + params["test_fraction"] >= 1:
        raise InputError("validation_fraction + test_fraction must be below 1")
    TrainConfig(hidden_units=params["hidden_units"], epochs=params["epochs"],
                batch_size=params["batch_size"], seed=params["seed"]).check()
