"""Prometheus metrics of one app (its own registry: no process-wide state). Labels: model and version only
(plus the route template and status code on the HTTP counter) — never image ids or keys."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCHES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.http = Counter("visionloop_http_requests", "HTTP requests by route and status code",
                            ["method", "route", "code"], registry=r)
        self.requests = Counter("visionloop_requests", "Prediction requests by model, version and status code",
                                ["model", "version", "code"], registry=r)
        self.images = Counter("visionloop_images", "Images predicted", ["model", "version"], registry=r)
        self.latency = Histogram("visionloop_request_duration_seconds", "Prediction request latency",
                                 ["model", "version"], buckets=LATENCY, registry=r)
        self.inference = Histogram("visionloop_inference_duration_seconds", "ONNX Runtime time per batch",
                                   ["model", "version"], buckets=LATENCY, registry=r)
        self.queue_wait = Histogram("visionloop_queue_wait_seconds", "Time an image waited for its batch",
                                    ["model", "version"], buckets=LATENCY, registry=r)
        self.batch_size = Histogram("visionloop_batch_size", "Images per inference batch", ["model", "version"],
                                    buckets=BATCHES, registry=r)
        self.queue_depth = Gauge("visionloop_queue_depth", "Images waiting for inference", ["model", "version"],
                                 registry=r)
        self.rejected = Counter("visionloop_rejected", "Requests refused because the queue was full",
                                ["model", "version"], registry=r)
        self.loaded = Gauge("visionloop_models_loaded", "ONNX Runtime sessions in memory", registry=r)
        self.swaps = Counter("visionloop_model_swaps", "Hot swaps after a promote", ["model"], registry=r)
        # the prediction log (serve/prediction_log.py): images kept, skipped by a rule, dropped on a full queue
        self.log_written = Counter("visionloop_prediction_log_written", "Served images written to the prediction log",
                                   ["model", "version"], registry=r)
        self.log_skipped = Counter("visionloop_prediction_log_skipped",
                                   "Served images the sampling rules did not keep (reason: confident, rate, "
                                   "class_cap, limit)", ["model", "version", "reason"], registry=r)
        self.log_dropped = Counter("visionloop_prediction_log_dropped",
                                   "Images to log dropped because the log queue was full", ["model", "version"],
                                   registry=r)
        self.log_failed = Counter("visionloop_prediction_log_failed", "Images to log whose store write failed",
                                  ["model", "version"], registry=r)
        self.log_queue = Gauge("visionloop_prediction_log_queue", "Images waiting to be written to the log",
                               registry=r)
