"""The gate step: `components.release.gate.decide` as a KFP component, and how a pipeline adds it.

Why the gate step scores the serving champion (and the canary) rather than the
evaluate steps: it already reads the model store and the serving labels, with
the model store claim mounted and, on a cluster, the deployer's credentials;
the evaluate steps stay free of cluster access. And one code path
(`components.release.comparison`) scores every champion of every pipeline the
way a server would: the challenger's exact inputs (the evaluate step's `rows`
artifact) through the champion's serving signature, or its LightGBM booster.

The gate runs after the evaluate step has written its report, so the step
writes the decided report itself: the evaluation report with its gate section
filled in with the verdict, the intervals' plot and every model's score on the
same rows (`components.common.reports.with_verdict`). Its Markdown verdict stays
the record the deploy step reads.

The step returns "deploy" or "refuse" as its single return value; the pipeline
wraps the deploy in `dsl.If(gate.outputs["Output"] == "deploy")`. kfp 2.17's
local runner resolves a condition only on a task's "Output" channel: a
condition on a named NamedTuple output never runs its branch locally.
"""

from kfp import dsl, kubernetes
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.cluster.serving import MODEL_STORE_MOUNT, mount_deployer_credentials
from components.common.images import cpu_component
from components.release.config import ReleaseConfig, release_inputs


@cpu_component
@release_inputs
def gate_model(
    metrics: Input[Metrics],
    model: Input[Model],
    evaluation_report: Input[HTML],
    rows: Input[Dataset],
    gate_metric: str,
    baseline_metric: str,
    threshold: float,
    tolerance: float,
    require_beat_baseline: bool,
    model_name: str,
    model_base_path: str,
    serving_namespace: str,
    run_name: str,
    verdict: Output[Markdown],
    report: Output[HTML],
    statistics: Input[Artifact] = None,
    confidence: float = 0.95,
    max_drift: float = 0.25,
    deploy_if_champion_incomparable: bool = False,
) -> str:
    """Decide the deploy: the challenger, the naive baseline and the serving versions scored on the same rows.

    Args:
        metrics: The evaluate step's Metrics (every score, `test_set`), recorded with the evaluation.
        model: The model the evaluate step scored (its `content_hash` metadata, else hashed here):
            a model identical to a serving version is not deployed again.
        evaluation_report: The evaluate step's HTML report, whose gate section this step fills in.
        rows: The rows the evaluate step scored (components.release.rows): the inputs, targets, weights,
            the challenger's and the naive baseline's predictions; the serving versions are scored on them.
        gate_metric: The metric the gate decides on (higher is better).
        baseline_metric: The naive baseline's score in `metrics`, the name of its comparison.
        run_name: The pipeline run, recorded with the evaluation.
        statistics: The validation step's statistics; their metadata's `drift` (scores per feature
            against the champion's training data) is a gate input. Optional: without it drift is not compared.

    Returns:
        Output: "deploy" or "refuse", for the pipeline's `dsl.If`.
        verdict: The verdict: every comparison and the reason (Markdown; the same in its metadata).
        report: The evaluation report with the verdict, the intervals' plot and every model's score.
    """
    from pathlib import Path

    from components.cluster.target import serving_target
    from components.common import reports, tracking
    from components.release import gate_record
    from components.release.config import check_release_values
    from components.release.gate import Rules
    from components.release.rows import read_rows
    from components.store import open_store

    check_release_values({"threshold": threshold, "tolerance": tolerance, "confidence": confidence,
                          "max_drift": max_drift})
    store = open_store(model_base_path)
    decided = gate_record.judge(
        read_rows(rows.path, rows.metadata), store, model_name,
        serving_target(serving_namespace).current_labels(store, model_name),
        gate_record.GateSettings(gate_metric, baseline_metric, confidence,
                                 Rules(threshold, tolerance, require_beat_baseline, max_drift,
                                       deploy_if_champion_incomparable)),
        content_hash=gate_record.content_hash_of(model.metadata, Path(model.path)),
        drift_metadata=statistics.metadata if statistics is not None else {})
    gate_record.write_verdict(verdict.path, decided, model_name)
    verdict.metadata.update(decided.metadata(metrics.metadata, run_name))
    reports.write_html(report.path, reports.with_verdict(Path(evaluation_report.path).read_text(encoding="utf-8"),
                                                         decided.report_html()))
    run = tracking.task_run()
    run.log_metrics(decided.comparison.metrics())
    run.set_tags({"gate.decision": decided.verdict.decision, "gate.reason": decided.verdict.reason,
                  "gate.champion_version": decided.verdict.champion_version})
    run.log_artifact(verdict.path, "verdict.md")
    for line in decided.verdict.comparisons:
        print(f"gate: {line}", flush=True)
    print(f"gate: {decided.verdict.reason}", flush=True)
    return decided.verdict.decision


def add_gate_task(metrics, model, evaluation_report, rows, release: ReleaseConfig,
                  statistics=None) -> dsl.PipelineTask:
    """Add the gate step after an evaluate step (its `metrics`, `evaluation_report` and `rows`, and the
    `model` it scored; `statistics`: the validation step's, when the pipeline has one);
    `dsl.If(task.outputs["Output"] == "deploy")` then wraps the deploy.
    It reads the model store and, on a cluster, the serving labels."""
    optional = {"statistics": statistics} if statistics is not None else {}
    task = gate_model(metrics=metrics, model=model, evaluation_report=evaluation_report, rows=rows,
                      gate_metric=release.gate_metric, baseline_metric=release.baseline_metric,
                      threshold=release.threshold, tolerance=release.tolerance,
                      require_beat_baseline=release.require_beat_baseline, confidence=release.confidence,
                      max_drift=release.max_drift,
                      deploy_if_champion_incomparable=release.deploy_if_champion_incomparable,
                      model_name=release.model_name, model_base_path=release.model_base_path,
                      serving_namespace=release.serving_namespace, run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                      **optional)
    task.set_display_name("gate").set_caching_options(False)  # the champion changes between runs
    mount_model_store(task, release)
    return task


def mount_model_store(task: dsl.PipelineTask, release: ReleaseConfig) -> None:
    """What a step that reads the model store and the serving labels needs on a cluster: the model
    store claim where `model_base_path` points by default, and the deployer's least-privilege
    credentials when their Secret exists."""
    kubernetes.mount_pvc(task, pvc_name=release.model_store_pvc, mount_path=MODEL_STORE_MOUNT)
    mount_deployer_credentials(task)
