"""The examples in examples/, run as a user runs them (`python examples/<name>.py ...`), so they cannot rot.

run_locally.py runs a whole pipeline through kfp.local (e2e); model_store.py and
serve_and_predict.py read and serve the model store that run fills, as the README chains them.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

PUBLISHED = REPO / "compiled" / "components"


def run_example(name: str, *args: str, cwd: Path, succeeds: bool = True) -> subprocess.CompletedProcess:
    """`python examples/<name>.py args` in `cwd`, with this checkout importable (as after `make setup`)."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(REPO / "examples" / f"{name}.py"), *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600, env=environment)
    if succeeds:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("name, said", [
    ("model_store", "no published version of 'my-sp500'"),
    ("serve_and_predict", "--model-base-path model_store: no such folder"),
])
def test_an_example_without_its_store_ends_in_one_error_line(tmp_path, name, said):
    """Run without arguments where no store is: one `error:` line naming the store, no traceback."""
    result = run_example(name, cwd=tmp_path, succeeds=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith("error: "), result.stderr
    assert said in result.stderr
    assert result.stdout == ""


def test_composed_pipeline_compiles_from_the_published_components(tmp_path):
    run_example("compose_components", "--output", "my-sp500.yaml", cwd=tmp_path)

    spec, platform = yaml.safe_load_all((tmp_path / "my-sp500.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"download-prices", "preprocess", "train", "evaluate", "gate-model", "condition-1"}
    assert tasks["condition-1"]["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--gate-model-Output'] == 'deploy'")
    deploy = spec["components"]["comp-condition-1"]["dag"]["tasks"]["deploy-model"]
    assert deploy["inputs"]["artifacts"]["verdict"] == {"componentInputArtifact": "pipelinechannel--gate-model-verdict"}
    assert tasks["condition-1"]["inputs"]["artifacts"]["pipelinechannel--gate-model-verdict"] == {
        "taskOutputArtifact": {"outputArtifactKey": "verdict", "producerTask": "gate-model"}}
    # Each step runs exactly the published component's code in its image.
    for published in ("sp500-download-prices", "sp500-preprocess", "sp500-train-model-cpu", "sp500-evaluate",
                      "gate-model", "deploy-model"):
        (name, executor), = yaml.safe_load((PUBLISHED / f"{published}.yaml").read_text())[
            "deploymentSpec"]["executors"].items()
        assert spec["deploymentSpec"]["executors"][name] == executor, published
    kubernetes = platform["platforms"]["kubernetes"]
    assert kubernetes["pipelineConfig"]["workspace"]["size"] == "1Gi"
    for step in ("exec-gate-model", "exec-deploy-model"):
        assert kubernetes["deploymentSpec"]["executors"][step]["pvcMount"][0]["mountPath"] == "/models"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """run_locally.py's run with small parameters: its output folder and what it printed."""
    output_dir = tmp_path_factory.mktemp("run")
    result = run_example("run_locally", "--output-dir", str(output_dir), "--epochs", "1", cwd=output_dir)
    return output_dir, result.stdout


@pytest.mark.e2e
def test_local_run_deploys_into_its_own_model_store(local_run):
    output_dir, printed = local_run
    version = output_dir / "model_store" / "my-sp500" / "1"
    assert f"model store: {output_dir / 'model_store'} (deployed: {version})" in printed
    assert (version / "saved_model.pb").is_file()
    assert json.loads((version / "evaluation.json").read_text())["gate"]["decision"] == "deploy"
    assert json.loads((version.parent / "labels.json").read_text())["stable"] == 1
    report = next(output_dir.glob("artifacts/my-sp500-*/evaluate/report"))
    assert f"HTML report of evaluate: {report}" in printed
    assert "always_up_accuracy" in report.read_text()


@pytest.mark.e2e
def test_model_store_lists_versions_evaluations_and_labels(local_run):
    output_dir, _ = local_run
    printed = run_example("model_store", "--model-base-path", str(output_dir / "model_store"),
                          "--model-name", "my-sp500", cwd=output_dir).stdout
    evaluation = json.loads((output_dir / "model_store" / "my-sp500" / "1" / "evaluation.json").read_text())
    assert printed.splitlines() == [
        f"version 1 [stable]: accuracy {evaluation['metrics']['accuracy']:.4f} on {evaluation['test_set']}, "
        f"run {evaluation['run']}, gate: deploy",
        "serving labels: stable=1"]


@pytest.mark.e2e
def test_server_answers_the_same_over_rest_and_grpc(local_run):
    output_dir, _ = local_run
    printed = run_example("serve_and_predict", "--model-base-path", str(output_dir / "model_store"),
                          "--model-name", "my-sp500", cwd=output_dir).stdout
    answers = re.findall(r"^(RestClient|GrpcClient) my-sp500 version 1, (after \w+): class ([01]) "
                         r"\(probability (0\.\d+|1\.0+)\)$", printed, re.MULTILINE)
    assert [(client, day) for client, day, _, _ in answers] == [
        ("RestClient", "after rises"), ("RestClient", "after falls"),
        ("GrpcClient", "after rises"), ("GrpcClient", "after falls")], printed
    assert [answer[2:] for answer in answers[:2]] == [answer[2:] for answer in answers[2:]]
    assert all(float(probability) >= 0.5 for *_, probability in answers)  # the predicted class's own
