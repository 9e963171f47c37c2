"""The deploy gate: the one place that decides whether a trained model is deployed.

TFX's Evaluator blesses a model against a threshold and against the last
blessed model, and its Pusher pushes only blessed models. Here `decide` takes
the challenger's gate metric, the naive baseline, the serving champion's stored
evaluation (the `stable` version's `evaluation.json`), the threshold, a
tolerance and whether beating the baseline is required; it returns a `Verdict`
that states every comparison and the reason. The `gate_model` step records it
as an artifact (Markdown, with the comparisons in its metadata) and returns
"deploy" or "refuse", the single value the pipeline's `dsl.If` tests. That step
lives in `components.release.gate_step`: this module is imported inside running steps
(the evaluate steps log their scores with `log_scores`), where kfp's
executor offers no `dsl.component`.

Every gate metric here (accuracy, weighted correlation) is better when higher.
The evaluate steps only score and log; they decide nothing.

A model identical to a serving version (the same `content_hash`, recorded in
each version's evaluation) is refused whatever its scores: deploying it again
would add a version that changes nothing.
"""

from dataclasses import dataclass, field
from typing import Mapping, Protocol

from components.common import tracking
from components.common.errors import InputError

DEPLOY, REFUSE = "deploy", "refuse"


class MetricsLog(Protocol):
    """What a KFP `Metrics` artifact offers (kept abstract so this module stays light)."""

    def log_metric(self, metric: str, value: float) -> None: ...


def check_threshold(threshold: float, name: str = "threshold", low: float = 0.0,
                    high: float = 1.0) -> None:
    if not low <= threshold <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}, got {threshold:g}")


def log_scores(metrics: MetricsLog, scores: Mapping[str, float], gate_metric: str) -> str:
    """Log every score to the evaluate step's Metrics, and to its MLflow run when the step
    is tracked (`components.common.tracking`); return a line for its log and report saying where
    the decision is made (the gate step, not here: the evaluate step takes no threshold)."""
    for name, value in scores.items():
        metrics.log_metric(name, value)
    tracking.task_run().log_metrics(scores)
    tracking.task_run().flush()
    return (f"{gate_metric} {scores[gate_metric]:.4f}: the gate step decides the deploy against the threshold, "
            "the serving champion (re-scored on these rows) and the naive baseline")


@dataclass(frozen=True)
class Champion:
    """The version serving as `stable`, and what its stored evaluation says."""

    version: int
    metric: float | None  # its gate metric when it was deployed; None: no stored evaluation
    test_set: str = ""
    content_hash: str = ""  # its recorded content hash; "": none recorded (an older version)


@dataclass(frozen=True)
class Verdict:
    deploy: bool
    reason: str
    comparisons: list[str] = field(default_factory=list)
    first_deploy: bool = False
    champion_version: int | None = None

    @property
    def decision(self) -> str:
        return DEPLOY if self.deploy else REFUSE


def decide(metric_name: str, value: float, threshold: float, baseline_name: str, baseline: float | None,
           champion: Champion | None, tolerance: float, require_beat_baseline: bool,
           test_set: str = "", content_hash: str = "", served: tuple[Champion, ...] = ()) -> Verdict:
    """Deploy only if `value` >= threshold, it is not worse than the champion by more
    than `tolerance`, (when required) it beats the naive baseline, and its `content_hash`
    is not that of a serving version (the champion or `served`, e.g. a canary)."""
    check_threshold(tolerance, "tolerance")
    comparisons, failures = [], []

    passed = value >= threshold
    comparisons.append(f"threshold: {metric_name} {value:.4f} {'>=' if passed else '<'} {threshold:.4g}"
                       f" -> {'pass' if passed else 'FAIL'}")
    if not passed:
        failures.append(f"{metric_name} {value:.4f} is below the threshold {threshold:.4g}")

    if baseline is None:
        comparisons.append(f"naive baseline: {baseline_name} not reported -> not compared")
        if require_beat_baseline:
            failures.append(f"the naive baseline ({baseline_name}) is required but was not reported")
    else:
        beats = value > baseline
        if beats:
            outcome = "better"
        elif require_beat_baseline:
            outcome = "FAIL (require_beat_baseline=true)"
        else:
            outcome = "not better, allowed (require_beat_baseline=false)"
        comparisons.append(f"naive baseline: {metric_name} {value:.4f} {'>' if beats else '<='} {baseline_name} "
                           f"{baseline:.4f} -> {outcome}")
        if require_beat_baseline and not beats:
            failures.append(f"{metric_name} {value:.4f} does not beat the naive baseline {baseline:.4f}")

    if champion is None:
        comparisons.append("serving champion: none, nothing is serving yet -> first deploy")
    elif champion.metric is None:
        comparisons.append(f"serving champion: version {champion.version} has no stored evaluation "
                           "-> not compared")
    else:
        difference = value - champion.metric
        within = difference >= -tolerance
        other_set = (f" (its test set: {champion.test_set}; this one: {test_set})"
                     if champion.test_set and test_set and champion.test_set != test_set else "")
        comparisons.append(f"serving champion: version {champion.version} {metric_name} {champion.metric:.4f}, "
                           f"challenger {difference:+.4f} (tolerance {tolerance:.4g}) -> "
                           f"{'pass' if within else 'FAIL'}{other_set}")
        if not within:
            failures.append(f"{metric_name} {value:.4f} is worse than serving version {champion.version} "
                            f"({champion.metric:.4f}) by {-difference:.4f}, more than the tolerance {tolerance:.4g}")

    if content_hash and champion is not None:
        serving = (champion, *served)
        same = [v for v in serving if v.content_hash == content_hash]
        if same:
            comparisons.append(f"content: identical to serving version {same[0].version} "
                               f"(content hash {content_hash[:12]}) -> FAIL, not deployed again")
            failures.append(f"the model is identical to serving version {same[0].version} (same content "
                            "hash): deploying it again would change nothing")
        elif any(not v.content_hash for v in serving):
            comparisons.append("content: a serving version has no recorded content hash -> not compared")
        else:
            listed = " and ".join(str(v.version) for v in serving)
            comparisons.append(f"content: differs from serving version{'s' if len(serving) > 1 else ''} "
                               f"{listed} -> pass")

    first = champion is None
    if failures:
        reason = "REFUSED: " + "; ".join(failures) + ". Nothing is deployed."
    elif first:
        reason = "DEPLOY: first deploy (no model is serving yet) and every required comparison passes."
    else:
        reason = f"DEPLOY: every required comparison passes, including against serving version {champion.version}."
    return Verdict(not failures, reason, comparisons, first, champion.version if champion else None)


def verdict_markdown(verdict: Verdict, metric_name: str, model_name: str) -> str:
    lines = [f"# Deploy gate for {model_name}: {verdict.decision.upper()}", "", verdict.reason, "",
             f"| comparison on {metric_name} |", "|---|"]
    lines += [f"| {line} |" for line in verdict.comparisons]
    return "\n".join(lines) + "\n"
