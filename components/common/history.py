"""A training's figures per epoch (or per boosting round), carried in its model's metadata for the reports.

Kept as one JSON string, not as lists: kfp's executor echoes each step's input
into the log one value per line, so lists of numbers would put hundreds of lone
numbers into the log (and, in a local run, onto the terminal).
"""

import json
from typing import Mapping

METADATA_KEY = "history"


def as_metadata(history: Mapping) -> dict[str, str]:
    """`model.metadata.update(as_metadata(history))` records it."""
    return {METADATA_KEY: json.dumps(history, separators=(",", ":"))}


def from_metadata(metadata: Mapping) -> dict:
    """The recorded history, or {} for a model trained without one."""
    text = metadata.get(METADATA_KEY)
    return json.loads(text) if text else {}
