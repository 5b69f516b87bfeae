"""Prometheus metrics of the service, in a registry of its own (one per app, so several apps in
one process, as in tests, never collide).

Labelled children are cached: `Counter.labels(...)` takes a lock and builds a key on every call,
and the hot path counts several things per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "ENDPOINTS", "ServiceMetrics"]

ENDPOINTS = {
    "/predict": "predict",
    "/feedback": "feedback",
    "/health": "health",
    "/version": "version",
    "/metrics": "metrics",
    "/docs": "docs",
    "/openapi.json": "docs",
}
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RECORD_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServiceMetrics:
    def __init__(self, target: str) -> None:
        self.registry = CollectorRegistry()
        counter = partial(Counter, registry=self.registry)
        gauge = partial(Gauge, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        self.requests = counter(
            "mlops_http_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
        )
        self.latency = histogram(
            "mlops_http_request_duration_seconds",
            "Time from request start to the end of the response, by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
        )
        self.predicted_class = counter(
            "mlops_predicted_class",
            "Predicted records by class (classification), by release",
            ["release", "class"],
        )
        # Regression only, created with the first regression bundle (`set_value_buckets`): a
        # histogram's buckets are fixed at creation and depend on the target's scale.
        self.predicted_value: Histogram | None = None
        flags_doc = "Accepted input values outside what training saw, by flag kind and field"
        self.flags = counter("mlops_input_flags", flags_doc, ["kind", "field"])
        records = partial(histogram, buckets=RECORD_BUCKETS)
        self.request_records = records("mlops_request_records", "Records per /predict request")
        self.batch_records = records(
            "mlops_batch_records", "Records per model call (micro-batch size)"
        )
        self.batch_requests = records(
            "mlops_batch_requests", "Requests scored together in one model call"
        )
        self.model_seconds = histogram(
            "mlops_model_seconds",
            "Time of one model call (frame building and predict)",
            buckets=LATENCY_BUCKETS,
        )
        self.release = Info("mlops_release", "The release being served", registry=self.registry)
        self.model_loaded = gauge("mlops_model_loaded", "1 when a model is loaded and serving")
        self.in_sync = gauge(
            "mlops_release_in_sync",
            "1 when the served release is the one deploy/<target>.json declares",
        )
        self.load_failures = counter(
            "mlops_release_load_failures",
            "Bundles refused or failed to load (the previous one kept serving)",
        )
        self.swaps = counter("mlops_release_swaps", "Model swaps (releases followed)")
        self.log_backlog = gauge(
            "mlops_prediction_log_backlog", "Prediction log entries not yet written"
        )
        self.feedback_labels = counter("mlops_feedback_labels", "Ground-truth labels accepted")
        self.target = target
        self.release.info({"target": target, "release": "", "bundle": ""})
        self._req: dict[tuple[str, int], Any] = {}
        self._lat: dict[str, Any] = {}
        self._cls: dict[tuple[str, str], Any] = {}
        self._val: dict[str, Any] = {}
        self._flags: dict[str, Any] = {}

    # ------------------------------------------------------------------------------ recording
    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        child = self._req.get((endpoint, status))
        if child is None:
            child = self._req[(endpoint, status)] = self.requests.labels(endpoint, str(status))
        child.inc()
        hist = self._lat.get(endpoint)
        if hist is None:
            hist = self._lat[endpoint] = self.latency.labels(endpoint)
        hist.observe(seconds)

    def observe_predictions(
        self, release: str, predictions: Sequence[Any], classifier: bool
    ) -> None:
        if classifier:
            counts: dict[str, int] = {}
            for label in predictions:
                counts[label] = counts.get(label, 0) + 1
            for label, n in counts.items():
                child = self._cls.get((release, label))
                if child is None:
                    child = self._cls[(release, label)] = self.predicted_class.labels(
                        release, label
                    )
                child.inc(n)
        elif self.predicted_value is not None:
            hist = self._val.get(release)
            if hist is None:
                hist = self._val[release] = self.predicted_value.labels(release)
            for value in predictions:
                hist.observe(value)

    def observe_flags(self, flags: Sequence[Sequence[str]]) -> None:
        for row in flags:
            for flag in row:
                child = self._flags.get(flag)
                if child is None:
                    kind, _, field = flag.partition(":")
                    child = self._flags[flag] = self.flags.labels(kind, field)
                child.inc()

    def set_value_buckets(self, reference: Sequence[float]) -> None:
        """Create the regression histogram with buckets at the deciles of a bundle's reference
        predictions (once: later bundles share them, so their distributions stay comparable)."""
        if self.predicted_value is not None:
            return
        import numpy as np

        values = np.asarray(reference, dtype=float)
        values = values[np.isfinite(values)]
        edges = (
            sorted({float(v) for v in np.quantile(values, np.linspace(0.05, 0.95, 10))})
            if values.size
            else [0.0]
        )
        self.predicted_value = Histogram(
            "mlops_predicted_value",
            "Predicted values (regression), by release; buckets at the deciles of the first "
            "bundle's reference predictions",
            ["release"],
            buckets=edges,
            registry=self.registry,
        )

    def set_release(self, release: str | None, bundle: str | None, loaded: bool) -> None:
        self.release.info({"target": self.target, "release": release or "", "bundle": bundle or ""})
        self.model_loaded.set(1 if loaded else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
