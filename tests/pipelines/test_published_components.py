"""pipelines.publish and what it writes: the published components
(compiled/components/*.yaml) load with kfp's own loader and run through
kfp.local inside small pipelines of someone else's making: each pipeline's
steps chained on tiny inputs, the deploy step at the end.

The GPU twins (`*-gpu.yaml`) are checked to be their CPU twin in another image
(same command, same interface) rather than run again: kfp.local ignores images.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kfp import components, dsl, local

from components.common.errors import PipelineError
from components.common.images import cpu_image
from pipelines import publish, registry

# Steps run in this environment, not in the image the warning is about.
pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "compiled" / "components"
# What each test below runs, in order; test_every_published_component_is_run checks nothing is left out.
SP500_CHAIN = ("sp500-download-prices", "sp500-preprocess", "validate-data", "sp500-train-model-cpu",
               "sp500-evaluate", "gate-model", "deploy-model")
CRYPTO_CHAIN = ("crypto-download-data", "crypto-load-data", "crypto-build-features", "crypto-train-model",
                "crypto-evaluate")
MNIST_CHAIN = ("mnist-download-digits", "mnist-preprocess-digits", "mnist-train-trial-cpu",
               "mnist-select-best-trial", "mnist-evaluate")
MNIST_SEARCH_CHAIN = ("mnist-download-digits", "mnist-preprocess-digits", "mnist-search-trials",
                      "mnist-take-best-model", "mnist-evaluate")


def load(names: tuple[str, ...]) -> list:
    return [components.load_component_from_file(str(PUBLISHED / f"{name}.yaml")) for name in names]


@pytest.fixture
def kfp_local(tmp_path):
    """kfp.local in this environment (the project's image holds the same packages)."""
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "artifacts"))
    return tmp_path


def written(root: Path, task: str, output: str) -> Path:
    """The file or folder kfp.local wrote for `task`'s output artifact, checked to hold something."""
    (path,) = (root / "artifacts").glob(f"*/{task}/{output}")
    assert (path.is_file() and path.stat().st_size) or any(path.iterdir()), f"{task}/{output} is empty"
    return path


def deployed_versions(model_store: Path, model_name: str) -> list[str]:
    return sorted(p.name for p in (model_store / model_name).iterdir() if p.is_dir())


@pytest.mark.e2e
def test_sp500_steps_and_deploy_from_yaml(kfp_local):
    download, preprocess, validate, train, evaluate, gate, deploy = load(SP500_CHAIN)

    @dsl.pipeline(name="my-sp500")
    def my_pipeline(workspace: str, model_store: str) -> str:
        prices = download(workspace=workspace, tickers="sp500,nasdaq", source="")
        split = preprocess(prices_path=prices.outputs["Output"], target="sp500", num_lags=2, same_day_tickers="",
                           start_date="2018-01-01", end_date="2018-12-31", test_fraction=0.25)
        validated = validate(data=split.outputs["train_data"], source_quality=prices.outputs["quality"],
                             model_name="sp500-tiny", model_base_path=model_store, serving_namespace="",
                             skip_validation=False, categorical_columns="label")
        model = train(train_data=split.outputs["train_data"], model_type="flat", epochs=1,
                      learning_rate=0.01, seed=1, version_tag="tiny").outputs["model"]
        scored = evaluate(model=model, test_data=split.outputs["test_data"])
        verdict = gate(metrics=scored.outputs["metrics"], model=model, evaluation_report=scored.outputs["report"],
                       rows=scored.outputs["rows"], statistics=validated.outputs["statistics"], gate_metric="accuracy",
                       baseline_metric="always_up_accuracy", threshold=0.0, tolerance=0.0,
                       require_beat_baseline=False, model_name="sp500-tiny", model_base_path=model_store,
                       serving_namespace="", run_name="tiny")
        with dsl.If(verdict.outputs["Output"] == "deploy"):
            deploy(model=model, verdict=verdict.outputs["verdict"], model_name="sp500-tiny",
                   model_base_path=model_store, model_store_pvc="unused", statistics=validated.outputs["statistics"])
        return verdict.outputs["Output"]

    run = my_pipeline(workspace=str(kfp_local / "workspace"), model_store=str(kfp_local / "store"))
    assert run.output == "deploy", "a first deploy at threshold 0 passes"
    assert "always_up_accuracy" in written(kfp_local, "evaluate", "report").read_text()
    assert (written(kfp_local, "evaluate", "rows") / "rows.parquet").is_file()
    assert deployed_versions(kfp_local / "store", "sp500-tiny") == ["1"]
    assert (kfp_local / "store" / "sp500-tiny" / "1" / "saved_model.pb").is_file()
    assert (kfp_local / "store" / "sp500-tiny" / "1" / "statistics.json").is_file()
    assert "Data validation" in written(kfp_local, "validate-data", "report").read_text()


@pytest.mark.e2e
def test_crypto_steps_from_yaml(kfp_local):
    download, load_data, features, train, evaluate = load(CRYPTO_CHAIN)

    @dsl.pipeline(name="my-crypto")
    def my_pipeline(workspace: str) -> float:
        raw = download(workspace=workspace, source="generated", competition="unused",
                       generated_start="2021-05-01", generated_end="2021-05-04", data_seed=7)
        loaded = load_data(raw_dir=raw.output, start_date="2021-01-01")
        table = features(loaded_dir=loaded.outputs["Output"], valid_start="2021-05-03")
        trained = train(features_path=table.outputs["Output"], valid_start="2021-05-03", n_estimators=20,
                        learning_rate=0.1, early_stopping_rounds=5, num_leaves=7, seed=1, test_fraction=0.5)
        scored = evaluate(features_path=table.outputs["Output"], loaded_dir=loaded.outputs["Output"],
                          model=trained.outputs["model"], test_start=trained.outputs["Output"])
        return scored.outputs["Output"]

    run = my_pipeline(workspace=str(kfp_local / "workspace"))
    assert -1.0 <= run.output <= 1.0
    written(kfp_local, "train-model", "model")
    assert "reversal" in written(kfp_local, "evaluate", "report").read_text()
    assert (written(kfp_local, "evaluate", "rows") / "rows.parquet").is_file()


@pytest.mark.e2e
def test_mnist_steps_from_yaml(kfp_local):
    download, preprocess, train, select, evaluate = load(MNIST_CHAIN)

    @dsl.pipeline(name="my-mnist")
    def my_pipeline(workspace: str) -> float:
        digits = download(workspace=workspace, source="")
        splits = preprocess(digits=digits.outputs["digits"], validation_fraction=0.2, test_fraction=0.6, seed=1)
        with dsl.ParallelFor([[0.01, 1]], name="sweep") as grid_point:
            trial = train(splits=splits.outputs["splits"], grid_point=grid_point, hidden_units=8, epochs=1,
                          batch_size=256, seed=1, workers=1, version_tag="tiny", distributed_storage="",
                          worker_pod={})
        best = select(trial_models=dsl.Collected(trial.outputs["model"]))
        scored = evaluate(model=best.outputs["best_model"], splits=splits.outputs["splits"])
        return scored.outputs["Output"]

    run = my_pipeline(workspace=str(kfp_local / "workspace"))
    assert 0.0 <= run.output <= 1.0
    written(kfp_local, "for-loop-*/train-trial", "tensorboard_logs")
    assert "majority" in written(kfp_local, "evaluate", "report").read_text()
    assert (written(kfp_local, "evaluate", "rows") / "rows.parquet").is_file()


@pytest.mark.e2e
def test_mnist_search_steps_from_yaml(kfp_local):
    download, preprocess, search, take, evaluate = load(MNIST_SEARCH_CHAIN)

    @dsl.pipeline(name="my-mnist-search", pipeline_config=dsl.PipelineConfig(
        workspace=dsl.WorkspaceConfig(size="1Gi")))
    def my_pipeline(workspace: str) -> float:
        digits = download(workspace=workspace, source="")
        splits = preprocess(digits=digits.outputs["digits"], validation_fraction=0.2, test_fraction=0.6, seed=1)
        searched = search(splits=splits.outputs["splits"], sweep="random", learning_rate_min=0.003,
                          learning_rate_max=0.03, hidden_layers_min=0, hidden_layers_max=1, trials=2, parallelism=1,
                          hidden_units=8, epochs=1, batch_size=256, seed=1, version_tag="tiny",
                          distributed_storage="", worker_pod={}, workspace=dsl.WORKSPACE_PATH_PLACEHOLDER)
        best = take(workspace=dsl.WORKSPACE_PATH_PLACEHOLDER, best_trial=searched.outputs["Output"])
        scored = evaluate(model=best.outputs["best_model"], splits=splits.outputs["splits"])
        return scored.outputs["Output"]

    run = my_pipeline(workspace=str(kfp_local / "workspace"))
    assert 0.0 <= run.output <= 1.0
    assert written(kfp_local, "search-trials", "sweep_report").read_text().count("trial0") >= 2
    assert len(list(written(kfp_local, "search-trials", "tensorboard_logs").iterdir())) == 2


def interface_and_command(name: str) -> tuple:
    spec = yaml.safe_load((PUBLISHED / f"{name}.yaml").read_text())
    (executor,) = spec["deploymentSpec"]["executors"].values()
    (component,) = spec["components"].values()
    return (component, spec["root"], executor["container"]["command"], executor["container"]["args"],
            executor["container"]["image"])


GPU_TWINS = sorted(p.stem for p in PUBLISHED.glob("*-gpu.yaml"))


@pytest.mark.parametrize("gpu_name", GPU_TWINS)
def test_gpu_twin_is_its_cpu_twin_in_the_gpu_image(gpu_name):
    *gpu, gpu_image = interface_and_command(gpu_name)
    *cpu, cpu_image = interface_and_command(gpu_name.removesuffix("-gpu") + "-cpu")
    assert gpu == cpu
    assert gpu_image != cpu_image and "-gpu:" in gpu_image


def test_every_published_component_is_run():
    """Every published YAML is run by a test above, or is the GPU twin of one that is."""
    published = {p.stem for p in PUBLISHED.glob("*.yaml")}
    assert published, "nothing published: run make compile"
    not_run = published - set(SP500_CHAIN + CRYPTO_CHAIN + MNIST_CHAIN + MNIST_SEARCH_CHAIN) - set(GPU_TWINS)
    assert not_run == set(), f"published but never run through kfp.local here: {sorted(not_run)}"


@pytest.mark.parametrize("import_path, name", [
    ("components.release.deploy.deploy_model", "deploy-model"),
    ("pipelines.sp500.steps.train_model_gpu", "sp500-train-model-gpu"),
])
def test_published_name(import_path, name):
    assert publish.published_name(import_path) == name


def test_discovery_names_every_step_of_every_pipeline_by_where_it_is_defined():
    used = publish.used_components()
    found = {item.name: item.import_path for item in used}
    assert found["deploy-model"] == "components.release.deploy.deploy_model"
    assert found["sp500-train-model-gpu"] == "pipelines.sp500.steps.train_model_gpu"
    for item in used:
        module, attribute = item.import_path.rsplit(".", 1)
        assert getattr(__import__(module, fromlist=[attribute]), attribute) is item.component


def test_a_step_that_cannot_be_imported_is_not_published_silently(monkeypatch):
    @dsl.component(base_image="python:3.11")
    def inline_step(x: int) -> int:
        return x

    @dsl.pipeline(name="theirs")
    def theirs():
        inline_step(x=1)

    entry = SimpleNamespace(name="theirs", make_pipeline=lambda gpu: theirs)
    monkeypatch.setattr(registry, "variants", lambda: [(entry, False)])
    with pytest.raises(PipelineError, match="theirs: step exec-inline-step is not a module-level component"):
        publish.used_components()


def test_catalog_has_one_line_per_component_with_its_interface_and_image():
    lines = (PUBLISHED / "README.md").read_text().splitlines()
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| [")}
    assert set(rows) == {f"[{p.stem}]({p.name})" for p in PUBLISHED.glob("*.yaml")}
    deploy = rows["[deploy-model](deploy-model.yaml)"]
    assert "`components.release.deploy.deploy_model`" in deploy and "`model` (Model)" in deploy
    assert "`use_kserve` (Boolean)" in deploy and f"`{cpu_image()}`" in deploy
