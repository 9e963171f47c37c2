"""The deploy gate shared by every pipeline: metric >= threshold.

The pipeline itself enforces the gate with `dsl.If`; evaluation steps call
`gate_decision` so that the log, the report and the run summary say which way
it went and why.
"""

from components.errors import InputError


def check_threshold(threshold: float, name: str = "threshold", low: float = 0.0,
                    high: float = 1.0) -> None:
    if not low <= threshold <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}, got {threshold:g}")


def gate_decision(metric_name: str, value: float, threshold: float) -> str:
    if value >= threshold:
        return f"PASS: {metric_name} {value:.4f} >= threshold {threshold:.4g}, the model is deployed"
    return f"REFUSE: {metric_name} {value:.4f} < threshold {threshold:.4g}, the model is not deployed"
