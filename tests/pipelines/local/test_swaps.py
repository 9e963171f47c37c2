"""Swapping kfp.local's module attributes, and environment variables, for the length of a run."""

import os
import types

import pytest

from pipelines.local.swaps import environment, swapped


def test_the_original_attribute_comes_back_even_when_the_run_fails():
    module = types.SimpleNamespace(Handler="kfp's")
    with pytest.raises(KeyboardInterrupt):
        with swapped(module, "Handler", "ours") as original:
            assert (module.Handler, original) == ("ours", "kfp's")
            raise KeyboardInterrupt
    assert module.Handler == "kfp's"


def test_variables_are_set_inside_and_as_they_were_after(monkeypatch):
    monkeypatch.setenv("SWAPS_TEST_SET", "before")
    monkeypatch.delenv("SWAPS_TEST_UNSET", raising=False)
    with environment({"SWAPS_TEST_SET": "during", "SWAPS_TEST_UNSET": "during"}):
        assert os.environ["SWAPS_TEST_SET"] == os.environ["SWAPS_TEST_UNSET"] == "during"
        os.environ["SWAPS_TEST_OTHER"] = "kept"  # not one of ours: left alone
    assert os.environ["SWAPS_TEST_SET"] == "before" and "SWAPS_TEST_UNSET" not in os.environ
    assert os.environ.pop("SWAPS_TEST_OTHER") == "kept"
