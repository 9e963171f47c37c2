"""The serving dashboard's panels and the Prometheus rules, as data: the one place their PromQL is written.

`generate.py` turns them into Grafana's dashboard JSON and Prometheus's rules YAML;
`draw.py` draws the same panels from a live server through a real Prometheus for
the docs; the tests check every expression against a live server's scrape. The
metric names are the server's own (components/serving/metrics.py); counters carry
the `_total` suffix that the Prometheus client library writes. Grafana fills in
`$model` (the model variable) and `$__rate_interval` before a query reaches
Prometheus: `grafana_to_promql` does the same for anything that is not Grafana.
"""

from dataclasses import dataclass

from components.serving.metrics import LOAD_ATTEMPT_COUNT, REQUEST_COUNT, REQUEST_LATENCY

REQUESTS = f"{REQUEST_COUNT}_total"
LATENCY_BUCKETS = f"{REQUEST_LATENCY}_bucket"
LOAD_ATTEMPTS = f"{LOAD_ATTEMPT_COUNT}_total"
FAILED_LOADS = f'{LOAD_ATTEMPTS}{{status="fail"}}'
MODEL = 'model_name=~"$model"'
RATE = "[$__rate_interval]"
# Every status but OK is an error, refusals of bad requests included: a canary whose
# signature refuses what the stable version accepts shows up as INVALID_ARGUMENT.
ERROR = 'status!="OK"'
SERVED_LABEL = 'label=~"stable|canary"'
# The dashboard's model variable: Grafana's label_values(metric, label) query.
MODEL_VARIABLE_QUERY = f"label_values({REQUESTS}, model_name)"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    unit: str  # a Grafana unit id
    queries: tuple[Query, ...]


def error_ratio(by: str, selector: str, window: str) -> str:
    """The share of requests that did not end OK, by `by`: 0, not absent, for a group without errors,
    so that stable without errors still has a series to compare the canary with."""
    requests = f"sum by ({by}) (rate({REQUESTS}{braced(selector)}{window}))"
    errors = f"sum by ({by}) (rate({REQUESTS}{braced(selector, ERROR)}{window}))"
    return f"({errors} or 0 * {requests}) / {requests}"


def braced(*matchers: str) -> str:
    """`{a, b}` for the matchers given (empty ones left out), or nothing for none."""
    present = [matcher for matcher in matchers if matcher]
    return "{" + ", ".join(present) + "}" if present else ""


def latency_ms(quantile: float, by: str) -> str:
    return (f"histogram_quantile({quantile}, sum by (le, {by}) "
            f"(rate({LATENCY_BUCKETS}{{{MODEL}}}{RATE}))) / 1000")


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("Requests by model, version and label",
              "Requests per second answered, by the model, the version that answered and its serving label "
              "(stable, canary, or none).", "reqps",
              (Query(f"sum by (model_name, version, label) (rate({REQUESTS}{{{MODEL}}}{RATE}))",
                     "{{model_name}} v{{version}} {{label}}"),)),
    PanelSpec("Errors by model, version, label and status",
              "Requests per second that did not end OK, by their gRPC status (REST requests are counted with "
              "the status TF-Serving maps them to). Version is empty for a request no version answered.", "reqps",
              (Query(f"sum by (model_name, version, label, status) (rate({REQUESTS}{{{MODEL}, {ERROR}}}{RATE}))",
                     "{{model_name}} v{{version}} {{label}} {{status}}"),)),
    PanelSpec("Latency percentiles",
              "Request latency by model: the median, the 90th and the 99th percentile, interpolated within "
              "the histogram's buckets (x2.5 apart).", "ms",
              tuple(Query(latency_ms(q, "model_name"), f"{{{{model_name}}}} p{round(q * 100)}")
                    for q in (0.5, 0.9, 0.99))),
    # The count so far, not its increase: a load creates its series at 1, and Prometheus's increase()
    # never counts a series' first sample, so most loads would not show as an increase at all.
    PanelSpec("Model loads",
              "Attempts to load each model version since the server started, by outcome (success, fail): "
              "a step up is a load, after a deploy or a rollback to an unloaded version; a version that "
              "cannot be loaded fails five times.", "short",
              (Query(f"sum by (model_name, version, status) ({LOAD_ATTEMPTS}{{{MODEL}}})",
                     "{{model_name}} v{{version}} {{status}}"),)),
    PanelSpec("Canary against stable: share of traffic",
              "The share of each model's requests answered by its stable and by its canary version.",
              "percentunit",
              (Query(f"sum by (model_name, label) (rate({REQUESTS}{{{MODEL}, {SERVED_LABEL}}}{RATE}))"
                     f" / ignoring (label) group_left sum by (model_name) (rate({REQUESTS}{{{MODEL}}}{RATE}))",
                     "{{model_name}} {{label}}"),)),
    PanelSpec("Canary against stable: error ratio",
              "The share of requests that did not end OK, for the stable and the canary version side by side.",
              "percentunit",
              (Query(error_ratio("model_name, label", f"{MODEL}, {SERVED_LABEL}", RATE), "{{model_name}} {{label}}"),)),
    PanelSpec("Canary against stable: p99 latency",
              "The 99th percentile of the request latency, for the stable and the canary version side by side.",
              "ms", (Query(latency_ms(0.99, "model_name, label"), "{{model_name}} {{label}} p99"),)),
)


def grafana_to_promql(expr: str, model: str = ".+", rate_interval: str = "1m") -> str:
    """The query as Grafana sends it: the dashboard's variables filled in."""
    return expr.replace("$__rate_interval", rate_interval).replace("$model", model)


# --- Prometheus rules: recorded per model and label, then alerts on the records ---------------

ERROR_RATIO = "model_name_label:tensorflow_serving_request_errors:ratio_rate5m"
LATENCY_P99 = "model_name_label:tensorflow_serving_request_latency_seconds:p99_rate5m"
ERROR_RATIO_THRESHOLD = 0.05
LATENCY_P99_THRESHOLD_S = 0.5
CANARY_EXTRA_ERRORS = 0.02

RECORDING_RULES = {
    ERROR_RATIO: error_ratio("model_name, label", "", "[5m]"),
    LATENCY_P99: f"histogram_quantile(0.99, sum by (le, model_name, label) (rate({LATENCY_BUCKETS}[5m]))) / 1e6",
}

ALERTS = (
    {"alert": "ServingErrorRatioHigh", "expr": f"{ERROR_RATIO} > {ERROR_RATIO_THRESHOLD}", "for": "5m",
     "labels": {"severity": "warning"},
     "annotations": {"summary": "{{ $labels.model_name }} {{ $labels.label }}: {{ $value | humanizePercentage }} "
                                f"of requests fail (above {ERROR_RATIO_THRESHOLD:.0%} for 5 minutes)"}},
    {"alert": "ServingLatencyHigh", "expr": f"{LATENCY_P99} > {LATENCY_P99_THRESHOLD_S}", "for": "10m",
     "labels": {"severity": "warning"},
     "annotations": {"summary": "{{ $labels.model_name }} {{ $labels.label }}: p99 latency {{ $value }}s "
                                f"(above {LATENCY_P99_THRESHOLD_S}s for 10 minutes)"}},
    {"alert": "CanaryErrorRatioAboveStable",
     "expr": f'{ERROR_RATIO}{{label="canary"}} > ignoring (label) {ERROR_RATIO}{{label="stable"}}'
             f" + {CANARY_EXTRA_ERRORS}", "for": "5m",
     "labels": {"severity": "warning"},
     "annotations": {"summary": "{{ $labels.model_name }}: the canary fails "
                                f"{CANARY_EXTRA_ERRORS:.0%} more requests than stable; "
                                "`make rollback MODEL={{ $labels.model_name }}` drops it"}},
    # A failed version's series starts at 1, which increase() does not count: a series that is new
    # within the 10 minutes counts too.
    {"alert": "ModelLoadFailed",
     "expr": f"increase({FAILED_LOADS}[10m]) > 0 or ({FAILED_LOADS} unless {FAILED_LOADS} offset 10m)",
     "labels": {"severity": "warning"},
     "annotations": {"summary": "{{ $labels.model_name }} version {{ $labels.version }} failed to load "
                                "(the server's log says why)"}},
)


def rules_document() -> dict:
    """Prometheus's rule file: one group of recording rules, one of alerts."""
    return {"groups": [
        {"name": "tensorflow-serving-records", "rules": [
            {"record": name, "expr": expr} for name, expr in RECORDING_RULES.items()]},
        {"name": "tensorflow-serving-alerts", "rules": list(ALERTS)},
    ]}


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard and the rules, as Prometheus receives it."""
    dashboard = [grafana_to_promql(query.expr) for panel in PANELS for query in panel.queries]
    rules = [rule["expr"] for group in rules_document()["groups"] for rule in group["rules"]]
    return dashboard + rules
