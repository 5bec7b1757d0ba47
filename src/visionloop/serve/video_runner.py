"""A video job's work: frames sampled as `visionloop predict` samples them (`infer.video`), each through the
model's batcher (a video shares batches with ordinary requests and yields the queue to them), a detector's
detections linked into tracks by infer's IoU tracker (ByteTrack-style, per class). The job bookkeeping
(ids, polling, keeping the newest) is `serve.jobs`."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError
from visionloop.serve.answers import Params, answer, pipeline_predictions
from visionloop.serve.engine import Loaded
from visionloop.serve.errors import RetryLater

log = logging.getLogger(__name__)


async def run_video(job: Any, loaded: Loaded, path: Path, params: Params, keep: np.ndarray | None, *,
                    decode: Executor, max_frames: int) -> None:
    """Fill `job` with per-frame predictions and tracks; the video file is deleted when done."""
    from visionloop.infer.video import IoUTracker, sample_frames

    loop = asyncio.get_running_loop()
    p = loaded.predictor
    tracker = IoUTracker(high=params.confidence, low=min(0.1, params.confidence / 2)) \
        if p.task in ("detect", "segment") else None
    low = replace(params, confidence=min(params.confidence, tracker.low)) if tracker else params
    gen = itertools.islice(sample_frames(path, job.every_ms), max_frames)
    job.status = "running"
    try:
        while (item := await loop.run_in_executor(decode, next, gen, None)) is not None:
            index, ms, rgb = item
            preds = await frame(loaded, rgb, low, keep, decode=decode)
            if tracker is not None:
                boxes = np.asarray([[d["box"][k] for k in ("x0", "y0", "x1", "y1")] for d in preds],
                                   np.float64).reshape(-1, 4)
                scores = np.asarray([d["confidence"] for d in preds], np.float64)
                labels = np.asarray([d["class_id"] for d in preds], np.int64)
                ids = tracker.update(boxes, scores, labels, frame=index, time_ms=ms)
                preds = [{**d, "track": int(i) or None} for d, i in zip(preds, ids, strict=True)
                         if d["confidence"] >= params.confidence or i]
            job.frames.append({"index": index, "time_ms": round(ms, 1), "predictions": preds})
        if tracker is not None:
            job.tracks = [t.to_json(p.classes) for t in tracker.tracks()]
        job.status = "done"
    except VisionLoopError as e:
        job.status, job.error = "failed", e.message
    except Exception:
        log.exception("video job %s failed", job.id)
        job.status, job.error = "failed", "internal error (logged)"
    finally:
        job.finished = time.time()
        await loop.run_in_executor(decode, gen.close)
        path.unlink(missing_ok=True)


async def frame(loaded: Loaded, rgb: np.ndarray, params: Params, keep: np.ndarray | None, *,
                decode: Executor) -> list[dict[str, Any]]:
    """One video frame's predictions; waits while the model's queue is full of live requests (they go first)."""
    loop = asyncio.get_running_loop()
    p = loaded.predictor
    x = matrix = None
    if not loaded.pipeline:
        x, matrix = await loop.run_in_executor(decode, p.preprocess, rgb)
    while True:
        try:
            if loaded.pipeline:
                got = await loaded.batcher.submit(rgb, conf=params.confidence, max_det=params.max_detections)
                return pipeline_predictions(got.prediction, keep)
            assert x is not None
            res = await loaded.batcher.submit(x[0])
            break
        except RetryLater:
            await asyncio.sleep(0.05)
    h, w = rgb.shape[:2]
    return await loop.run_in_executor(decode, answer, p, res.outputs, matrix, w, h, params, keep)
