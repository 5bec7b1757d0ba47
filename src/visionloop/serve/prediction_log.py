"""Prediction logging in the server: sampling rules per model, a bounded queue, one background writer.

    logger = PredictionLogger(settings, metrics)       # None of this exists when `settings.log_predictions` is empty
    logger.start(store)                                # the writer task, on the server's event loop
    logger.offer(target, "a.jpg", data, result)        # per served image: O(1), never waits, never raises
    await logger.close()                               # writes what is queued (bounded wait), then stops

A request never waits for the log: `offer` decides with the model's `LogRules` (`Sampler`, a pure function of
the clock and the rules' counters), then puts the image on a queue bounded in items and bytes; when it is full the
image is dropped and counted (`visionloop_prediction_log_dropped_total`). The writer takes whatever is queued (up
to `log_batch`) and appends it in one store transaction in a thread. Memory: the queue's bytes plus one batch.
Embeddings: where the server has an embedder (`Settings.log_embedder`), that thread embeds the batch's images
(one ONNX session, one thread, `log_batch` images at most per call) before writing them, so a row has its vector;
an image that cannot be embedded is written without one. The cost stays on the writer: when it falls behind, the
queue fills and images are dropped and counted, requests never wait.
The clock and the random draw are attributes (`clock`, `sampler.rng`), so tests drive time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from visionloop.serve.metrics import Metrics
from visionloop.serve.settings import LogRules, Settings
from visionloop.store import Store
from visionloop.store import prediction_log as plog

log = logging.getLogger(__name__)

WINDOWS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass
class Decision:
    """What a kept image will count against once it is queued: (rules key, window, class or "") triples."""

    key: str
    now: float
    counts: list[tuple[str, str]] = field(default_factory=list)  # (window, class or "")


class Sampler:
    """Which images to keep, per rules key (the served name, the registry model name, or "*"), exactly.

    Counters live in UTC calendar windows (a minute is `floor(t / 60)`); `check` says yes (a `Decision`) or
    why not (a reason string) without counting, and `commit` counts once the image is actually queued."""

    def __init__(self, rules: dict[str, LogRules], *, rng: random.Random | None = None) -> None:
        self.rules = rules
        self.rng = rng or random.Random()
        self._counts: dict[tuple[str, str, str], tuple[int, int]] = {}  # (key, window, class) -> (window no, n)

    def rules_for(self, name: str, model_name: str) -> tuple[str, LogRules] | None:
        for key in (name, model_name, "*"):
            if key in self.rules:
                return key, self.rules[key]
        return None

    def _n(self, key: str, window: str, cls: str, now: float) -> int:
        idx, n = self._counts.get((key, window, cls), (-1, 0))
        return n if idx == int(now // WINDOWS[window]) else 0

    def check(self, key: str, rules: LogRules, now: float, top: float | None, classes: list[str]) -> Decision | str:
        if rules.below is not None and top is not None and top >= rules.below:
            return "confident"
        if rules.rate < 1.0 and not self.rng.random() < rules.rate:
            return "rate"
        d = Decision(key, now)
        for c in classes:
            cap = rules.class_caps.get(c)
            if cap is not None:
                if self._n(key, rules.cap_window, c, now) >= cap:
                    return "class_cap"
                d.counts.append((rules.cap_window, c))
        for window, limit in (("minute", rules.per_minute), ("hour", rules.per_hour), ("day", rules.per_day)):
            if limit is not None:
                if self._n(key, window, "", now) >= limit:
                    return "limit"
                d.counts.append((window, ""))
        return d

    def commit(self, d: Decision) -> None:
        for window, cls in d.counts:
            idx = int(d.now // WINDOWS[window])
            self._counts[(d.key, window, cls)] = (idx, self._n(d.key, window, cls, d.now) + 1)


class PredictionLogger:
    def __init__(self, settings: Settings, metrics: Metrics, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.sampler = Sampler(settings.log_predictions)
        self.max_bytes = int(settings.log_queue_mb * 1024 * 1024)
        self.queued_bytes = 0
        #: images queued or being written (0: everything offered so far is in the store, or failed)
        self.pending = 0
        self.write: Callable[[Store, list[plog.LogEntry]], int] = plog.append  # tests stall it to fill the queue
        self._queue: asyncio.Queue[tuple[plog.LogEntry, tuple[str, str]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._store: Store | None = None
        #: (embedder name, OnnxEmbedder) or None: resolved at `start`
        self.embedder: tuple[str, Any] | None = None

    def _resolve_embedder(self, store: Store) -> tuple[str, Any] | None:
        choice = self.settings.log_embedder
        if choice == "off":
            return None
        from visionloop.infer.embed import OnnxEmbedder
        from visionloop.store.models import blob_file

        if choice == "auto":
            from visionloop.store.concepts import embedder_blob
            from visionloop.train.concepts import DEFAULT_EMBEDDER

            sha = embedder_blob(store, DEFAULT_EMBEDDER)
            if sha is None:
                log.info("prediction log: the project has no stored embedder; rows are logged without embeddings")
                return None
            return DEFAULT_EMBEDDER, OnnxEmbedder(blob_file(store, sha), threads=1)
        from pathlib import Path

        from visionloop.core.errors import VisionLoopError
        from visionloop.store.blobs import sha256_bytes

        if not Path(choice).is_file():
            raise VisionLoopError("the prediction log's embedder file is not there", path=choice,
                                  hint="pass an ONNX embedder file, auto or off (log_embedder)")
        data = Path(choice).read_bytes()
        return f"onnx:{Path(choice).name}@{sha256_bytes(data)[:12]}", OnnxEmbedder(data, threads=1)

    def _embed_and_write(self, store: Store, entries: list[plog.LogEntry]) -> int:
        if self.embedder is not None:
            name, enc = self.embedder
            entries = [self._embedded(e, name, enc) for e in entries]
        return self.write(store, entries)

    @staticmethod
    def _embedded(e: plog.LogEntry, name: str, enc: Any) -> plog.LogEntry:
        import dataclasses

        import cv2
        import numpy as np

        try:
            bgr = cv2.imdecode(np.frombuffer(e.image, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                return e
            vec = enc.embed([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)])[0]
        except Exception:  # a row without a vector, never a lost row
            log.exception("prediction log: embedding an image failed")
            return e
        return dataclasses.replace(e, embedding=vec, embedding_model=name)

    def start(self, store: Store) -> None:
        self._store = store
        self.embedder = self._resolve_embedder(store)  # a named file that is not an embedder refuses to start
        self._queue = asyncio.Queue(self.settings.log_queue)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="prediction-log")

    def offer(self, target: Any, image_name: str, data: bytes, result: dict[str, Any], *,
              key_prefix: str | None = None) -> bool:
        """Keep this served image if the rules say so and there is room; True when queued. Never raises."""
        try:
            return self._offer(target, image_name, data, result, key_prefix)
        except Exception:  # a bug here must not fail a request that already has its answer
            log.exception("prediction log: offer failed")
            return False

    def _offer(self, target: Any, image_name: str, data: bytes, result: dict[str, Any],
               key_prefix: str | None) -> bool:
        if self._queue is None:
            return False
        found = self.sampler.rules_for(target.name, target.model.name)
        if found is None:
            return False
        labels = (target.name, str(target.version))
        preds = result["predictions"]
        top, _, classes = plog.summary(preds)
        now = self.clock()
        decision = self.sampler.check(found[0], found[1], now, top, classes)
        if isinstance(decision, str):
            self.metrics.log_skipped.labels(*labels, decision).inc()
            return False
        if self._queue.full() or self.queued_bytes + len(data) > self.max_bytes:
            self.metrics.log_dropped.labels(*labels).inc()
            return False
        size = result["size"]
        entry = plog.LogEntry(created_at=datetime.fromtimestamp(now, UTC), model=target.name,
                              model_name=target.model.name, model_version=target.version, task=target.model.task,
                              image=data, width=size["width"], height=size["height"], predictions=preds,
                              image_name=image_name, key_prefix=key_prefix)
        self._queue.put_nowait((entry, labels))
        self.queued_bytes += len(data)
        self.pending += 1
        self.sampler.commit(decision)
        self.metrics.log_queue.set(self._queue.qsize())
        return True

    async def _run(self) -> None:
        assert self._queue is not None and self._store is not None
        q = self._queue
        while True:
            batch = [await q.get()]
            while len(batch) < self.settings.log_batch and not q.empty():
                batch.append(q.get_nowait())
            self.queued_bytes -= sum(len(e.image) for e, _ in batch)
            self.metrics.log_queue.set(q.qsize())
            try:
                await asyncio.to_thread(self._embed_and_write, self._store, [e for e, _ in batch])
                outcome = self.metrics.log_written
            except Exception:  # the store is locked or gone: these rows are lost, counted, and serving goes on
                log.exception("prediction log: a batch of %d images was not written", len(batch))
                outcome = self.metrics.log_failed
            finally:
                self.pending -= len(batch)
                for _ in batch:
                    q.task_done()
            for _, labels in batch:
                outcome.labels(*labels).inc()

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued image is written (or failed); False when `timeout` ran out first."""
        if self._queue is None:
            return True
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self, timeout: float = 10.0) -> None:
        if self._task is None:
            return
        if not await self.flush(timeout):
            assert self._queue is not None
            log.warning("prediction log: %d queued images not written at shutdown", self._queue.qsize())
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
