"""The gate: threshold, naive baseline and serving champion decided in one place,
and the gate step that reads the champion's stored evaluation and records its verdict."""

import json

import pytest
from kfp.dsl import HTML, Markdown, Metrics, Model

from components.common import reports
from components.common.errors import InputError
from components.release.gate import Champion, check_threshold, decide, log_scores
from components.release.gate_step import gate_model
from components.store import folder as model_store
from components.store.serving_labels import ServingLabels


class RecordedMetrics:
    def __init__(self):
        self.logged = {}

    def log_metric(self, metric, value):
        self.logged[metric] = value


def test_every_score_is_logged_and_the_evaluate_step_leaves_the_decision_to_the_gate():
    metrics = RecordedMetrics()
    scores = {"accuracy": 0.62, "always_up_accuracy": 0.55}
    line = log_scores(metrics, scores, "accuracy")
    assert metrics.logged == scores
    assert line == ("accuracy 0.6200: the gate step decides the deploy against the threshold, the serving "
                    "champion (re-scored on these rows) and the naive baseline")
    assert "PASS" not in line and "REFUSE" not in line


def test_threshold_outside_zero_to_one_is_refused():
    with pytest.raises(InputError, match="threshold must be between 0 and 1, got 1.5"):
        check_threshold(1.5)


def gate(value, champion=None, tolerance=0.01, baseline=0.5, require_beat_baseline=False, threshold=0.55,
         **content):
    return decide("accuracy", value, threshold, "always_up_accuracy", baseline, champion, tolerance,
                  require_beat_baseline, test_set="2017..2018", **content)


def test_first_deploy_is_said_plainly():
    verdict = gate(0.6)
    assert verdict.deploy and verdict.first_deploy and verdict.champion_version is None
    assert "serving champion: none, nothing is serving yet -> first deploy" in verdict.comparisons
    assert verdict.reason.startswith("DEPLOY: first deploy")


@pytest.mark.parametrize("champion_metric, deploys, words", [
    (0.58, True, "challenger +0.0200 (tolerance 0.01) -> pass"),     # better than the champion
    (0.605, True, "challenger -0.0050 (tolerance 0.01) -> pass"),    # worse, but within the tolerance
    (0.60, True, "challenger +0.0000 (tolerance 0.01) -> pass"),     # equal
    (0.62, False, "challenger -0.0200 (tolerance 0.01) -> FAIL"),    # worse by more than the tolerance
])
def test_champion_better_worse_or_equal_within_the_tolerance(champion_metric, deploys, words):
    verdict = gate(0.60, Champion(3, champion_metric, "2017..2018"))
    assert verdict.deploy is deploys and not verdict.first_deploy and verdict.champion_version == 3
    (line,) = [c for c in verdict.comparisons if c.startswith("serving champion")]
    assert f"version 3 accuracy {champion_metric:.4f}, {words}" in line
    if not deploys:
        assert "worse than serving version 3 (0.6200) by 0.0200, more than the tolerance 0.01" in verdict.reason
        assert verdict.reason.startswith("REFUSED") and verdict.reason.endswith("Nothing is deployed.")


def test_zero_tolerance_refuses_any_loss_and_a_champion_without_record_is_not_compared():
    assert not gate(0.5999, Champion(1, 0.60), tolerance=0.0).deploy
    unrecorded = gate(0.56, Champion(1, None))
    assert unrecorded.deploy and "version 1 has no stored evaluation -> not compared" in unrecorded.comparisons[2]


def test_below_threshold_and_the_baseline_requirement():
    below = gate(0.50, baseline=0.45)
    assert not below.deploy and "accuracy 0.5000 is below the threshold 0.55" in below.reason
    not_better = gate(0.56, baseline=0.58)
    assert not_better.deploy
    assert "-> not better, allowed (require_beat_baseline=false)" in not_better.comparisons[1]
    required = gate(0.56, baseline=0.58, require_beat_baseline=True)
    assert not required.deploy and "does not beat the naive baseline 0.5800" in required.reason
    assert gate(0.60, baseline=0.58, require_beat_baseline=True).deploy


def test_every_failure_is_named():
    verdict = gate(0.40, Champion(2, 0.70), baseline=0.45, require_beat_baseline=True)
    assert verdict.reason.count(";") == 2 and "threshold" in verdict.reason and "baseline" in verdict.reason


def test_a_different_test_set_is_pointed_out():
    verdict = gate(0.60, Champion(2, 0.59, "2015..2016"))
    assert "(its test set: 2015..2016; this one: 2017..2018)" in verdict.comparisons[2]


def test_tolerance_outside_zero_to_one_is_refused():
    with pytest.raises(InputError, match="tolerance must be between 0 and 1, got -0.1"):
        gate(0.6, tolerance=-0.1)


# --------------------------------------------------------------------------- the step

def run_gate_step(tmp_path, accuracy, store, model_bytes=None, model_metadata=None, **options):
    metrics = Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    metrics.log_metric("accuracy", accuracy)
    metrics.log_metric("always_up_accuracy", 0.54)
    metrics.metadata["test_set"] = "2017..2018"
    model = tmp_path / f"model-{accuracy}-{len(list(tmp_path.glob('model-*')))}"
    model.mkdir()
    (model / "model.bst").write_bytes(model_bytes or f"tree {accuracy}".encode())
    report = tmp_path / "evaluation.html"
    report.write_text("<html><body><h1>Evaluation</h1>" + reports.pending_gate_html("accuracy 0.5")
                      + "<h2>Metrics</h2></body></html>")
    verdict = Markdown(name="verdict", uri=str(tmp_path / f"verdict-{accuracy}.md"))
    decided = HTML(name="report", uri=str(tmp_path / f"report-{accuracy}.html"))
    model = Model(name="model", uri=str(model), metadata=dict(model_metadata or {}))
    arguments = dict(metrics=metrics, model=model,
                     evaluation_report=HTML(name="report", uri=str(report)), gate_metric="accuracy",
                     baseline_metric="always_up_accuracy", threshold=0.5, tolerance=0.0, require_beat_baseline=False,
                     model_name="sp500", model_base_path=str(store), serving_namespace="", run_name="run-7",
                     verdict=verdict, report=decided)
    decision = gate_model.python_func(**{**arguments, **options})
    return decision, verdict


def test_the_step_reads_the_stable_versions_stored_evaluation_and_records_its_verdict(tmp_path):
    store = tmp_path / "store"
    decision, verdict = run_gate_step(tmp_path, 0.56, store)
    assert decision == "deploy" and verdict.metadata["first_deploy"] is True
    evaluation = verdict.metadata["evaluation"]
    assert evaluation["metrics"] == {"accuracy": 0.56, "always_up_accuracy": 0.54}
    assert (evaluation["test_set"], evaluation["run"], evaluation["gate_metric"]) == ("2017..2018", "run-7", "accuracy")

    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_text("graph")
    model_store.publish_version(model, store, "sp500", evaluation)
    model_store.write_labels(store / "sp500", ServingLabels(stable=1))

    worse, verdict = run_gate_step(tmp_path, 0.55, store)
    assert worse == "refuse" and verdict.metadata["champion_version"] == 1
    text = open(verdict.path).read()
    assert "# Deploy gate for sp500: REFUSE" in text
    assert "serving version 1 (0.5600) by 0.0100" in text
    assert json.dumps(verdict.metadata)  # the UI stores it as a Struct: JSON values only
    assert run_gate_step(tmp_path, 0.55, store, tolerance=0.02)[0] == "deploy"


@pytest.mark.parametrize("pipeline, metric, baseline", [
    ("sp500", "accuracy", "always_up_accuracy"),
    ("mnist", "accuracy", "majority_class_accuracy"),
    ("crypto", "weighted_correlation", "weighted_correlation_reversal_baseline"),
])
def test_every_pipeline_deploys_only_on_the_gate_steps_single_output(tmp_path, pipeline, metric, baseline):
    """evaluate -> gate -> dsl.If(gate's "Output" == "deploy") -> deploy with the verdict."""
    import yaml
    from kfp import compiler

    from pipelines import registry

    path = tmp_path / f"{pipeline}.yaml"
    compiler.Compiler().compile(registry.get(pipeline).make_pipeline(), str(path))
    spec, platform = list(yaml.safe_load_all(path.read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    gate = tasks["gate-model"]
    assert gate["inputs"]["artifacts"]["metrics"]["taskOutputArtifact"] == {
        "outputArtifactKey": "metrics", "producerTask": "evaluate"}
    parameters = gate["inputs"]["parameters"]
    assert parameters["gate_metric"] == {"runtimeValue": {"constant": metric}}
    assert parameters["baseline_metric"] == {"runtimeValue": {"constant": baseline}}
    for name in ("threshold", "tolerance", "require_beat_baseline"):
        assert parameters[name] == {"componentInputParameter": name}
    (branch,) = [name for name in tasks if name.startswith("condition-")]  # mnist's sweep loop is numbered first
    condition = tasks[branch]["triggerPolicy"]["condition"]
    assert condition == "inputs.parameter_values['pipelinechannel--gate-model-Output'] == 'deploy'"
    deploy = spec["components"][f"comp-{branch}"]["dag"]["tasks"]["deploy-model"]
    assert deploy["inputs"]["artifacts"]["verdict"]["componentInputArtifact"] == "pipelinechannel--gate-model-verdict"
    assert deploy["inputs"]["parameters"]["canary_percent"]["componentInputParameter"] == \
        "pipelinechannel--canary_percent"
    defaults = {name: p.get("defaultValue") for name, p in spec["root"]["inputDefinitions"]["parameters"].items()}
    assert (defaults["tolerance"], defaults["require_beat_baseline"], defaults["canary_percent"]) == (0.0, False, 100)
    # On a cluster the gate reads the store and the serving labels like the deploy step.
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-gate-model"]["pvcMount"][0]["mountPath"] == "/models"
    assert executors["exec-gate-model"]["secretAsVolume"][0]["optional"] is True


# --------------------------------------------------------------------------- identical models

def test_a_model_identical_to_the_serving_one_is_refused_whatever_its_scores():
    champion = Champion(3, 0.58, content_hash="abc123")
    verdict = gate(0.6, champion, content_hash="abc123")
    assert not verdict.deploy
    assert "content: identical to serving version 3 (content hash abc123) -> FAIL, not deployed again" \
        in verdict.comparisons
    assert "identical to serving version 3" in verdict.reason and "would change nothing" in verdict.reason
    assert gate(0.6, champion, content_hash="def456").deploy
    assert "content: differs from serving version 3 -> pass" in gate(0.6, champion, content_hash="def456").comparisons
    canary = Champion(4, 0.59, content_hash="def456")
    assert "identical to serving version 4" in gate(0.6, champion, content_hash="def456", served=(canary,)).reason
    unrecorded = gate(0.6, Champion(3, 0.58), content_hash="abc123")
    assert unrecorded.deploy and "content: a serving version has no recorded content hash -> not compared" \
        in unrecorded.comparisons


def test_the_step_refuses_to_deploy_the_serving_model_again_and_fills_in_the_report(tmp_path):
    store = tmp_path / "store"
    decision, verdict = run_gate_step(tmp_path, 0.56, store, model_bytes=b"same trees")
    assert decision == "deploy"
    recorded_hash = verdict.metadata["evaluation"]["content_hash"]
    assert len(recorded_hash) == 64
    model = tmp_path / "deployed"
    model.mkdir()
    (model / "model.bst").write_bytes(b"same trees")
    model_store.publish_version(model, store, "sp500", verdict.metadata["evaluation"])
    model_store.write_labels(store / "sp500", ServingLabels(stable=1))
    assert model_store.read_evaluation(store / "sp500", 1)["content_hash"] == recorded_hash

    again, verdict = run_gate_step(tmp_path, 0.57, store, model_bytes=b"same trees")
    assert again == "refuse"
    assert "identical to serving version 1" in verdict.metadata["reason"]
    decided = (tmp_path / "report-0.57.html").read_text()
    assert "REFUSED" in decided and "identical to serving version 1" in decided
    assert "Not decided yet" not in decided and "<h2>Metrics</h2>" in decided  # the rest of the page is kept
    for line in verdict.metadata["comparisons"]:
        assert line.partition(": ")[2].partition(" -> ")[0].replace(">", "&gt;").replace("<", "&lt;") in decided


def test_the_step_takes_the_content_hash_the_train_step_recorded(tmp_path):
    store = tmp_path / "store"
    _, verdict = run_gate_step(tmp_path, 0.56, store, model_metadata={"content_hash": "f" * 64})
    assert verdict.metadata["evaluation"]["content_hash"] == "f" * 64  # not the hash of the file's bytes
