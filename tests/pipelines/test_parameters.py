"""Pipeline parameters given as text: typed, and each release setting checked by its one declared check."""

import pytest

from components.common.errors import InputError
from pipelines.parameters import declared_by, resolve
from pipelines.registry import get


@pytest.fixture(scope="module")
def sp500_parameters():
    return declared_by(get("sp500").make_pipeline())


@pytest.mark.parametrize("given, message", [
    ({"confidence": "1"}, "confidence must be strictly between 0 and 1, got 1"),
    ({"max_drift": "-1"}, "max_drift must be at least 0, got -1"),
    ({"tolerance": "2"}, "tolerance must be between 0 and 1, got 2"),
    ({"threshold": "1.5"}, "threshold must be between 0 and 1, got 1.5"),
    ({"canary_percent": "0"}, "canary_percent must be between 1 and 100"),
    ({"deploy_if_champion_incomparable": "perhaps"}, "deploy_if_champion_incomparable='perhaps' is not true or false"),
])
def test_a_release_setting_out_of_its_range_is_refused_before_the_run(sp500_parameters, given, message):
    with pytest.raises(InputError, match=message):
        resolve("sp500", sp500_parameters, given)


def test_the_new_settings_are_typed(sp500_parameters):
    assert resolve("sp500", sp500_parameters, {"confidence": "0.9", "max_drift": "0.1",
                                               "deploy_if_champion_incomparable": "true"}) == \
        {"confidence": 0.9, "max_drift": 0.1, "deploy_if_champion_incomparable": True}
