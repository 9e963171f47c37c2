"""The compiled pipeline YAML: parses into KFP's PipelineSpec, is in sync with
pipelines/, gates deploy, and runs every task in the project's images; the
published components in compiled/components/ are in sync too."""

import copy
import os
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from standins.manifests import validate

from components.common.images import VERSION, cpu_image, gpu_image
from pipelines import registry

REPO = Path(__file__).resolve().parents[2]
VARIANTS = [(entry, gpu) for entry, gpu in registry.variants()]
IDS = [registry.compiled_name(entry, gpu) for entry, gpu in VARIANTS]


def load_documents(path: Path) -> tuple[pipeline_spec_pb2.PipelineSpec, dict]:
    documents = list(yaml.safe_load_all(path.read_text()))
    spec = json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
    platform = documents[1] if len(documents) > 1 else {}
    return spec, platform


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A compile in this environment, as `make compile` runs it (`python -m pipelines compile`, a
    process of its own: conftest's compile_documents says why): the compile-time settings (IMAGE,
    GPU_*, …) are the ones `make compile` would see, so compiled/ must match them."""
    out = tmp_path_factory.mktemp("compiled")
    done = run_cli("compile", "--output-dir", str(out), cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.parametrize("name", IDS)
def test_committed_yaml_equals_a_fresh_compile(fresh, name):
    committed = REPO / "compiled" / f"{name}.yaml"
    assert committed.exists(), f"compiled/{name}.yaml is missing: run make compile"
    assert committed.read_text() == (fresh / f"{name}.yaml").read_text(), \
        f"compiled/{name}.yaml is out of date: run make compile and commit it"


def test_no_stray_compiled_files():
    assert sorted(p.stem for p in (REPO / "compiled").glob("*.yaml")) == sorted(IDS)


def test_published_components_equal_a_fresh_compile(fresh):
    """compiled/components/ (pipelines.publish): the same files, the same text."""
    committed_dir, fresh_dir = REPO / "compiled" / "components", fresh / "components"
    committed = sorted(p.name for p in committed_dir.iterdir()) if committed_dir.is_dir() else []
    expected = sorted(p.name for p in fresh_dir.iterdir())
    assert "README.md" in expected and "deploy-model.yaml" in expected
    assert committed == expected, "compiled/components/ lists other files than a fresh compile: run make compile"
    stale = [name for name in expected if (committed_dir / name).read_text() != (fresh_dir / name).read_text()]
    assert stale == [], f"out of date in compiled/components/: {stale}: run make compile and commit them"


def test_published_components_run_in_the_project_image(fresh):
    for path in sorted((fresh / "components").glob("*.yaml")):
        spec, _ = load_documents(path)
        (executor,) = json_format.MessageToDict(spec.deployment_spec)["executors"].values()
        assert executor["container"]["image"] in {cpu_image(), gpu_image()}, path.name
        assert "pip install" not in yaml.safe_dump(executor), f"{path.name} installs packages at run time"


@pytest.mark.parametrize("entry, gpu", VARIANTS, ids=IDS)
def test_every_task_runs_in_the_project_image(fresh, entry, gpu):
    spec, _ = load_documents(fresh / f"{registry.compiled_name(entry, gpu)}.yaml")
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"].values()
    images = {executor["container"]["image"] for executor in executors}
    assert images <= {cpu_image(), gpu_image()}
    assert all(image.endswith(f":{VERSION}") for image in images)
    commands = yaml.safe_dump(json_format.MessageToDict(spec.deployment_spec))
    assert "pip install" not in commands, "steps must not install packages at run time"


@pytest.mark.parametrize("entry, gpu", VARIANTS, ids=IDS)
def test_deploy_is_gated_on_the_metric_and_threshold(fresh, entry, gpu):
    spec, _ = load_documents(fresh / f"{registry.compiled_name(entry, gpu)}.yaml")
    root = json_format.MessageToDict(spec.root)
    conditions = {name: task for name, task in root["dag"]["tasks"].items()
                  if task.get("triggerPolicy", {}).get("condition")}
    assert len(conditions) == 1, "exactly one gated branch"
    (branch_name, branch), = conditions.items()
    condition = branch["triggerPolicy"]["condition"]
    # The gate step decides (threshold, baseline, champion); its single output is tested.
    assert condition == "inputs.parameter_values['pipelinechannel--gate-model-Output'] == 'deploy'", condition
    gate_inputs = root["dag"]["tasks"]["gate-model"]["inputs"]
    assert gate_inputs["artifacts"]["metrics"]["taskOutputArtifact"]["producerTask"] == entry.gate_task
    assert gate_inputs["parameters"]["threshold"] == {"componentInputParameter": "threshold"}
    inner = json_format.MessageToDict(spec.components[branch["componentRef"]["name"]])
    assert "deploy-model" in inner["dag"]["tasks"]
    assert "deploy-model" not in root["dag"]["tasks"], "deploy must only run inside the gate"
    threshold = root["inputDefinitions"]["parameters"]["threshold"]
    assert threshold["parameterType"] == "NUMBER_DOUBLE"
    assert 0 <= threshold["defaultValue"] <= 1


def test_sp500_gate_defaults_to_seventy_percent(fresh):
    spec, _ = load_documents(fresh / "sp500.yaml")
    root = json_format.MessageToDict(spec.root)
    assert root["inputDefinitions"]["parameters"]["threshold"]["defaultValue"] == 0.7


@pytest.mark.parametrize("entry", [e for e, gpu in VARIANTS if gpu], ids=lambda e: e.name)
def test_gpu_variant_requests_an_accelerator_in_the_gpu_image(fresh, entry):
    spec, _ = load_documents(fresh / f"{entry.name}-gpu.yaml")
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"].values()
    gpu_tasks = [e["container"] for e in executors if "accelerator" in e["container"].get("resources", {})]
    assert gpu_tasks, "no task requests a GPU"
    for container in gpu_tasks:
        assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
        assert int(container["resources"]["accelerator"]["resourceCount"]) >= 1
        assert container["image"] == gpu_image()
    cpu_spec, _ = load_documents(fresh / f"{entry.name}.yaml")
    cpu_executors = json_format.MessageToDict(cpu_spec.deployment_spec)["executors"].values()
    assert not any("accelerator" in e["container"].get("resources", {}) for e in cpu_executors)


@pytest.mark.parametrize("entry, gpu", VARIANTS, ids=IDS)
def test_deploy_mounts_the_model_store_and_uses_the_workspace(fresh, entry, gpu):
    spec, platform = load_documents(fresh / f"{registry.compiled_name(entry, gpu)}.yaml")
    deploy = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-deploy-model"]
    assert deploy["pvcMount"][0]["mountPath"] == "/models"
    assert deploy["pvcMount"][0]["pvcNameParameter"]["componentInputParameter"].endswith("model_store_pvc")
    pipeline_config = platform["platforms"]["kubernetes"].get("pipelineConfig", {})
    assert pipeline_config.get("workspace", {}).get("size"), "bulk data goes through the run's workspace"


@pytest.mark.parametrize("entry, gpu", VARIANTS, ids=IDS)
def test_steps_that_touch_the_workspace_are_never_cached(fresh, entry, gpu):
    """The workspace is new in every run while the paths into it are the same
    strings: a cached step would hand on a previous run's results (or files
    that no longer exist). Whatever reads a workspace path or an uncached
    step's output must run again too."""
    spec, _ = load_documents(fresh / f"{registry.compiled_name(entry, gpu)}.yaml")
    tasks = json_format.MessageToDict(spec.root)["dag"]["tasks"]

    def reads_workspace_or_uncached(task: dict, uncached: set[str]) -> bool:
        for value in task.get("inputs", {}).get("parameters", {}).values():
            if "{{$.workspace_path}}" in str(value.get("runtimeValue", {}).get("constant", "")):
                return True
            if value.get("taskOutputParameter", {}).get("producerTask") in uncached:
                return True
        return False

    uncached: set[str] = set()
    while True:
        grown = {name for name, task in tasks.items() if reads_workspace_or_uncached(task, uncached)}
        if grown <= uncached:
            break
        uncached |= grown
    assert uncached, "no step reads the workspace"
    cached = sorted(name for name in uncached if tasks[name].get("cachingOptions", {}).get("enableCache"))
    assert cached == [], f"cached although they read the workspace: {cached}"


# The KFP backend (>= 2.15) builds the run's workspace claim from the
# administrator's default spec (none on a stock install), patched with the
# package's pvcSpecPatch (it refuses any field but these two), and the size.
PATCHABLE_CLAIM_FIELDS = {"accessModes", "storageClassName"}
ACCESS_MODES = {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"}


def backend_workspace_claim(platform: dict, default_spec: dict | None = None) -> dict:
    workspace = platform["platforms"]["kubernetes"]["pipelineConfig"]["workspace"]
    patch = workspace.get("kubernetes", {}).get("pvcSpecPatch", {})
    unknown = sorted(set(patch) - PATCHABLE_CLAIM_FIELDS)
    if unknown:
        raise ValueError(f"unknown fields in PVC spec patch: {unknown}")
    spec = copy.deepcopy(default_spec or {})
    if patch.get("accessModes"):
        spec["accessModes"] = patch["accessModes"]
    if "storageClassName" in patch:
        spec["storageClassName"] = patch["storageClassName"]
    assert workspace.get("size"), "the package must give the workspace size"
    spec["resources"] = {"requests": {"storage": workspace["size"]}}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "run-abc12-kfp-workspace"}, "spec": spec}


def check_claim(claim: dict) -> None:
    """What the API server checks beyond the schema: a claim needs an access mode."""
    validate(claim)
    modes = claim["spec"].get("accessModes") or []
    if not modes or not set(modes) <= ACCESS_MODES:
        raise ValueError(f"spec.accessModes: Required value (got {modes})")


@pytest.mark.parametrize("name", IDS)
def test_the_workspace_claim_the_backend_creates_is_valid_without_an_admin_default(name):
    _, platform = load_documents(REPO / "compiled" / f"{name}.yaml")
    claim = backend_workspace_claim(platform)
    check_claim(claim)
    assert claim["spec"]["accessModes"] == [os.environ.get("WORKSPACE_ACCESS_MODE") or "ReadWriteOnce"]
    assert claim["spec"].get("storageClassName", "") == os.environ.get("WORKSPACE_STORAGE_CLASS", "")


def test_claim_check_refuses_what_the_backend_or_the_api_server_would():
    _, platform = load_documents(REPO / "compiled" / "sp500.yaml")
    workspace = platform["platforms"]["kubernetes"]["pipelineConfig"]["workspace"]
    workspace["kubernetes"]["pvcSpecPatch"] = {}  # what every package carried before: no access mode
    with pytest.raises(ValueError, match="accessModes: Required"):
        check_claim(backend_workspace_claim(platform))
    # An administrator's default spec can supply it; the package's patch still wins.
    admin = backend_workspace_claim(platform, {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs"})
    check_claim(admin)
    workspace["kubernetes"]["pvcSpecPatch"] = {"accessModes": ["ReadWriteOnce"], "volumeMode": "Block"}
    with pytest.raises(ValueError, match="unknown fields in PVC spec patch"):
        backend_workspace_claim(platform)
