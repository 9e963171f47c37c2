"""Every PromQL expression of the serving dashboard and rules parses and reads what a live server exports."""

import promql_parser
import pytest
from monitoring_helpers import live_server as live_server  # a fixture: the alias marks it as used by name
from monitoring_helpers import panels, scrape  # panels: deploy/monitoring/panels.py
from prometheus_client.parser import text_string_to_metric_families


def exported_labels(text: str) -> dict[str, set[str]]:
    """Each sample name of a scrape (`…_total`, `…_bucket`) -> the label names its samples carry."""
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def names_used(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """Each metric an expression reads with the label names its matchers name, and the labels it groups by."""
    selected, grouped = [], set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            selected.append((node.name, {m.name for m in node.matchers.matchers}))
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouped.update(node.modifier.labels)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return selected, grouped


def unknown_names(expr: str, exported: dict[str, set[str]]) -> list[str]:
    """What an expression names that the scrape does not have: metrics, their labels, labels grouped by.

    The recording rules' names count as known: alerts read them, and Prometheus makes them.
    """
    selected, grouped = names_used(expr)
    unknown, labels_read = [], set()
    for name, matched in selected:
        if name in panels.RECORDING_RULES:
            continue
        if name not in exported:
            unknown.append(name)
        unknown += [f"{name}{{{label}}}" for label in sorted(matched - exported.get(name, set()))]
        labels_read |= exported.get(name, set())
    return unknown + [f"by ({label})" for label in sorted(grouped - labels_read)]


@pytest.fixture(scope="module")
def exported(live_server) -> dict[str, set[str]]:
    return exported_labels(scrape(live_server))


def test_the_scrape_has_the_series_the_dashboard_shows(live_server):
    families: dict[str, list[dict[str, str]]] = {}  # sample name -> its samples' labels
    for family in text_string_to_metric_families(scrape(live_server)):
        for sample in family.samples:
            families.setdefault(sample.name, []).append(sample.labels)
    requests = families[panels.REQUESTS]
    assert {r["label"] for r in requests if r["model_name"] == "sp500"} >= {"stable", "canary"}
    assert any(r["status"] == "INVALID_ARGUMENT" for r in requests)
    assert {a["status"] for a in families[panels.LOAD_ATTEMPTS]} == {"success", "fail"}
    assert families[panels.LATENCY_BUCKETS]


@pytest.mark.parametrize("expr", panels.expressions())
def test_an_expression_parses_and_names_only_what_the_server_exports(expr, exported):
    assert unknown_names(expr, exported) == []


def test_the_model_variable_reads_an_exported_label(exported):
    metric, label = panels.MODEL_VARIABLE_QUERY.removeprefix("label_values(").removesuffix(")").split(", ")
    assert label in exported[metric]


def test_a_misspelt_metric_or_label_is_caught(exported):
    assert unknown_names('rate(:tensorflow:serving:request_counts_total[1m])', exported) == [
        ":tensorflow:serving:request_counts_total"]
    assert unknown_names(f'rate({panels.REQUESTS}{{model="sp500"}}[1m])', exported) == [
        f"{panels.REQUESTS}{{model}}"]
    assert unknown_names(f"sum by (model, label) (rate({panels.REQUESTS}[1m]))", exported) == ["by (model)"]
    with pytest.raises(ValueError):
        promql_parser.parse(panels.grafana_to_promql("rate(x[$__rate_interval]"))


def test_grafana_variables_are_filled_in_as_grafana_does():
    assert panels.grafana_to_promql('rate(m{model_name=~"$model"}[$__rate_interval])', "sp500", "2m") == \
        'rate(m{model_name=~"sp500"}[2m])'
