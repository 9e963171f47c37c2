"""The deploy gate shared by every pipeline: metric >= threshold.

The pipeline itself enforces the gate with `dsl.If`; evaluation steps call
`gate_decision` so that the log, the report and the run summary say which way
it went and why.
"""

from typing import Mapping, Protocol

from components.errors import InputError


class MetricsLog(Protocol):
    """What a KFP `Metrics` artifact offers (kept abstract so this module stays light)."""

    def log_metric(self, metric: str, value: float) -> None: ...


def check_threshold(threshold: float, name: str = "threshold", low: float = 0.0,
                    high: float = 1.0) -> None:
    if not low <= threshold <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}, got {threshold:g}")


def gate_decision(metric_name: str, value: float, threshold: float) -> str:
    if value >= threshold:
        return f"PASS: {metric_name} {value:.4f} >= threshold {threshold:.4g}, the model is deployed"
    return f"REFUSE: {metric_name} {value:.4f} < threshold {threshold:.4g}, the model is not deployed"


def record_and_decide(metrics: MetricsLog, scores: Mapping[str, float], gate_metric: str,
                      threshold: float) -> str:
    """Log every score to the evaluate step's Metrics and decide the gate on `gate_metric`."""
    for name, value in scores.items():
        metrics.log_metric(name, value)
    return gate_decision(gate_metric, scores[gate_metric], threshold)
