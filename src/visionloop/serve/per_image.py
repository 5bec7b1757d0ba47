"""One image of a prediction request through a loaded model (what `Service.predict` runs per image).

    per = PerImage(decode_pool, max_pixels)
    out = await per.one(loaded, index, name, data, params, keep)   # the API's answer for that image

Four ways, by the model and the request: without cross-request batching (the CPU default) decoding,
inference and the answer are one trip to an inference thread (`Batcher.submit_whole`); with batching, decode
+ letterbox in the decode pool, the batcher, then the answer in the pool; a pipeline model (OCR) gets the
decoded image whole; `tile` cuts the image and sends every tile through the batcher.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from visionloop.infer.post import select, unletterbox
from visionloop.serve import images as img
from visionloop.serve.answers import Params, answer, detections, ms, pipeline_predictions
from visionloop.serve.engine import Batcher, Loaded
from visionloop.serve.errors import BadRequest


def _record(index: int, name: str, w: int, h: int, preds: list[dict[str, Any]], batch: int, decode_s: float,
            queue_s: float, inference_s: float, post_s: float, total_s: float, **extra: Any) -> dict[str, Any]:
    """One image's answer: its size, predictions, batch and timings (the API's `ImageOut`)."""
    return {"index": index, "name": name, "size": {"width": w, "height": h}, "predictions": preds,
            "batch_size": batch, **extra,
            "timings": {"decode_ms": ms(decode_s), "queue_ms": ms(queue_s), "inference_ms": ms(inference_s),
                        "postprocess_ms": ms(post_s), "total_ms": ms(total_s)}}


class PerImage:
    def __init__(self, decode: ThreadPoolExecutor, max_pixels: int) -> None:
        self.decode = decode
        self.max_pixels = max_pixels

    async def one(self, loaded: Loaded, index: int, name: str, data: bytes, params: Params,
                   keep: np.ndarray | None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        p = loaded.predictor
        label = f"image {index + 1}" + (f" ({name})" if name else "")
        t0 = time.perf_counter()
        if params.tile is not None:
            return await self._tiled(loaded, index, name, data, params, keep, label)
        if loaded.pipeline:
            return await self._pipeline(loaded, index, name, data, params, keep, label)
        if isinstance(loaded.batcher, Batcher) and loaded.batcher.whole:
            return await self._whole(loaded.batcher, p, index, name, data, params, keep, label)
        x, matrix, w, h = await loop.run_in_executor(self.decode, self._prepare, p, data, label)
        t1 = time.perf_counter()
        res = await loaded.batcher.submit(x)
        t2 = time.perf_counter()
        preds = await loop.run_in_executor(self.decode, answer, p, res.outputs, matrix, w, h, params, keep)
        t3 = time.perf_counter()
        return _record(index, name, w, h, preds, res.batch, t1 - t0, res.queue_s, res.inference_s, t3 - t2, t3 - t0)

    async def _whole(self, batcher: Batcher, p: Any, index: int, name: str, data: bytes, params: Params,
                     keep: np.ndarray | None, label: str) -> dict[str, Any]:
        """Without cross-request batching: decode, inference and the answer in one trip to an inference thread."""
        t0 = time.perf_counter()

        def prepare() -> tuple[np.ndarray, tuple[np.ndarray, int, int]]:
            x, matrix, w, h = self._prepare(p, data, label)
            return x, (matrix, w, h)

        def finish(outs: list[np.ndarray], at: tuple[np.ndarray, int, int]) -> tuple[list[dict[str, Any]], int, int]:
            return answer(p, outs, *at, params, keep), at[1], at[2]

        res = await batcher.submit_whole(prepare, finish)
        preds, w, h = res.answer
        return _record(index, name, w, h, preds, 1, res.prepare_s, res.queue_s, res.inference_s, res.finish_s,
                       time.perf_counter() - t0)

    async def _pipeline(self, loaded: Loaded, index: int, name: str, data: bytes, params: Params,
                        keep: np.ndarray | None, label: str) -> dict[str, Any]:
        """A pipeline model (OCR): the decoded image whole through its runner, the same decode as a graph's."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        rgb = await loop.run_in_executor(
            self.decode, lambda: img.decode(data, max_pixels=self.max_pixels, name=label))
        t1 = time.perf_counter()
        res = await loaded.batcher.submit(rgb, conf=params.confidence, max_det=params.max_detections)
        t2 = time.perf_counter()
        preds = pipeline_predictions(res.prediction, keep)
        t3 = time.perf_counter()
        h, w = rgb.shape[:2]
        return _record(index, name, w, h, preds, res.batch, t1 - t0, res.queue_s, res.inference_s, t3 - t2, t3 - t0)

    async def _tiled(self, loaded: Loaded, index: int, name: str, data: bytes, params: Params,
                     keep: np.ndarray | None, label: str) -> dict[str, Any]:
        """Every tile through the batcher (tiles of concurrent requests share batches), merged as `visionloop
        predict --tile` merges them (`infer.tiles`: cut boxes dropped where a neighbour holds the object, NMS)."""
        from visionloop.infer.tiles import merge_tiles, tile_grid

        loop = asyncio.get_running_loop()
        p = loaded.predictor
        if p.task != "detect":
            raise BadRequest(f"tiled prediction is for detection models, not {p.task}", hint="leave out `tile`")
        t0 = time.perf_counter()
        rgb = await loop.run_in_executor(
            self.decode, lambda: img.decode(data, max_pixels=self.max_pixels, name=label))
        h, w = rgb.shape[:2]
        assert params.tile is not None
        tiles = tile_grid(w, h, *params.tile, overlap=params.overlap)
        prepared = await asyncio.gather(*(loop.run_in_executor(self.decode, p.preprocess,
                                                                 rgb[t.y0:t.y1, t.x0:t.x1]) for t in tiles))
        t1 = time.perf_counter()
        results = await asyncio.gather(*(loaded.batcher.submit(x[0]) for x, _ in prepared))
        t2 = time.perf_counter()
        per_tile = max(params.max_detections, 300)
        parts = []
        for t, (_, matrix), res in zip(tiles, prepared, results, strict=True):
            scores = res.outputs[1] if keep is None else res.outputs[1] * keep[None, :]
            idx, conf, labels = select(res.outputs[0], scores, conf=params.confidence, iou=params.iou,
                                       max_det=per_tile)
            parts.append((unletterbox(res.outputs[0][idx].reshape(-1, 4), matrix, t.x1 - t.x0, t.y1 - t.y0),
                          conf, labels))
        boxes, conf, labels = merge_tiles(tiles, parts, w, h, max_det=params.max_detections)
        preds = detections(boxes, conf, labels, p.classes)
        t3 = time.perf_counter()
        return _record(index, name, w, h, preds, max(r.batch for r in results), t1 - t0,
                       max(r.queue_s for r in results), sum(r.inference_s for r in results), t3 - t2, t3 - t0,
                       tiles=len(tiles))

    def _prepare(self, p: Any, data: bytes, label: str) -> tuple[np.ndarray, np.ndarray, int, int]:
        rgb = img.decode(data, max_pixels=self.max_pixels, name=label)
        x, matrix = p.preprocess(rgb)
        return x[0], matrix, rgb.shape[1], rgb.shape[0]
