"""Every step's CPU and memory (requests and limits), in one table.

Keyed by pipeline and by component name (the name KFP gives the component:
the function name with '-' for '_'); `components.settings.cluster.apply_cluster_settings`
applies it to every task of a pipeline. A step missing from the table fails
the compile, so a new step cannot reach a cluster without resources.

How the figures were measured: kfp.local runs every step as its own process,
so `bench/measure_step_resources.py <pipeline>` wraps each in `/usr/bin/time`
and prints its peak resident memory and its CPU seconds over its wall time
(default parameters; crypto also on 12.2M generated rows, the size of the
real competition data from 2020 on, with bench/bench_crypto.py). The peak is
in the comment beside each row. Requests cover the measured peak with room
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


# Peaks in the comments: default parameters, this project's offline data (sp500: 2010-2018 daily
# prices; mnist: the 5,000 shipped digits, 4 trials of 6 epochs; crypto: one generated month).
SHARED = {
    # 18 MiB locally, where it only copies folders; in a pod it adds the Kubernetes and GCS clients.
    "deploy-model": StepResources("250m", "1", "256Mi", "1Gi"),
    # Reads the champion's evaluation (a small JSON) from the store or the cluster.
    "gate-model": StepResources("100m", "500m", "256Mi", "512Mi"),
}

STEP_RESOURCES: dict[str, dict[str, StepResources]] = {
    "sp500": {
        "download-prices": StepResources("250m", "1", "512Mi", "1Gi"),   # 233 MiB; any tickers from a URI
        "preprocess": StepResources("250m", "1", "256Mi", "1Gi"),    # 148 MiB
        "train": StepResources("1", "4", "1536Mi", "3Gi"),           # 867 MiB; TensorFlow's thread pools
        "evaluate": StepResources("500m", "2", "1Gi", "2Gi"),        # 837 MiB; TensorFlow loads the model
    },
    "mnist": {
        # The full MNIST (70,000 digits, 14x the shipped set) is ~220 MB as float32 arrays.
        "download-digits": StepResources("250m", "1", "256Mi", "1Gi"),    # 69 MiB
        "preprocess-digits": StepResources("500m", "1", "512Mi", "2Gi"),  # 68 MiB on 5,000 digits
        "train-trial": StepResources("1", "4", "1536Mi", "3Gi"),    # 970 MiB per trial
        "select-best-trial": StepResources("250m", "1", "256Mi", "512Mi"),  # 76 MiB
        "evaluate": StepResources("500m", "2", "1Gi", "2Gi"),        # 936 MiB
    },
    # Sized for the real data: 24M rows in train.csv (3.65 GB), 12.7M from 2020 on; peaks on
    # 12.2M generated rows (bench/bench_crypto.py) first, then on the default generated month.
    "crypto": {
        # 1.9 GB generating 12.7M rows, 218 MiB on a month; a download streams
        "download-data": StepResources("1", "2", "4Gi", "8Gi"),
        # 0.43 GB: the CSV streams through, a few blocks at a time, whatever its size (210 MiB on a month)
        "load-data": StepResources("2", "2", "1Gi", "2Gi"),
        # 1.1 GB: the input memory-mapped (0.55 GB of it) and three assets at a time (202 MiB on a month)
        "build-features": StepResources("2", "2", "2Gi", "4Gi"),
        "train-model": StepResources("4", "4", "6Gi", "12Gi"),  # 2.7 GB (float32 matrices, LightGBM bins), 422 MiB
        "evaluate": StepResources("1", "2", "2Gi", "4Gi"),  # the test period only: 0.87 GB, 284 MiB
    },
}


def resources_for(pipeline: str, component: str) -> StepResources:
    """The row for `component` of `pipeline` (the shared rows apply to every pipeline)."""
    row = STEP_RESOURCES.get(pipeline, {}).get(component) or SHARED.get(component)
    if row is None:
        raise InputError(f"step '{component}' of pipeline '{pipeline}' has no resources: "
                         "add a row to components/settings/resources.py")
    return row
