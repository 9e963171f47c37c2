"""The crypto pipeline as generic code sees it: its gate, its steps' resources, its served model."""

from components.release.config import LIGHTGBM, ReleaseConfig
from components.settings.resources import StepResources
from pipelines.spec import PipelineSpec, PredictSpec, deferred

# Sized for the real data: 24M rows in train.csv (3.65 GB), 12.7M from 2020 on. Peaks in the
# comments on 12.2M generated rows (bench/bench_crypto.py) first, then on the default generated
# month; how they are measured and sized: components.settings.resources.
RESOURCES = {
    # 1.9 GB generating 12.7M rows, 218 MiB on a month; a download streams
    "download-data": StepResources("1", "2", "4Gi", "8Gi"),
    # 0.43 GB: the CSV streams through, a few blocks at a time, whatever its size (210 MiB on a month)
    "load-data": StepResources("2", "2", "1Gi", "2Gi"),
    # 1.1 GB: the input memory-mapped (0.55 GB of it) and three assets at a time (202 MiB on a month)
    "build-features": StepResources("2", "2", "2Gi", "4Gi"),
    "train-model": StepResources("4", "4", "6Gi", "12Gi"),  # 2.7 GB (float32 matrices, LightGBM bins), 422 MiB
    "evaluate": StepResources("1", "2", "2Gi", "4Gi"),  # the test period only: 0.87 GB, 284 MiB
}

SPEC = PipelineSpec(
    name="crypto",
    make_pipeline=deferred("pipelines.crypto.pipeline", "make_pipeline"),
    check_parameters=deferred("pipelines.crypto.pipeline", "check_parameters"),
    gate_task="evaluate",
    release=ReleaseConfig(gate_metric="weighted_correlation", baseline_metric="weighted_correlation_reversal_baseline",
                          model_format=LIGHTGBM, model_name="crypto", threshold=0.01),
    resources=RESOURCES,
    has_gpu_variant=False,
    # The local server serves the LightGBM model with the signature `features` [batch, n] ->
    # `predictions` (components.serving.servables). On a cluster KServe serves it: its REST
    # predict takes the same JSON, but it has no TF-Serving gRPC and no metadata endpoint.
    predict=PredictSpec(
        transport="rest",
        scalar_outputs={"predictions": "predicted Target (15-minute forward return, market removed)"},
        signature=deferred("pipelines.crypto.requests", "served_signature"),
    ),
)
