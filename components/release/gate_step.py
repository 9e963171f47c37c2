"""The gate step: `components.release.gate.decide` as a KFP component, and how a pipeline adds it.

The gate runs after the evaluate step has written its report, so the step
writes the decided report itself: the evaluation report with its gate section
filled in with the verdict (`components.common.reports.with_verdict`). Its Markdown
verdict stays the record the deploy step reads.

The step returns "deploy" or "refuse" as its single return value; the pipeline
wraps the deploy in `dsl.If(gate.outputs["Output"] == "deploy")`. kfp 2.17's
local runner resolves a condition only on a task's "Output" channel: a
condition on a named NamedTuple output never runs its branch locally.
"""

from kfp import dsl, kubernetes
from kfp.dsl import HTML, Input, Markdown, Metrics, Model, Output

from components.cluster.serving import MODEL_STORE_MOUNT, mount_deployer_credentials
from components.common.images import cpu_component
from components.release.config import ReleaseConfig


@cpu_component
def gate_model(
    metrics: Input[Metrics],
    model: Input[Model],
    evaluation_report: Input[HTML],
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
) -> str:
    """Decide the deploy from the evaluation, the naive baseline and the serving champion.

    Args:
        metrics: The evaluate step's Metrics (every score, the baseline, `test_set`).
        model: The model the evaluate step scored (its `content_hash` metadata, else hashed here):
            a model identical to a serving version is not deployed again.
        evaluation_report: The evaluate step's HTML report, whose gate section this step fills in.
        gate_metric: The metric the gate decides on (higher is better).
        baseline_metric: The naive baseline's score in `metrics`.
        threshold: The least `gate_metric` a deployed model must reach.
        tolerance: How much worse than the serving champion (stable version) a model may be.
        require_beat_baseline: Also require the model to beat the naive baseline.
        model_name: The model's folder in the model store (where the champion is found).
        model_base_path: The model store's root, as the deploy step sees it.
        serving_namespace: On a cluster, the namespace whose serving labels name the champion
            (empty: the pod's own).
        run_name: The pipeline run, recorded with the evaluation.

    Returns:
        Output: "deploy" or "refuse", for the pipeline's `dsl.If`.
        verdict: The verdict: every comparison and the reason (Markdown; the same in its metadata).
        report: The evaluation report with the verdict (DEPLOY or REFUSED and every comparison).
    """
    from datetime import datetime, timezone
    from pathlib import Path

    from components.cluster.target import serving_target
    from components.common import reports, tracking
    from components.common.storage import atomic_path
    from components.release.gate import Champion, decide, verdict_markdown
    from components.store import open_store
    from components.store.base import content_hash as hash_of_model

    store = open_store(model_base_path)

    def served_version(version: int) -> Champion:
        record = store.evaluation(model_name, version) or {}
        return Champion(version, record.get("metrics", {}).get(gate_metric), record.get("test_set", ""),
                        record.get("content_hash", ""))

    scores = {k: v for k, v in metrics.metadata.items() if isinstance(v, (int, float))}
    test_set = str(metrics.metadata.get("test_set", ""))
    # The train steps record it (they have TensorFlow loaded already); a model from elsewhere is hashed here.
    content_hash = model.metadata.get("content_hash") or hash_of_model(Path(model.path))
    labels = serving_target(serving_namespace).current_labels(store, model_name)
    champion = served_version(labels.stable) if labels.stable is not None else None
    canary = (served_version(labels.canary),) if labels.canary is not None else ()
    result = decide(gate_metric, scores[gate_metric], threshold, baseline_metric, scores.get(baseline_metric),
                    champion, tolerance, require_beat_baseline, test_set, content_hash, canary)
    evaluation = {"metrics": scores, "gate_metric": gate_metric, "test_set": test_set, "run": run_name,
                  "content_hash": content_hash,
                  "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with atomic_path(verdict.path) as tmp:
        Path(tmp).write_text(verdict_markdown(result, gate_metric, model_name), encoding="utf-8")
    verdict.metadata.update({"decision": result.decision, "reason": result.reason,
                             "comparisons": result.comparisons, "first_deploy": result.first_deploy,
                             "champion_version": result.champion_version, "evaluation": evaluation})
    decided = reports.with_verdict(Path(evaluation_report.path).read_text(encoding="utf-8"),
                                   reports.verdict_html(result.decision, result.reason, result.comparisons))
    reports.write_html(report.path, decided)
    run = tracking.task_run()
    run.set_tags({"gate.decision": result.decision, "gate.reason": result.reason,
                  "gate.champion_version": result.champion_version})
    run.log_artifact(verdict.path, "verdict.md")
    for line in result.comparisons:
        print(f"gate: {line}", flush=True)
    print(f"gate: {result.reason}", flush=True)
    return result.decision


def add_gate_task(metrics, model, evaluation_report, release: ReleaseConfig) -> dsl.PipelineTask:
    """Add the gate step after an evaluate step (its `metrics` and `evaluation_report`, and the
    `model` it scored); `dsl.If(task.outputs["Output"] == "deploy")` then wraps the deploy.
    It reads the model store and, on a cluster, the serving labels."""
    task = gate_model(metrics=metrics, model=model, evaluation_report=evaluation_report,
                      gate_metric=release.gate_metric, baseline_metric=release.baseline_metric,
                      threshold=release.threshold, tolerance=release.tolerance,
                      require_beat_baseline=release.require_beat_baseline, model_name=release.model_name,
                      model_base_path=release.model_base_path, serving_namespace=release.serving_namespace,
                      run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
    task.set_display_name("gate").set_caching_options(False)  # the champion changes between runs
    mount_model_store(task, release)
    return task


def mount_model_store(task: dsl.PipelineTask, release: ReleaseConfig) -> None:
    """What a step that reads the model store and the serving labels needs on a cluster: the model
    store claim where `model_base_path` points by default, and the deployer's least-privilege
    credentials when their Secret exists."""
    kubernetes.mount_pvc(task, pvc_name=release.model_store_pvc, mount_path=MODEL_STORE_MOUNT)
    mount_deployer_credentials(task)
