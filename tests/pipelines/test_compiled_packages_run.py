"""The uploaded YAML runs as it is.

The Pipelines UI runs the compiled package, not the Python that compiled it,
and in the image the package is a regular install, not this checkout. So this
test installs the project as the image's Dockerfile does (its files copied,
`pip install .`, here into a folder of its own with --no-deps: the test
environment already holds the pinned dependencies), loads every CPU package
from compiled/*.yaml, and runs it through kfp.local from a temporary working
directory with only that install on the path. The GPU variants differ from
these only in image and accelerator settings, which the local runner ignores.

Small parameters keep it to a few minutes: one epoch, a small network, a
sweep of two trials (the loop and its collected models, as with the default's
four), a week of generated crypto data, and a gate of 0 so that the deploy
step runs (crypto's weighted correlation can be negative, so its deploy may not).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

CHEAP_PARAMETERS = {
    "sp500": {"epochs": 1, "model_type": "flat", "threshold": 0.0},
    "mnist": {"sweep_grid": [[0.003, 0], [0.003, 1]], "epochs": 1, "hidden_units": 16, "batch_size": 256,
              "threshold": 0.0},
    "crypto": {"generated_start": "2021-04-24", "generated_end": "2021-05-01", "valid_start": "2021-04-29",
               "n_estimators": 20, "early_stopping_rounds": 5, "threshold": 0.0},
}
DEPLOY_ALWAYS_PASSES = {"sp500", "mnist"}

# Run in a fresh interpreter: kfp's loader, not our pipeline functions, builds the pipeline.
RUNNER = """
import importlib, json, sys
from pathlib import Path
from kfp import components as kfp_components, local

package, work, site, params = sys.argv[1], Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
ours = importlib.import_module("components")
assert ours.__file__.startswith(site), f"components imported from {ours.__file__}, not the install in {site}"
(work / "workspace").mkdir()
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work / "root"),
           workspace_root=str(work / "workspace"), raise_on_error=True)
pipeline = kfp_components.load_component_from_file(package)
pipeline(**params)
print("PACKAGE RAN", package)
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project installed like in the image (not editable), in a folder of its own."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("components", "pipelines"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path_factory.mktemp("site")
    # No build isolation: the build backend pinned in the test extra, not one downloaded for the build.
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(source)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (site / "components" / "release" / "deploy.py").is_file()
    assert not (site / "components" / "__editable__").exists()
    return site


def cpu_packages() -> list[Path]:
    return sorted(p for p in (REPO / "compiled").glob("*.yaml") if not p.stem.endswith("-gpu"))


@pytest.mark.parametrize("package", cpu_packages(), ids=lambda p: p.stem)
def test_the_compiled_package_runs_from_its_yaml_with_the_package_installed(installed, tmp_path, package):
    spec = next(yaml.safe_load_all(package.read_text()))
    declared = spec["root"]["inputDefinitions"]["parameters"]
    store = tmp_path / "model_store"
    params = {name: value for name, value in {**CHEAP_PARAMETERS.get(package.stem, {}),
                                              "model_base_path": str(store)}.items() if name in declared}
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(installed),
           "TF_CPP_MIN_LOG_LEVEL": "2", "MPLCONFIGDIR": str(tmp_path / "mpl")}
    done = subprocess.run([sys.executable, "-c", RUNNER, str(package), str(work), str(installed), json.dumps(params)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and f"PACKAGE RAN {package}" in output, output[-4000:]
    model_name = declared["model_name"]["defaultValue"]
    if package.stem in DEPLOY_ALWAYS_PASSES:
        assert sorted(p.name for p in (store / model_name).iterdir() if p.is_dir()) == ["1"], output[-2000:]
