"""The server's Prometheus metrics, as TF-Serving exposes them on its REST port.

TF-Serving (with `prometheus_config { enable: true }`) serves
`/monitoring/prometheus/metrics` with `:tensorflow:serving:request_count`
(by model and status) and a `:tensorflow:serving:request_latency` histogram in
microseconds. This server adds the answering version and its serving label
(`stable`, `canary`, or empty) to both, so a canary's share, errors and latency
can be read beside the stable version's. Model loads are counted under
TensorFlow's own name, `:tensorflow:cc:saved_model:load_attempt_count` (by
`model_path` and `status`, `success` or `fail`), to which this server adds the
model's name and version. The client library writes counters with the `_total`
suffix of the OpenMetrics convention. deploy/monitoring/ holds a Grafana
dashboard and Prometheus rules over these names (docs/monitoring.md).
"""

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Microseconds, 10 us to ~40 s in steps of x2.5 (TF-Serving uses finer x1.8 steps).
LATENCY_BUCKETS_US = tuple(10 * 2.5 ** i for i in range(17))
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
LOAD_ATTEMPT_COUNT = ":tensorflow:cc:saved_model:load_attempt_count"


def no_label(model_name: str, version: int) -> str:
    return ""


@dataclass
class RequestOutcome:
    """Filled in while a request runs: which version answered, and how it ended."""

    version: int | None = None
    status: str = "OK"  # a gRPC status code name, for REST too (as TF-Serving counts)


@dataclass
class ServingMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # The serving label of a model's version when it answers; the model registry that owns
    # these metrics sets it, since the labels change while the server runs (promote, rollback).
    label_of: Callable[[str, int], str] = no_label

    def __post_init__(self):
        labels = ["model_name", "version", "label", "API", "entrypoint"]
        self.requests = Counter(REQUEST_COUNT, "Requests, by model, version, serving label and status.",
                                [*labels, "status"], registry=self.registry)
        self.latency = Histogram(REQUEST_LATENCY, "Request latency in microseconds.",
                                 labels, buckets=LATENCY_BUCKETS_US, registry=self.registry)
        self.load_attempts = Counter(LOAD_ATTEMPT_COUNT, "Attempts to load a model version, by outcome.",
                                     ["model_path", "status", "model_name", "version"], registry=self.registry)

    @contextmanager
    def request(self, model_name: str, api: str, entrypoint: str):
        """Count and time one request; the caller fills in the outcome it yields."""
        outcome = RequestOutcome()
        started = time.perf_counter()
        try:
            yield outcome
        except BaseException:
            if outcome.status == "OK":  # not a refusal the API mapped: a failure of the server
                outcome.status = "INTERNAL"
            raise
        finally:
            if outcome.version is None:
                version, label = "", ""
            else:
                version, label = str(outcome.version), self.label_of(model_name, outcome.version)
            self.requests.labels(model_name, version, label, api, entrypoint, outcome.status).inc()
            self.latency.labels(model_name, version, label, api, entrypoint).observe(
                (time.perf_counter() - started) * 1e6)

    def load_attempt(self, model_name: str, version: int, model_path: str, loaded: bool) -> None:
        """One attempt to load a version, with TensorFlow's status values."""
        self.load_attempts.labels(model_path, "success" if loaded else "fail", model_name, str(version)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
