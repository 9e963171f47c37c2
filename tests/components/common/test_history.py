"""The training history as the reports receive it from a model's metadata."""

import json

from components.common import history


def test_a_history_travels_as_one_json_string_and_comes_back_whole():
    recorded = {"validation": {"rmse": [0.0042, 0.0041]}, "training": {"rmse": [0.006, 0.0059]}}
    metadata = history.as_metadata(recorded)
    assert isinstance(metadata["history"], str) and "\n" not in metadata["history"]  # one line in kfp's echo
    assert history.from_metadata(json.loads(json.dumps(metadata))) == recorded
    assert history.from_metadata({}) == {}
