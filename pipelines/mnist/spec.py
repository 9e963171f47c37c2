"""The mnist pipeline as generic code sees it: its gate, its steps' resources, its requests."""

from pathlib import Path

from components.release.config import ReleaseConfig
from components.settings.resources import StepResources
from pipelines.spec import DataRequests, PipelineSpec, PredictSpec, deferred

# Peaks in the comments: default parameters on the 5,000 shipped digits, 4 trials of 6 epochs;
# how they are measured and sized: components.settings.resources.
RESOURCES = {
    # The full MNIST (70,000 digits, 14x the shipped set) is ~220 MB as float32 arrays.
    "download-digits": StepResources("250m", "1", "256Mi", "1Gi"),    # 69 MiB
    "preprocess-digits": StepResources("500m", "1", "512Mi", "2Gi"),  # 68 MiB on 5,000 digits
    "train-trial": StepResources("1", "4", "1536Mi", "3Gi"),    # 970 MiB per trial
    # Trains one trial at a time in its process (locally), as train-trial does: sized like it, not measured.
    "search-trials": StepResources("1", "4", "1536Mi", "3Gi"),
    "take-best-model": StepResources("250m", "1", "256Mi", "512Mi"),  # a copy of one SavedModel, like select
    "select-best-trial": StepResources("250m", "1", "256Mi", "512Mi"),  # 76 MiB
    "evaluate": StepResources("500m", "2", "1Gi", "2Gi"),        # 936 MiB
}

SPEC = PipelineSpec(
    name="mnist",
    make_pipeline=deferred("pipelines.mnist.pipeline", "make_pipeline"),
    check_parameters=deferred("pipelines.mnist.pipeline", "check_parameters"),
    gate_task="evaluate",
    release=ReleaseConfig(gate_metric="accuracy", baseline_metric="majority_class_accuracy",
                          model_name="mnist", threshold=0.7),
    resources=RESOURCES,
    predict=PredictSpec(
        requests=DataRequests(options={"--image": {"type": Path, "help": "mnist: an image file of a digit"},
                                       "--index": {"type": int, "help": "mnist: this image of the offline test set"}},
                              build=deferred("pipelines.mnist.requests", "digit_request")),
    ),
)
