"""`make help`: every target once per group it belongs to, local and cluster apart, descriptions aligned;
`make setup`: pinned packages only, and none that slows every TensorFlow start."""

import re
import subprocess
from importlib import metadata

from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def test_help_separates_local_from_cluster_targets_and_expands_nothing_raw():
    shown = subprocess.run(["make", "-s", "-C", str(REPO), "help"], capture_output=True, text=True, timeout=60,
                           check=True).stdout
    assert "$(" not in shown
    local, cluster = shown.split("\n\n")[:2]
    assert local.startswith("On this machine") and cluster.startswith("On a Kubeflow cluster")
    local_targets = re.findall(r"^  make (\S+)", local, re.M)
    cluster_targets = re.findall(r"^  make (\S+)", cluster, re.M)
    assert {"run", "serve", "predict", "test"} <= set(local_targets)
    assert {"upload", "schedule", "publish", "deployer"} <= set(cluster_targets)
    assert not {"upload", "publish", "schedule"} & set(local_targets)
    declared = set(re.findall(r"^([a-z-]+):.*## ", (REPO / "Makefile").read_text(), re.M))
    assert set(local_targets) | set(cluster_targets) == declared, "a target left out of make help"
    rows = [line for line in (local + "\n" + cluster).splitlines() if line.startswith("  make")]
    columns = {re.match(r"  make \S+\s+", line).end() for line in rows}
    assert len(columns) == 1, "descriptions not aligned"


def test_set_up_installs_only_pinned_packages():
    """pip itself included: set-up on a fresh clone gets the same packages every time."""
    installs = [line.strip() for line in (REPO / "Makefile").read_text().splitlines() if "pip install" in line]
    assert installs
    for line in installs:
        named = re.sub(r"^.*pip install( --quiet)?( --no-deps)?", "", line.split("#")[0]).split()
        assert "--upgrade" not in named and "-U" not in named, line
        assert all(re.fullmatch(r"[\w.-]+==[\w.]+|-r|-e|requirements[\w-]*\.txt|'\.\[[\w,]+\]'", word)
                   for word in named), f"an unpinned install: {line}"


def installed_closure(name: str, extras: tuple[str, ...] = ()) -> set[str]:
    """The distributions that installing `name` (with `extras`) brings, from the installed metadata."""
    found, walked, pending = set(), set(), [(name, extras)]
    while pending:
        current, wanted = pending.pop()
        if (canonicalize_name(current), wanted) in walked:  # a package met again with other extras is walked again
            continue
        walked.add((canonicalize_name(current), wanted))
        try:
            requires = metadata.requires(current) or []
        except metadata.PackageNotFoundError:  # required, but not installed here: counted, not walked
            continue
        for line in requires:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(e) for e in environments):
                continue
            found.add(canonicalize_name(requirement.name))
            pending.append((requirement.name, tuple(sorted(requirement.extras))))
    return found


def test_set_up_brings_no_scikit_learn():
    """An installed scikit-learn makes every `import tensorflow` slower (Keras imports its wrappers
    for it; docs/performance.md), and nothing here uses it: mlxtend, which requires it, is installed
    --no-deps (requirements-no-deps.txt)."""
    brought = installed_closure("kfp-ml-pipelines", ("local", "test"))
    assert {"tensorflow", "keras", "lightgbm", "scipy"} <= brought  # the walk reaches dependencies of dependencies
    assert "scikit-learn" not in brought
    assert "mlxtend" not in brought
