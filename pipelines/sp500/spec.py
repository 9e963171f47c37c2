"""The sp500 pipeline as generic code sees it: its gate, its steps' resources, its requests."""

from components.release.config import ReleaseConfig
from components.settings.resources import StepResources
from pipelines.spec import DataRequests, PipelineSpec, PredictSpec, deferred

# Peaks in the comments: default parameters on the offline data (2010-2018 daily prices);
# how they are measured and sized: components.settings.resources.
RESOURCES = {
    "download-prices": StepResources("250m", "1", "512Mi", "1Gi"),   # 233 MiB; any tickers from a URI
    "preprocess": StepResources("250m", "1", "256Mi", "1Gi"),    # 148 MiB
    "train": StepResources("1", "4", "1536Mi", "3Gi"),           # 867 MiB; TensorFlow's thread pools
    "evaluate": StepResources("500m", "2", "1Gi", "2Gi"),        # 837 MiB; TensorFlow loads the model
}

SPEC = PipelineSpec(
    name="sp500",
    make_pipeline=deferred("pipelines.sp500.pipeline", "make_pipeline"),
    check_parameters=deferred("pipelines.sp500.pipeline", "check_parameters"),
    gate_task="evaluate",
    release=ReleaseConfig(gate_metric="accuracy", baseline_metric="always_up_accuracy",
                          model_name="sp500", threshold=0.7),
    resources=RESOURCES,
    predict=PredictSpec(
        class_names={0: "S&P 500 closes down (or flat)", 1: "S&P 500 closes up"},
        requests=DataRequests(options={"--date": {"help": "sp500: the features of this trading day, YYYY-MM-DD"}},
                              build=deferred("pipelines.sp500.requests", "date_request"),
                              add_arguments=deferred("pipelines.sp500.requests", "add_arguments")),
    ),
)
