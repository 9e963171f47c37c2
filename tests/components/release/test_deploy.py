"""The shared deploy step's own checks (its cluster path itself is covered with a
stand-in Kubernetes API in test_kube_serving_api.py)."""

import pytest
from conftest import compile_documents
from kfp.dsl import Markdown, Model

from components.cluster import api as kube_api
from components.cluster import serving as kube_serving
from components.common.errors import InputError
from components.release.deploy import deploy_model
from components.store import folder as model_store
from components.store.serving_labels import ServingLabels


@pytest.fixture
def saved_model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "saved_model.pb").write_text("graph")
    return Model(name="model", uri=str(folder))


EVALUATION = {"metrics": {"accuracy": 0.61}, "test_set": "2017..2018", "run": "run-3"}


GATE = {"decision": "deploy", "reason": "DEPLOY: first deploy", "comparisons": ["threshold: ..."]}


def verdict():
    gate_verdict = Markdown(name="verdict", uri="/unused")
    gate_verdict.metadata.update(GATE, evaluation=EVALUATION)
    return gate_verdict


def deploy(model, base, name="sp500", **options):
    return deploy_model.python_func(model=model, verdict=verdict(), model_name=name, model_base_path=str(base),
                                    model_store_pvc="model-store", **options)


def test_outside_a_cluster_the_model_store_is_the_deployment(saved_model, tmp_path, monkeypatch):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: False)
    assert deploy(saved_model, tmp_path / "store") == str(tmp_path / "store" / "sp500" / "1")
    assert deploy(saved_model, tmp_path / "store") == str(tmp_path / "store" / "sp500" / "2")


@pytest.mark.parametrize("base, name, options, message", [
    ("/elsewhere", "sp500", {}, "on a cluster the model store claim is mounted at .*/store, where"),
    (None, "my.model", {}, "model_name 'my.model' cannot name a Kubernetes object"),
    (None, "sp500", {"tf_serving_version": "2.21 final"}, "tf_serving_version '2.21 final' is not an image tag"),
])
def test_in_a_cluster_what_the_server_cannot_read_is_refused_before_publishing(
        saved_model, tmp_path, monkeypatch, base, name, options, message):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: True)
    served = []
    monkeypatch.setattr(kube_serving, "deploy_serving", lambda **kwargs: served.append(kwargs))
    store = tmp_path / "store"
    monkeypatch.setattr(kube_api, "MODEL_STORE_MOUNT", str(store))
    with pytest.raises(InputError, match=message):
        deploy(saved_model, base or store, name, **options)
    assert not (tmp_path / "elsewhere").exists() and not store.exists() and served == []


def test_in_a_cluster_the_new_version_is_served(saved_model, tmp_path, monkeypatch):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: True)
    served = []
    monkeypatch.setattr(kube_serving, "deploy_serving", lambda **kwargs: served.append(kwargs) or "ok")
    monkeypatch.setattr(kube_api, "MODEL_STORE_MOUNT", str(tmp_path / "store"))
    monkeypatch.setattr(kube_serving, "labels_in_cluster", lambda *args: None)
    deploy(saved_model, tmp_path / "store")
    (call,) = served
    assert call.pop("labels") == ServingLabels(stable=1, known_versions=(1,))
    assert call == dict(model_name="sp500", model_format="tensorflow", model_store_pvc="model-store",
                        namespace=None, model_version=1, kserve=False, kserve_deployment_mode="Knative",
                        model_store_uri="", tf_serving_version=kube_serving.TF_SERVING_VERSION)
    assert not (tmp_path / "store" / "sp500" / "labels.json").exists(), "on a cluster the labels are a ConfigMap"


def test_a_version_carries_its_evaluation_and_a_canary_keeps_the_stable_version(saved_model, tmp_path, monkeypatch):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: False)
    store = tmp_path / "store"
    deploy(saved_model, store, canary_percent=20)
    model_dir = store / "sp500"
    assert model_store.read_evaluation(model_dir, 1) == {**EVALUATION, "gate": GATE}
    assert model_store.read_labels(model_dir).describe() == "stable=1", "a first deploy is stable"
    deploy(saved_model, store, canary_percent=20)
    assert model_store.read_labels(model_dir).describe() == "stable=1, canary=2 (20% of traffic)"
    deploy(saved_model, store)
    assert model_store.read_labels(model_dir).describe() == "stable=3"


@pytest.mark.parametrize("options, message", [
    (dict(canary_percent=0), "canary_percent must be between 1 and 100"),
    (dict(model_format="lightgbm", canary_percent=10, kserve_deployment_mode="Standard"),
     "canaryTrafficPercent works only in Knative"),
    (dict(use_kserve=True, canary_percent=10), "use TF-Serving's labels"),
])
def test_a_canary_the_server_cannot_split_is_refused_before_publishing(saved_model, tmp_path, monkeypatch,
                                                                       options, message):
    monkeypatch.setattr(kube_api, "in_cluster", lambda: True)
    monkeypatch.setattr(kube_api, "MODEL_STORE_MOUNT", str(tmp_path / "store"))
    with pytest.raises(InputError, match=message):
        deploy(saved_model, tmp_path / "store", **options)
    assert not (tmp_path / "store").exists()


# --------------------------------------------------------------------------- the gated deploy in a pipeline

@pytest.mark.parametrize("pipeline, metric, baseline", [
    ("sp500", "accuracy", "always_up_accuracy"),
    ("mnist", "accuracy", "majority_class_accuracy"),
    ("crypto", "weighted_correlation", "weighted_correlation_reversal_baseline"),
])
def test_every_pipeline_deploys_only_on_the_gate_steps_single_output(tmp_path, pipeline, metric, baseline):
    """evaluate -> gate -> dsl.If(gate's "Output" == "deploy") -> deploy with the verdict."""
    spec, platform = compile_documents(pipeline, tmp_path / f"{pipeline}.yaml")
    tasks = spec["root"]["dag"]["tasks"]
    gate = tasks["gate-model"]
    assert gate["inputs"]["artifacts"]["metrics"]["taskOutputArtifact"] == {
        "outputArtifactKey": "metrics", "producerTask": "evaluate"}
    parameters = gate["inputs"]["parameters"]
    assert parameters["gate_metric"] == {"runtimeValue": {"constant": metric}}
    assert parameters["baseline_metric"] == {"runtimeValue": {"constant": baseline}}
    for name in ("threshold", "tolerance", "require_beat_baseline", "confidence", "max_drift",
                 "deploy_if_champion_incomparable"):
        assert parameters[name] == {"componentInputParameter": name}
    # mnist's sweep is a condition too (grid or search): the deploy's is the one on the gate's output.
    (branch,) = [name for name, task in tasks.items() if name.startswith("condition-")
                 and "gate-model" in task.get("triggerPolicy", {}).get("condition", "")]
    condition = tasks[branch]["triggerPolicy"]["condition"]
    assert condition == "inputs.parameter_values['pipelinechannel--gate-model-Output'] == 'deploy'"
    deploy = spec["components"][f"comp-{branch}"]["dag"]["tasks"]["deploy-model"]
    assert deploy["inputs"]["artifacts"]["verdict"]["componentInputArtifact"] == "pipelinechannel--gate-model-verdict"
    assert deploy["inputs"]["parameters"]["canary_percent"]["componentInputParameter"] == \
        "pipelinechannel--canary_percent"
    defaults = {name: p.get("defaultValue") for name, p in spec["root"]["inputDefinitions"]["parameters"].items()}
    assert (defaults["tolerance"], defaults["require_beat_baseline"], defaults["canary_percent"]) == (0.0, False, 100)
    assert (defaults["confidence"], defaults["max_drift"], defaults["deploy_if_champion_incomparable"]) == \
        (0.95, 0.25, False)
    # On a cluster the gate reads the store and the serving labels like the deploy step.
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-gate-model"]["pvcMount"][0]["mountPath"] == "/models"
    assert executors["exec-gate-model"]["secretAsVolume"][0]["optional"] is True


def test_the_gate_reads_the_evaluate_steps_rows_and_the_validation_statistics(tmp_path):
    """A pipeline whose evaluate step writes `rows` (the contract of components.release.rows) and whose
    validation step writes `statistics`: the gate takes both."""
    import yaml
    from kfp import compiler, dsl
    from kfp.dsl import HTML, Artifact, Dataset, Metrics, Output

    from components.common.images import cpu_component
    from components.release.config import ReleaseConfig, release_parameters
    from components.release.deploy import add_gated_deploy

    @cpu_component
    def evaluate(metrics: Output[Metrics], report: Output[HTML], rows: Output[Dataset], model: Output[Model]):
        pass

    @cpu_component
    def validate(statistics: Output[Artifact]):
        pass

    release = ReleaseConfig(gate_metric="accuracy", baseline_metric="baseline", model_name="toy", threshold=0.5)

    @dsl.pipeline(name="toy")
    @release_parameters(release)
    def toy(*, release: ReleaseConfig):
        """A toy.

        Args:
            release: The release parameters.
        """
        evaluation = evaluate()
        add_gated_deploy(evaluation, evaluation.outputs["model"], release, statistics=validate().outputs["statistics"])

    compiler.Compiler().compile(toy, str(tmp_path / "toy.yaml"))
    spec = next(yaml.safe_load_all((tmp_path / "toy.yaml").read_text()))
    artifacts = spec["root"]["dag"]["tasks"]["gate-model"]["inputs"]["artifacts"]
    assert artifacts["rows"]["taskOutputArtifact"] == {"outputArtifactKey": "rows", "producerTask": "evaluate"}
    assert artifacts["statistics"]["taskOutputArtifact"] == {"outputArtifactKey": "statistics",
                                                             "producerTask": "validate"}
