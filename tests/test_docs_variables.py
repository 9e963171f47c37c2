"""Every variable the docs tell users to set reaches the code: make reads it, or (when the code reads
it from the environment) make exports it, so that a line in local.mk works as the docs say."""

import json
import re
import shutil
import subprocess

import pytest
from conftest import REPO

DOC_FILES = [*sorted((REPO / "docs").rglob("*.md")), REPO / "README.md", REPO / "CONTRIBUTING.md",
             *sorted(REPO.glob("pipelines/*/README.md")), REPO / "examples" / "README.md"]
CODE_FILES = [path for folder in ("components", "pipelines", "images", "bench", "deploy")
              for path in (REPO / folder).rglob("*.py")]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SCRIPTS = sorted((REPO / "tests" / "containers").glob("*.sh"))
# Named in the docs, but not settings of this project's: nothing here should read them.
NOT_SETTINGS = {
    "NS": "a shell variable of the multi-user example in docs/cluster.md",
    "DOCKER_BUILDKIT": "read by the docker client, which images/build.py runs",
    "TF_USE_LEGACY_KERAS": "an alternative the mnist README names and did not take",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "what a step sets for MLflow's client, unless the pod sets it",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "what a step sets for MLflow's client, unless the pod sets it",
}
NAME = r"[A-Z][A-Z0-9_]*[A-Z0-9]"


def documented_variables() -> dict[str, str]:
    """Each variable a doc sets, with the first file that sets it: `NAME=value` on a command line
    (`make run WAIT=1`, `GPU_COUNT=2 make compile`, `export KFP_HOST=…`), `NAME = value` in a
    make block or a line echoed into local.mk, and the first column of a settings table."""
    found = {}
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        names = re.findall(rf"(?:^|[\s`(]|export )({NAME})=", text, re.M)
        names += [name for block in re.findall(r"```make\n(.*?)```", text, re.S)
                  for name in re.findall(rf"^#?\s*({NAME}) \??=", block, re.M)]
        names += re.findall(rf"'({NAME}) = [^']*' >> local\.mk", text)
        names += [name for row in re.findall(r"^\| `[A-Z][^|]*\|", text, re.M)
                  for name in re.findall(rf"`({NAME})`", row)]
        for name in names:
            found.setdefault(name, path.relative_to(REPO).as_posix())
    return found


def read_by_the_code() -> set[str]:
    """Names that the project's code and scripts read from the environment (or hand to something
    that does): every quoted upper-case name in its Python, every `$NAME` in its shell scripts."""
    names = set()
    for path in CODE_FILES:
        names |= set(re.findall(rf"[\"']({NAME})[\"']", path.read_text(encoding="utf-8")))
    for path in SCRIPTS:
        names |= set(re.findall(rf"\$\{{?({NAME})", path.read_text(encoding="utf-8")))
    for path in NOTEBOOKS:
        code = "".join("".join(cell["source"]) for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
                       if cell["cell_type"] == "code")
        names |= set(re.findall(rf"[\"']({NAME})[\"']", code))
    return names


def read_by_make() -> set[str]:
    return set(re.findall(rf"\$\(({NAME})\)", (REPO / "Makefile").read_text(encoding="utf-8")))


def recipe_environment(tmp_path, local_mk: str) -> dict[str, str]:
    """The environment a recipe of the project's Makefile sees, with `local_mk` as local.mk."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "local.mk").write_text(local_mk)
    (tmp_path / "probe.mk").write_text("probe:\n\t@env -0 > recipe-environment\n")
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(["make", "-s", "-f", "Makefile", "-f", "probe.mk", "probe"], cwd=tmp_path, env=clean,
                   check=True, capture_output=True, timeout=60)
    pairs = (tmp_path / "recipe-environment").read_text().split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def test_the_docs_name_the_settings_this_test_checks():
    documented = documented_variables()
    assert {"IMAGE", "GPU_COUNT", "GPU_NODE_SELECTOR", "KFP_HOST", "WAIT", "NAMESPACE", "DOCKER"} <= set(documented)


def test_every_documented_variable_is_read_by_make_or_by_the_code():
    known = read_by_make() | read_by_the_code()
    unread = {name: where for name, where in documented_variables().items()
              if name not in known and name not in NOT_SETTINGS}
    assert unread == {}, f"the docs set variables that nothing reads: {unread}"


def test_a_setting_the_code_reads_reaches_it_from_local_mk(tmp_path):
    """What make does not read itself, the code reads from its environment: in local.mk it must
    be exported by make."""
    from_environment = sorted((set(documented_variables()) & read_by_the_code()) - read_by_make() - set(NOT_SETTINGS))
    environment = recipe_environment(tmp_path, "".join(f"{name} = set-in-local-mk\n" for name in from_environment))
    lost = [name for name in from_environment if environment.get(name) != "set-in-local-mk"]
    assert lost == [], f"set in local.mk, these never reach the code (export them in the Makefile): {lost}"


@pytest.mark.parametrize("local_mk, expected", [
    ("", None),  # unset stays unset: the code's default selector
    ("GPU_NODE_SELECTOR =\n", ""),  # empty: no selector, as docs/cluster.md says
])
def test_an_unset_setting_stays_unset(tmp_path, local_mk, expected):
    assert recipe_environment(tmp_path, local_mk).get("GPU_NODE_SELECTOR") == expected
