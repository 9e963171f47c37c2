"""The docs: the site builds with MkDocs in strict mode (a broken link, a page left out of nav or a
missing included file fails), loads nothing from the network, includes what it claims to; the
README stays a front page whose links resolve; the components page's example compiles."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

INCLUDED_FROM_THE_REPOSITORY = ("pipelines", "bench")  # what the pages include with --8<--


def build(config_dir: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(config_dir / "mkdocs.yml"), "--site-dir", str(site)],
                          capture_output=True, text=True, timeout=300, cwd=config_dir)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = build(REPO, out)
    assert built.returncode == 0, built.stderr
    return out


def copy_of_the_docs(tmp_path: Path) -> Path:
    """mkdocs.yml and docs/ copied, what they include linked: a tree to break on purpose."""
    tmp_path.mkdir()
    shutil.copy(REPO / "mkdocs.yml", tmp_path)
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    for name in INCLUDED_FROM_THE_REPOSITORY:
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def test_every_page_is_built_with_its_included_parts(site):
    pages = {path.relative_to(site).as_posix() for path in site.rglob("index.html")}
    assert {"index.html", "pipelines/sp500/index.html", "pipelines/crypto/index.html",
            "pipelines/mnist/index.html", "release-and-serving/index.html", "cluster/index.html",
            "containers/index.html", "troubleshooting/index.html", "components/index.html",
            "architecture/index.html", "performance/index.html", "tracking/index.html"} <= pages
    for page in site.rglob("*.html"):
        assert "--8&lt;--" not in page.read_text(), f"{page}: a snippet was not included"
    sp500 = (site / "pipelines/sp500/index.html").read_text()
    assert 'id="the-sp500-pipeline"' in sp500, "pipelines/sp500/README.md is not included"
    assert "<code>num_lags</code>" in sp500, "the generated parameter table is not included"
    performance = (site / "performance/index.html").read_text()
    assert "peak memory (MB)" in performance, "bench/results.md's crypto section is not included"


@pytest.mark.parametrize("page", sorted(path.relative_to(REPO / "docs").as_posix()
                                        for path in (REPO / "docs").rglob("*.md") if "-parameters" not in path.name))
def test_every_fenced_block_renders_as_code(site, page):
    """A fence Python-Markdown does not see (one inside a list item) shows its language as text."""
    source = (REPO / "docs" / page).read_text()
    fences = len(re.findall(r"^\s*```", source, re.M)) // 2
    html = (site / page.removesuffix(".md").removesuffix("index") / "index.html").read_text()
    assert html.count("<pre") >= fences, f"{page}: {fences} fenced blocks, {html.count('<pre')} rendered"


def test_a_numbered_list_with_code_in_it_keeps_counting(site):
    cluster = (site / "cluster" / "index.html").read_text()
    steps = cluster[cluster.index('id="1-before-you-upload"'):cluster.index('id="2-build-and-publish')]
    assert steps.count("<ol>") == 1 and "A private registry needs a pull secret" in steps


def test_every_picture_is_on_a_page():
    pages = "".join(path.read_text() for path in (REPO / "docs").rglob("*.md"))
    unused = [path.name for path in (REPO / "docs" / "img").iterdir() if f"img/{path.name}" not in pages]
    assert unused == [], f"pictures no page shows: {unused}"


def test_the_site_loads_nothing_from_the_network(site):
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert not re.search(r'<script[^>]+src="(https?:)?//', text), page
        assert not re.search(r'<link[^>]+href="(https?:)?//', text), page


@pytest.mark.parametrize("breakage, said", [
    (lambda docs: (docs / "index.md").write_text((docs / "index.md").read_text() + "\n[gone](gone.md)\n"),
     "gone.md"),
    (lambda docs: (docs / "release-and-serving.md").write_text(
        (docs / "release-and-serving.md").read_text() + "\n[gone](cluster.md#no-such-heading)\n"),
     "no-such-heading"),
    (lambda docs: (docs / "pipelines" / "sp500.md").write_text('--8<-- "pipelines/sp500/GONE.md"\n'), "GONE.md"),
    (lambda docs: (docs / "orphan.md").write_text("# Not in nav\n"), "orphan.md"),
], ids=["broken link", "broken anchor", "missing include", "page not in nav"])
def test_strict_mode_fails_the_build(tmp_path, breakage, said):
    tree = copy_of_the_docs(tmp_path / "tree")
    breakage(tree / "docs")
    built = build(tree, tmp_path / "site")
    assert built.returncode != 0 and said in built.stderr + built.stdout


def test_the_readme_is_a_front_page_that_keeps_the_test_command():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make test" in readme  # .ci/run: the README's own test command
    assert re.search(r"`make test` takes (?:about )?\d+(?: to \d+)? min", readme), "the test suite's time is not given"
    assert re.search(r"the container suite\b.*?\b\d+ s\b", readme, re.S | re.I), \
        "the container suite's time is not given"


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_relative_links_outside_the_site_resolve(name):
    text = re.sub(r"```.*?```|`[^`\n]*`", "", (REPO / name).read_text(), flags=re.S)  # code shows, never links
    targets = [target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", text)
               if not re.match(r"[a-z]+:|#", target)]
    assert targets, f"{name} links to nothing"
    missing = [target for target in targets if not (REPO / target).exists()]
    assert missing == [], f"{name} links to missing files: {missing}"


def test_the_components_page_example_compiles(tmp_path):
    """docs/components.md's pipeline, as a reader copies it, next to the project's compiled/."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "components.md").read_text(), re.S)
    (tmp_path / "my_sp500.py").write_text(blocks[0])
    (tmp_path / "compiled").symlink_to(REPO / "compiled")
    done = subprocess.run([sys.executable, "my_sp500.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    spec = next(yaml.safe_load_all((tmp_path / "my-sp500.yaml").read_text()))
    assert {"exec-gate-model", "exec-deploy-model"} <= set(spec["deploymentSpec"]["executors"])
    conditions = [task["triggerPolicy"]["condition"] for task in spec["root"]["dag"]["tasks"].values()
                  if "triggerPolicy" in task]
    assert conditions == ["inputs.parameter_values['pipelinechannel--gate-model-Output'] == 'deploy'"]
