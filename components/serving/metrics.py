"""The server's Prometheus metrics, as TF-Serving exposes them on its REST port.

TF-Serving (with `prometheus_config { enable: true }`) serves
`/monitoring/prometheus/metrics` with `:tensorflow:serving:request_count`
(by model and status) and a `:tensorflow:serving:request_latency` histogram in
microseconds. This server adds the answering version to both, so a canary's
share and errors can be read beside the stable version's. The client library
writes counters with the `_total` suffix of the OpenMetrics convention.
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Microseconds, 10 us to ~40 s in steps of x2.5 (TF-Serving uses finer x1.8 steps).
LATENCY_BUCKETS_US = tuple(10 * 2.5 ** i for i in range(17))


@dataclass
class RequestOutcome:
    """Filled in while a request runs: which version answered, and how it ended."""

    version: int | None = None
    status: str = "OK"  # a gRPC status code name, for REST too (as TF-Serving counts)


@dataclass
class ServingMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self):
        labels = ["model_name", "version", "API", "entrypoint"]
        self.requests = Counter(":tensorflow:serving:request_count", "Requests, by model, version and status.",
                                [*labels, "status"], registry=self.registry)
        self.latency = Histogram(":tensorflow:serving:request_latency", "Request latency in microseconds.",
                                 labels, buckets=LATENCY_BUCKETS_US, registry=self.registry)

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
            version = "" if outcome.version is None else str(outcome.version)
            self.requests.labels(model_name, version, api, entrypoint, outcome.status).inc()
            self.latency.labels(model_name, version, api, entrypoint).observe((time.perf_counter() - started) * 1e6)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
