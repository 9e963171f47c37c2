"""The deploy gate: the one place that decides whether a trained model is deployed.

TFX's Evaluator blesses a model against a threshold and against the last
blessed model, scoring both on the same evaluation data, and its Pusher pushes
only blessed models. Here every comparison is made on the rows the challenger
was scored on (`components.release.rows`): the gate step scores the serving
versions on them (`components.release.champion`) and computes paired
moving-block bootstrap intervals of the differences
(`components.release.bootstrap`). `decide` takes those and returns a `Verdict`
that states every comparison: what it compared, the point difference, its
interval and, in words, whether it is significant. The rules:

- threshold: the challenger's score on all rows (the evaluate step's metric) must
  reach the threshold: a rule on the point estimate, as a plain accuracy gate is;
- serving champion (the `stable` version): the lower bound of (challenger -
  champion) must be at least -tolerance: with the interval's confidence, the
  challenger is no worse than the champion by more than the tolerance (with 0: at
  least as good, beyond the noise). A champion that cannot be scored on these rows
  refuses the deploy unless `deploy_if_champion_incomparable`;
- canary: compared and reported, never deciding: the stable version is the one a
  deploy replaces, the canary is still on trial;
- naive baseline: with `require_beat_baseline`, the lower bound of (challenger -
  baseline) must be above 0 (significantly better); otherwise reported only;
- drift: the largest drift score of a feature (this run's training data against
  the champion's) must not exceed `max_drift`;
- content: a model identical to a serving version (the same `content_hash`,
  recorded in each version's evaluation) is refused whatever its scores: deploying
  it again would add a version that changes nothing.

The `gate_model` step records the verdict as an artifact and returns "deploy" or
"refuse", the single value the pipeline's `dsl.If` tests. That step lives in
`components.release.gate_step`: this module is imported inside running steps
(the evaluate steps log their scores with `log_scores`), where kfp's executor
offers no `dsl.component`. Every gate metric (accuracy, weighted correlation) is
better when higher.
"""

from dataclasses import dataclass, field
from typing import Mapping, Protocol

from components.common import tracking
from components.release.bootstrap import Interval

DEPLOY, REFUSE = "deploy", "refuse"


class MetricsLog(Protocol):
    """What a KFP `Metrics` artifact offers (kept abstract so this module stays light)."""

    def log_metric(self, metric: str, value: float) -> None: ...


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
class Rules:
    """The release settings `decide` applies (declared and checked in `components.release.config`)."""

    threshold: float
    tolerance: float = 0.0
    require_beat_baseline: bool = False
    max_drift: float = 0.25
    deploy_if_champion_incomparable: bool = False


@dataclass(frozen=True)
class Served:
    """A serving version as the gate compares it: its score on the challenger's rows and the
    interval of (challenger - it), or why it could not be scored."""

    version: int
    score: float | None = None  # on the challenger's rows; None: not scored
    difference: Interval | None = None  # challenger - this version, on the same resamples
    incomparable: str = ""  # why it could not be scored ("" when scored)
    history: str = ""  # its stored score, as history ("scored X on its own test set ... ; not compared")
    content_hash: str = ""  # its recorded content hash; "": none recorded (an older version)


@dataclass(frozen=True)
class Drift:
    """The validation step's drift scores against the champion's training data (issue 27)."""

    measure: str  # e.g. "psi"
    champion_version: int | None
    reason: str  # why no scores were computed ("" when they were)
    scores: dict[str, float]

    @classmethod
    def from_metadata(cls, metadata: Mapping) -> "Drift | None":
        drift = metadata.get("drift")
        if not drift:
            return None
        version = drift.get("champion_version")
        return cls(str(drift.get("measure", "drift")), None if version is None else int(version),
                   str(drift.get("reason", "")), {k: float(v) for k, v in (drift.get("scores") or {}).items()})


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


def significance(interval: Interval, versus: str) -> str:
    """Whether the interval of (challenger - `versus`) excludes 0, in words."""
    if interval.low > 0:
        return f"significant: the challenger is better than {versus}"
    if interval.high < 0:
        return f"significant: the challenger is worse than {versus}"
    return "not significant: the interval contains 0"


def difference_line(name: str, versus: str, interval: Interval) -> str:
    return f"challenger - {name} {interval.describe()}, {significance(interval, versus)}"


def decide(metric_name: str, value: float, rules: Rules, baseline_name: str, baseline: Interval,
           champion: Served | None, canary: Served | None = None, content_hash: str = "",
           drift: Drift | None = None, rows: int = 0) -> Verdict:
    """Apply `rules` (see the module's notes) to the challenger's score `value` on `rows` rows, the
    intervals of its differences from the naive baseline, the champion and the canary, the drift, and
    its `content_hash`; every comparison is one line, every failure named in the reason."""
    comparisons, failures = [], []
    on_rows = f" on these {rows} rows" if rows else ""

    passed = value >= rules.threshold
    comparisons.append(f"threshold: {metric_name} {value:.4f}{on_rows} {'>=' if passed else '<'} "
                       f"{rules.threshold:.4g} -> {'pass' if passed else 'FAIL'}")
    if not passed:
        failures.append(f"{metric_name} {value:.4f} is below the threshold {rules.threshold:.4g}")

    beats = baseline.low > 0
    if beats:
        outcome = "better"
    elif rules.require_beat_baseline:
        outcome = "FAIL (require_beat_baseline=true: the lower bound must be above 0)"
        failures.append(f"the challenger does not significantly beat the naive baseline {baseline_name} "
                        f"(lower bound {baseline.low:+.4f})")
    else:
        outcome = "not significantly better, allowed (require_beat_baseline=false)"
    comparisons.append(f"naive baseline: {difference_line(baseline_name, 'the baseline', baseline)} -> {outcome}")

    if champion is None:
        comparisons.append("serving champion: none, nothing is serving yet -> first deploy")
    elif champion.difference is None:
        allowed = rules.deploy_if_champion_incomparable
        comparisons.append(f"serving champion: version {champion.version} cannot be scored on these rows: "
                           f"{champion.incomparable} -> {'not compared, allowed' if allowed else 'FAIL'} "
                           f"(deploy_if_champion_incomparable={str(allowed).lower()})")
        if not allowed:
            failures.append(f"serving version {champion.version} cannot be scored on these rows "
                            f"({champion.incomparable})")
    else:
        difference = champion.difference
        within = difference.low >= -rules.tolerance
        comparisons.append(
            f"serving champion: version {champion.version} {metric_name} {champion.score:.4f}{on_rows}; "
            f"{difference_line('champion', 'the champion', difference)}; lower bound {difference.low:+.4f} "
            f"{'>=' if within else '<'} -tolerance {0.0 - rules.tolerance:.4g}"
            f"{f'; stored: {champion.history}' if champion.history else ''} -> {'pass' if within else 'FAIL'}")
        if not within:
            failures.append(f"the challenger may be worse than serving version {champion.version} by more than the "
                            f"tolerance {rules.tolerance:.4g}: lower bound of the difference {difference.low:+.4f}")

    if canary is not None:
        if canary.difference is None:
            comparisons.append(f"canary: version {canary.version} cannot be scored on these rows: "
                               f"{canary.incomparable} -> reported (the stable version decides)")
        else:
            comparisons.append(f"canary: version {canary.version} {metric_name} {canary.score:.4f}{on_rows}; "
                               f"{difference_line('canary', 'the canary', canary.difference)} "
                               "-> reported (the stable version decides)")

    comparisons.append(drift_line(drift, rules.max_drift, failures))

    if content_hash and champion is not None:
        serving = (champion, canary) if canary is not None else (champion,)
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


def drift_line(drift: Drift | None, max_drift: float, failures: list[str]) -> str:
    """The drift comparison's line (a failure added to `failures` when the largest score exceeds the limit)."""
    if drift is None:
        return "drift: no statistics given -> not compared"
    if not drift.scores:
        return f"drift: none computed ({drift.reason or 'no reason given'}) -> not compared"
    feature, score = max(drift.scores.items(), key=lambda item: item[1])
    against = f"version {drift.champion_version}'s" if drift.champion_version is not None else "the champion's"
    line = (f"drift: largest {drift.measure} {score:.4f} on {feature}, this run's training data against "
            f"{against}")
    if score > max_drift:
        failures.append(f"{feature} drifted by {drift.measure} {score:.4f}, more than max_drift {max_drift:.4g}")
        return f"{line}; above max_drift {max_drift:.4g} -> FAIL"
    return f"{line}; within max_drift {max_drift:.4g} -> reported"


def verdict_markdown(verdict: Verdict, metric_name: str, model_name: str) -> str:
    lines = [f"# Deploy gate for {model_name}: {verdict.decision.upper()}", "", verdict.reason, "",
             f"| comparison on {metric_name} |", "|---|"]
    lines += [f"| {line} |" for line in verdict.comparisons]
    return "\n".join(lines) + "\n"
