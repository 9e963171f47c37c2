"""Every step's CPU and memory (requests and limits): the rows shared by every pipeline.

Each pipeline's own steps have their rows in its spec (`pipelines/<name>/spec.py`,
`resources`), keyed by component name (the name KFP gives the component: the
function name with '-' for '_'); `components.settings.cluster.apply_cluster_settings`
applies that table and these rows to every task of a pipeline. A step in
neither fails the compile, so a new step cannot reach a cluster without resources.

How the figures are measured: kfp.local runs every step as its own process,
and `bench/bench_step_resources.py` (part of `make bench`) runs every pipeline
with its default parameters (unless the table says otherwise), reads each
step's peak resident memory and CPU seconds when its process exits, and checks
each peak against the row's memory request. The peak is in the comment beside
each row. Requests cover the measured peak with room
(the scheduler places pods by requests); memory limits are about twice the
request (a step above it is killed, so a limit is a ceiling, not a target);
CPU limits let a step use the cores it measurably keeps busy (TensorFlow and
LightGBM use several threads) without throttling a single-threaded one.

Retries: no step is retried by KFP. A KFP retry re-runs the pod whatever made
it fail, so it would repeat a permanent error (a missing file, a column that is
not there, missing credentials) that can never succeed. Steps that touch the
network retry their transient errors themselves, with backoff inside a total
time budget (`components.common.storage.with_retries`, FETCH_RETRY_BUDGET_S), and fail
at once on a permanent one. A pod lost mid-step (an evicted pod, a lost node)
fails the run: start it again.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from components.common.errors import InputError


@dataclass(frozen=True)
class StepResources:
    cpu: str
    cpu_limit: str
    memory: str
    memory_limit: str

    def apply(self, task) -> None:
        task.set_cpu_request(self.cpu).set_cpu_limit(self.cpu_limit)
        task.set_memory_request(self.memory).set_memory_limit(self.memory_limit)


# Peaks in the comments: default parameters, this project's offline data (bench/bench_step_resources.py).
SHARED = {
    # 164 MiB locally, where it only copies folders; in a pod it adds the Kubernetes and GCS clients.
    "deploy-model": StepResources("250m", "1", "256Mi", "1Gi"),
    # Re-scores the serving champion on the challenger's rows: TensorFlow loads a SavedModel (754 MiB
    # for sp500), LightGBM a booster (268 MiB for crypto's shipped month; its full-scale 1.4M test
    # rows in bench_crypto.py's pipeline run).
    "gate-model": StepResources("500m", "2", "1Gi", "2Gi"),
    # 200-286 MiB on the shipped data; 2,538 MiB on crypto's full-scale feature table (12M rows,
    # 1.3 GiB memory-mapped, each column copied once to numpy; bench_crypto.py's pipeline run).
    "validate-data": StepResources("1", "2", "3Gi", "6Gi"),
}


def resources_for(table: Mapping[str, StepResources], component: str, pipeline: str) -> StepResources:
    """The row for `component` in `pipeline`'s own `table`, or else its shared row."""
    row = table.get(component) or SHARED.get(component)
    if row is None:
        raise InputError(f"step '{component}' of pipeline '{pipeline}' has no resources: "
                         "add a row to the resources of its spec (pipelines/<name>/spec.py)")
    return row
