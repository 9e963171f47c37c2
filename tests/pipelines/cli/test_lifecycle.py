"""`promote` and `rollback` on the local model store, through the command line.

(On a cluster the same commands rewrite the serving ConfigMap: test_kube_serving_labels.py.)
"""

import pytest

from components.store import folder as model_store
from components.store.serving_labels import ServingLabels
from pipelines.cli import main as cli


@pytest.fixture
def store(tmp_path):
    for number in (1, 2, 3):
        version = tmp_path / "store" / "sp500" / str(number)
        version.mkdir(parents=True)
        (version / "saved_model.pb").write_text(str(number))
    model_store.write_labels(tmp_path / "store" / "sp500",
                             ServingLabels(stable=2, canary=3, canary_percent=25, known_versions=(1, 2, 3)))
    return tmp_path / "store"


def command(store, *words):
    return cli.main([*words[:2], "--model-base-path", str(store), *words[2:]])


def labels(store):
    return model_store.read_labels(store / "sp500").describe()


def test_promote_makes_the_canary_stable_once(store, capsys):
    assert command(store, "promote", "sp500") == 0
    assert capsys.readouterr().out == "sp500: stable=3 (was stable=2, canary=3 (25% of traffic))\n"
    assert labels(store) == "stable=3"
    assert command(store, "promote", "sp500") == 0
    assert capsys.readouterr().out == "sp500: unchanged, stable=3\n"


def test_rollback_drops_the_canary_or_goes_to_a_named_version(store, capsys):
    assert command(store, "rollback", "sp500") == 0
    assert labels(store) == "stable=2"
    assert command(store, "rollback", "sp500", "--to", "1") == 0
    assert labels(store) == "stable=1"
    capsys.readouterr()
    assert command(store, "rollback", "sp500", "--to", "1") == 0
    assert capsys.readouterr().out == "sp500: unchanged, stable=1\n"


@pytest.mark.parametrize("words, message", [
    (("promote", "sp500", "--version", "9"), "error: version 9 of sp500 is not in the model store (versions: 1, 2, 3)"),
    (("rollback", "sp500", "--to", "0"), "error: version 0 of sp500 is not in the model store (versions: 1, 2, 3)"),
    (("promote", "mnist"), "error: model 'mnist' has no versions in"),
])
def test_unknown_versions_and_models_are_refused_in_one_line(store, capsys, words, message):
    before = (store / "sp500" / "labels.json").read_text()
    assert command(store, *words) == 1
    error = capsys.readouterr().err
    assert error.startswith(message) and error.count("\n") == 1
    assert (store / "sp500" / "labels.json").read_text() == before


def test_a_store_without_labels_starts_from_the_latest_version(store, capsys):
    (store / "sp500" / "labels.json").unlink()
    assert command(store, "rollback", "sp500", "--to", "2") == 0
    assert capsys.readouterr().out == "sp500: stable=2 (was stable=3)\n"


def test_options_may_come_before_the_model_name(store, capsys):
    """The verb's options and its model name in any order (`rollback --to 1 ... sp500`)."""
    assert cli.main(["rollback", "--to", "1", "--model-base-path", str(store), "sp500"]) == 0
    assert capsys.readouterr().out.startswith("sp500: stable=1 (was stable=2, canary=3")
