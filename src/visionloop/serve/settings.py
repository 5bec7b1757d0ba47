"""Server settings: one object, built by the CLI (or a test), passed to `create_app`."""

from __future__ import annotations

import ipaddress
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LogRules(BaseModel):
    """Which served images of one model the prediction log keeps (checked in this order, per image):
    `below` (only images whose top confidence is under it, or that have no prediction), then a `rate` draw, then
    `class_caps` (an image is kept only while every class it shows is under its cap in the current `cap_window`),
    then the per-minute/hour/day limits (UTC calendar windows). An image refused by a later rule does not count
    against an earlier one's budget. Counters live in the server process: with `--workers N` each worker keeps
    its own, so the caps and limits hold per worker."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(1.0, ge=0, le=1)
    below: float | None = Field(None, ge=0, le=1)
    class_caps: dict[str, int] = Field(default_factory=dict)
    cap_window: Literal["minute", "hour", "day"] = "day"
    per_minute: int | None = Field(None, ge=0)
    per_hour: int | None = Field(None, ge=0)
    per_day: int | None = Field(None, ge=0)


class Settings(BaseModel):
    """Every knob of `visionloop serve`. The batching defaults come from `bench/serve.py` (see README)."""

    host: str = "127.0.0.1"
    port: int = 8000
    #: None: required exactly when `host` is not loopback; True forces it on loopback too
    auth: bool | None = None
    #: requests per minute per key when the key has no limit of its own
    rate_limit: int = 600
    #: seconds a looked-up key is trusted before the store is asked again (revocation delay)
    key_cache_s: float = 2.0

    # dynamic micro-batching, per loaded model: batch what is already queued (greedy), up to `batch_limit()`,
    # never wait. Measured on 2 CPU cores (bench/serve.py --sweep, 320 px detector): ONNX Runtime on one thread
    # runs a batch of N in N times one image's time (13.5 ms per image at batch 1, 26.6 ms for 2, 56.5 ms for
    # 4), so with one ORT thread per inference thread (the CPU default, 2 × 1) batching gains nothing and only
    # holds images back: batch 1 served 96 req/s at p99 104 ms with 8 clients, batch 4 93 req/s at p99 156 ms,
    # batch 8 94 req/s at p99 209 ms; at 32 clients 95 vs 94 vs 89 req/s. With two ORT threads per session a
    # batch of 2 runs 1.25x the images/s of batch 1, so there (`--model-workers 1 --threads 2`, or a GPU) the
    # default batches up to 4; waiting for a batch to fill bought no throughput and cost p95.
    max_batch: int | None = Field(None, ge=1, le=256)
    max_wait_ms: float = Field(0.0, ge=0, le=1000)
    #: images waiting for inference per model; beyond it requests get 503 + Retry-After
    queue_size: int = Field(64, ge=1)
    retry_after_s: int = 1

    # inputs
    max_images: int = Field(16, ge=1)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(50_000_000, ge=1)
    #: hosts (exact names) whose http(s) URLs a JSON request may ask the server to fetch; empty: off
    url_allow_list: list[str] = Field(default_factory=list)
    url_timeout_s: float = 5.0
    #: frames one video job predicts at most
    max_video_frames: int = Field(3600, ge=1)

    # models
    #: serve only these names (registry models or task families); empty: every servable model
    models: list[str] = Field(default_factory=list)
    cache_models: int = Field(4, ge=1)
    precision: str = "fp32"
    #: load every family's current model at start-up (else on first use)
    preload: bool = True
    #: seconds between registry checks (a promote elsewhere is served after at most this)
    refresh_s: float = 2.0
    #: concurrent inference threads per model (None: one per core, at most 4, on CPU; 1 on a GPU), each running
    #: ONNX Runtime with `threads` intra-op threads (None: cores / workers). Measured on an idle 2-core machine
    #: with a 320 px detector (bench/serve.py --sweep): 2 workers × 1 thread served 41-43 req/s at 8 and 32
    #: clients against 31-37 for 1 worker × 2 threads, at a lower p95, and held up better beside other busy
    #: processes (a multi-threaded run stalls when one of its threads is descheduled); 1 × 2 answers a lone
    #: client faster (28 ms vs 42 ms p50): `--model-workers 1 --threads 2` for that.
    workers: int | None = Field(None, ge=1, le=64)
    #: ONNX Runtime intra-op threads per inference thread
    threads: int | None = None
    #: on CPU, when every inference thread runs ONNX Runtime on one thread: a second session of each model that
    #: uses every core, run for an image that arrives while nothing else is being inferred (a lone client's
    #: answer comes sooner; under load the one-thread sessions serve). See `solo_threads()`.
    solo: bool = True
    #: how long (µs) ONNX Runtime's intra-op threads spin for more work before they sleep (0: never spin; None:
    #: ONNX Runtime's default). Between runs a server parses HTTP and JSON and decodes images; pool threads still
    #: spinning after a run take a core from that. On 2 cores, a lone client's answer (2-thread solo session):
    #: ORT's default spin made sending the response take 0.87 ms, 200 µs 0.15 ms, while back-to-back runs take
    #: the same time with either (19.4 vs 19.4 ms; no spinning at all: 20.7). See bench/serve.py.
    spin_us: int | None = Field(200, ge=0, le=10_000_000)
    device: str = "cpu"
    decode_threads: int = 2

    # prediction log (off by default): rules by served name or registry model name, "*" for every other model
    log_predictions: dict[str, LogRules] = Field(default_factory=dict)
    #: images waiting to be written, and their bytes; beyond either, an image is dropped (and counted), never waited on
    log_queue: int = Field(1024, ge=1)
    log_queue_mb: float = Field(64.0, gt=0)
    #: rows per store transaction at most (the writer takes what is queued, up to this)
    log_batch: int = Field(64, ge=1)
    #: the embedder of logged images, run by the log's writer thread (never on a request): "auto" — the project's
    #: stored default embedder (a concept's), none when the project has none; "off"; or an ONNX embedder file
    log_embedder: str = "auto"

    @field_validator("log_embedder")
    @classmethod
    def _embedder_file(cls, v: str) -> str:
        if v not in ("auto", "off") and not os.path.isfile(v):
            raise ValueError(f"log_embedder: {v!r} is neither auto, off nor an ONNX embedder file")
        return v

    def inference_workers(self) -> int:
        if self.workers:
            return self.workers
        return 1 if self.device != "cpu" else max(1, min(4, os.cpu_count() or 1))

    def ort_threads(self) -> int | None:
        if self.threads or self.device != "cpu":
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.inference_workers())

    def batch_limit(self) -> int:
        """The largest inference batch: `max_batch` when set, else 1 on CPU when every inference thread runs
        ONNX Runtime on one thread (nothing to gain, see above), else 4."""
        if self.max_batch:
            return self.max_batch
        return 1 if self.device == "cpu" and self.ort_threads() == 1 else 4

    def solo_threads(self) -> int | None:
        """ONNX Runtime threads of the solo session (None: no solo session): the cores (at most 4), on CPU with
        several inference threads of one ORT thread each."""
        if not self.solo or self.device != "cpu" or self.inference_workers() < 2 or self.ort_threads() != 1:
            return None
        return max(2, min(4, os.cpu_count() or 1))

    def auth_required(self) -> bool:
        return bool(self.auth) if self.auth is not None else not is_loopback(self.host)
