"""Compile-time cluster settings: the workspace claim's patch, the image pull
secret, and every step's resources from its pipeline's spec (and no KFP-level retry)."""

import pytest
import yaml
from conftest import compile_documents
from kfp import dsl
from standins.manifests import validate

from components.common.errors import InputError
from components.settings import cluster as cluster_settings
from components.settings import resources
from components.settings.cluster import ClusterSettings, apply_cluster_settings, pipeline_config
from pipelines import registry


def compile_variant(tmp_path, entry, gpu) -> tuple[dict, dict]:
    return compile_documents(entry.name, tmp_path / f"{registry.compiled_name(entry, gpu)}.yaml", gpu)


def all_tasks(spec: dict) -> dict[str, dict]:
    """Every task of the package, the ones inside conditions and loops too."""
    found = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        found.update(component.get("dag", {}).get("tasks", {}))
    return found


def test_defaults_ask_for_read_write_once_and_the_default_class(monkeypatch):
    for name in ("WORKSPACE_ACCESS_MODE", "WORKSPACE_STORAGE_CLASS", "IMAGE_PULL_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert ClusterSettings.from_env().pvc_spec_patch() == {"accessModes": ["ReadWriteOnce"]}
    config = pipeline_config("3Gi").workspace.get_workspace()
    assert config == {"size": "3Gi", "kubernetes": {"pvcSpecPatch": {"accessModes": ["ReadWriteOnce"]}}}


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("WORKSPACE_ACCESS_MODE", "ReadWriteMany")
    monkeypatch.setenv("WORKSPACE_STORAGE_CLASS", "filestore-rwx")
    assert ClusterSettings.from_env().pvc_spec_patch() == {
        "accessModes": ["ReadWriteMany"], "storageClassName": "filestore-rwx"}


@pytest.mark.parametrize("variable, value, message", [
    ("WORKSPACE_ACCESS_MODE", "ReadOnlyMany", "WORKSPACE_ACCESS_MODE 'ReadOnlyMany' is not one of"),
    ("WORKSPACE_ACCESS_MODE", "rwo", "WORKSPACE_ACCESS_MODE 'rwo'"),
    ("WORKSPACE_STORAGE_CLASS", "Fast SSD", "WORKSPACE_STORAGE_CLASS 'Fast SSD' is not a Kubernetes object name"),
    ("IMAGE_PULL_SECRET", "-regcred", "IMAGE_PULL_SECRET '-regcred'"),
])
def test_bad_settings_fail_the_compile_naming_the_variable(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(InputError, match=message):
        ClusterSettings.from_env()


VARIANTS = registry.variants()


@pytest.mark.parametrize("entry, gpu", VARIANTS, ids=[registry.compiled_name(*v) for v in VARIANTS])
def test_every_step_has_requests_limits_and_none_is_retried_by_kfp(tmp_path, monkeypatch, entry, gpu):
    monkeypatch.setenv("IMAGE_PULL_SECRET", "regcred")
    spec, platform = compile_variant(tmp_path, entry, gpu)
    executors = spec["deploymentSpec"]["executors"]
    assert executors
    for name, executor in executors.items():
        sizes = executor["container"].get("resources", {})
        for field in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"):
            assert sizes.get(field), f"{name} has no {field}"
        assert float(sizes["cpuLimit"]) >= float(sizes["cpuRequest"])
        assert float(sizes["memoryLimit"]) >= float(sizes["memoryRequest"])
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(kubernetes) == set(executors), "every step's pod gets the pull secret"
    for name in executors:
        assert [secret["secretName"] for secret in kubernetes[name]["imagePullSecret"]] == ["regcred"], name
    # A KFP retry would repeat a permanent error: transient ones are retried inside the steps.
    assert [name for name, task in all_tasks(spec).items() if "retryPolicy" in task] == []


def test_without_a_pull_secret_none_is_asked_for(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGE_PULL_SECRET", raising=False)
    _, platform = compile_variant(tmp_path, registry.get("sp500"), False)
    assert "imagePullSecret" not in yaml.safe_dump(platform)


def test_the_table_gives_the_deploy_step_of_every_pipeline_and_refuses_an_unknown_step():
    def row(pipeline: str, component: str) -> resources.StepResources:
        return resources.resources_for(registry.get(pipeline).resources, component, pipeline)

    assert row("mnist", "deploy-model") == resources.SHARED["deploy-model"]
    assert row("crypto", "evaluate") != row("sp500", "evaluate")
    with pytest.raises(InputError, match="step 'tune' of pipeline 'sp500' has no resources"):
        row("sp500", "tune")


def test_a_pipeline_with_a_step_missing_from_the_table_does_not_compile():
    @dsl.component(base_image="python:3.11")
    def unlisted_step() -> str:
        return "x"

    with pytest.raises(InputError, match="step 'unlisted-step' of pipeline 'sp500' has no resources"):
        @dsl.pipeline(name="sp500", pipeline_config=cluster_settings.pipeline_config("1Gi"))
        def partial():
            unlisted_step()
            apply_cluster_settings(registry.get("sp500").resources)


# --------------------------------------------------------------------------- who the steps run as (STEP_USER)

# What the KFP backend adds to every step's container (kfp-kubernetes 2.17, set_security_context's notes).
BACKEND_HARDENING = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                     "seccompProfile": {"type": "RuntimeDefault"}}


def rendered_step_pod(executor: str, platform: dict, image: str) -> dict:
    """The pod the backend makes for one step, as far as the package decides it."""
    asked = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][executor]["securityContext"]
    context = {**BACKEND_HARDENING, **{key: value if isinstance(value, bool) else int(value)
                                       for key, value in asked.items()}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": executor.replace("exec-", "step-")},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "main", "image": image, "securityContext": context}]}}


def meets_restricted(container_context: dict) -> bool:
    """The Pod Security "restricted" level's checks that a container's securityContext decides
    (with the backend's hardening added, only the identity fields differ between the modes)."""
    return (container_context.get("runAsNonRoot") is True and container_context.get("runAsUser", 1) != 0
            and container_context.get("allowPrivilegeEscalation") is False
            and container_context.get("capabilities", {}).get("drop") == ["ALL"]
            and container_context.get("seccompProfile", {}).get("type") in ("RuntimeDefault", "Localhost"))


@pytest.mark.parametrize("step_user, uid, restricted", [("root", 0, False), ("nonroot", 1000, True)])
def test_every_step_says_who_it_runs_as_and_the_rendered_step_container_is_valid(tmp_path, monkeypatch, step_user, uid,
                                                                      restricted):
    monkeypatch.setenv("STEP_USER", step_user)
    spec, platform = compile_variant(tmp_path, registry.get("mnist"), False)
    executors = spec["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        pod = rendered_step_pod(name, platform, executor["container"]["image"])
        validate(pod)
        context = pod["spec"]["containers"][0]["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, uid)
        assert meets_restricted(context) is restricted, name


def test_an_unknown_step_user_fails_the_compile(monkeypatch):
    monkeypatch.setenv("STEP_USER", "jovyan")
    with pytest.raises(InputError, match="STEP_USER 'jovyan' is not one of root, nonroot"):
        ClusterSettings.from_env()
