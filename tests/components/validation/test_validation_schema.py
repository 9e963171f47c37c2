import numpy as np

from components.validation.schema import find_anomalies, infer_schema
from components.validation.statistics import profile


def stats(**columns):
    return profile(columns, categorical={"Asset_ID"}).statistics


def test_the_schema_records_types_ranges_with_margin_domains_and_missing_rates():
    schema = infer_schema(stats(x=np.array([0.0, 10.0, np.nan, 5.0]), Asset_ID=np.array([1, 2, 3, 3])))
    assert schema["columns"]["x"] == {"type": "float", "missing_rate": 0.25, "min": -1.0, "max": 11.0}
    assert schema["columns"]["Asset_ID"] == {"type": "int", "missing_rate": 0.0, "domain": ["1", "2", "3"]}


def test_the_same_data_has_no_anomalies():
    data = stats(x=np.arange(10.0), Asset_ID=np.array([1, 2] * 5))
    assert find_anomalies(infer_schema(data), data) == []


def test_each_kind_of_anomaly_names_the_column_and_what_changed():
    schema = infer_schema(stats(x=np.arange(100.0), gone=np.ones(100), n=np.arange(100), Asset_ID=np.arange(100) % 4))
    x = np.arange(100.0)
    x[:20] = np.nan
    found = find_anomalies(schema, stats(x=x, new=np.ones(100), n=np.arange(100.0), Asset_ID=np.arange(100) % 3 + 1),
                           category_names={"Asset_ID": {"0": "Binance Coin"}})
    messages = [str(a) for a in found]
    assert "gone: missing, the serving model's training data had it" in messages
    assert "new: a new column, the serving model's training data had none" in messages
    assert "n: type float, the serving model's training data had int" in messages
    assert "x: 20% missing, the serving model's training data had 0%" in messages
    assert "Asset_ID: 0 (Binance Coin) is missing, the serving model's training data had it" in messages
    assert all(a.fatal for a in found)


def test_a_new_category_is_fatal_and_values_beyond_the_range_only_a_warning():
    schema = infer_schema(stats(x=np.arange(10.0), Asset_ID=np.array([1, 2] * 5)))
    found = find_anomalies(schema, stats(x=np.arange(10.0) * 5, Asset_ID=np.array([1, 2, 7] * 3)))
    assert [(str(a), a.fatal) for a in found] == [
        ("Asset_ID: 7 is new, the serving model's training data never had it", True),
        ("x: values 0..45 beyond the serving model's training data's range -0.9..9.9 (with margin)", False)]


def test_a_missing_rate_within_the_tolerance_passes():
    x = np.arange(100.0)
    schema = infer_schema(stats(x=x))
    x[:4] = np.nan
    assert find_anomalies(schema, stats(x=x)) == []
