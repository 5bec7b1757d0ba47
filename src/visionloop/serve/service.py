"""The server's state and its one prediction pipeline (what the routes call).

    svc = Service(store_path, settings); await svc.start()
    out = await svc.predict("detect", None, [("a.jpg", data)], Params(confidence=0.3))

Per image: decode + letterbox in a thread (off the event loop), then the model's batcher (which
batches across concurrent requests), then thresholds / NMS / mapping back in a thread. A registry
refresh every `refresh_s` notices promotes made elsewhere: the new model is loaded first and only
then published, so requests never wait for a swap and none is dropped.

A pipeline model (OCR) skips the batcher's tensor path: the decoded image goes whole to its
`engine.PipelineRunner`, and each text line comes back with its `text` and 4-point `polygon` besides the
box, class and confidence (`confidence` is the pipeline's own score threshold; `iou` does not apply).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError
from visionloop.infer.decoders import unletterbox_points
from visionloop.infer.masks import instance_masks, rle, semantic_map
from visionloop.infer.post import postprocess, select, unletterbox
from visionloop.serve import catalog as cat
from visionloop.serve import images as img
from visionloop.serve.auth import KeyCache, RateLimiter
from visionloop.serve.engine import Loaded, Pool
from visionloop.serve.errors import BadRequest, NotFound, PayloadTooLarge
from visionloop.serve.metrics import Metrics
from visionloop.serve.settings import Settings, is_loopback
from visionloop.store import Store
from visionloop.store import keys as key_store
from visionloop.store import models as registry

log = logging.getLogger(__name__)


@dataclass
class Params:
    confidence: float = 0.25
    iou: float = 0.6
    max_detections: int = 100
    classes: list[str] | None = None
    tile: tuple[int, int] | None = None  # rows, cols: tiled inference of a detector (small objects, big images)
    overlap: float = 0.2


def check_auth(store: Store, settings: Settings) -> None:
    """Refuse to start an open server: off loopback (or with --auth) a key must exist."""
    if settings.auth_required() and not key_store.any_active(store):
        where = "with --auth" if is_loopback(settings.host) else f"on {settings.host} (not loopback)"
        raise VisionLoopError(f"serving {where} requires API keys, and this project has none",
                              hint="create one with `visionloop keys create --scope predict`")


class Service:
    def __init__(self, store_path: str | Path, settings: Settings) -> None:
        self.store_path = Path(store_path)
        self.settings = settings
        self.metrics = Metrics()
        self.pool = Pool(settings, self.metrics)
        self.catalog = cat.Catalog([], settings.precision, settings.models)
        self.store: Store | None = None
        self.decode = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode")
        self.keys: KeyCache | None = None
        self.limiter = RateLimiter(settings.rate_limit)
        self.ready = False
        self.started = time.time()
        self._refresher: asyncio.Task[None] | None = None
        from visionloop.serve.jobs import Jobs

        self.jobs = Jobs()
        self._http: Any = None
        self.predlog: Any = None
        self.embedders: dict[str, Any] = {}  # concept embedders (ONNX sessions) by file sha256
        if settings.log_predictions:
            from visionloop.serve.prediction_log import PredictionLogger

            self.predlog = PredictionLogger(settings, self.metrics)

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self.store = await asyncio.to_thread(Store.open, self.store_path)
        await asyncio.to_thread(check_auth, self.store, self.settings)
        self.keys = KeyCache(self.store, self.settings.key_cache_s)
        if self.predlog is not None:
            self.predlog.start(self.store)
        await asyncio.get_running_loop().run_in_executor(self.decode, _warm)
        await self.refresh(load_all=self.settings.preload)
        if self.settings.refresh_s > 0:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._refresher:
            self._refresher.cancel()
        await self.jobs.close()
        await self.pool.close()
        if self._http is not None:
            await self._http.aclose()
        if self.predlog is not None:
            await self.predlog.close()
        self.decode.shutdown(wait=False)
        if self.store:
            self.store.close()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_s)
            try:
                await self.refresh()
            except Exception:  # the store is briefly locked or gone: keep serving what is loaded
                log.exception("registry refresh failed; serving the models already loaded")

    async def refresh(self, *, load_all: bool = False) -> dict[str, str]:
        """Re-read the registry; load what a name now means (if it was in use, or `load_all`) before
        publishing it. Returns the names whose target changed."""
        assert self.store is not None
        new = cat.Catalog(await asyncio.to_thread(cat.load, self.store, self.settings.precision),
                          self.settings.precision, self.settings.models)
        if self.settings.models and not self.ready:
            missing = [n for n in self.settings.models if n not in new.by_name and n not in new.families()]
            if missing:
                raise VisionLoopError(f"no servable model {missing[0]!r} in this project (ready, exported to ONNX)",
                                      hint="see `visionloop model list`")
        old_targets = self.catalog.current()
        changed: dict[str, str] = {}
        for name, key in new.current().items():
            was = old_targets.get(name)
            if load_all or (was is not None and was != key and self.pool.get_loaded(was) is not None):
                await self._load(new.resolve(name))
            if was is not None and was != key:
                changed[name] = key
                self.metrics.swaps.labels(name).inc()
                log.info("model %s now serves %s", name, new.resolve(name).model.name)
        self.catalog = new
        return changed

    async def _load(self, target: cat.Target) -> Loaded:
        assert self.store is not None
        store = self.store
        labels = (target.model.name, str(target.version))
        if target.kind == "pipeline":
            def files() -> dict[str, str]:
                return {fmt: registry.blob_file(store, e.sha256) for fmt, e in target.files.items()}

            return await self.pool.get(target.key, lambda: registry.blob_file(store, target.export.sha256), labels,
                                       pipeline=(target.model.task, files))
        return await self.pool.get(target.key, lambda: registry.blob_file(store, target.export.sha256), labels)

    # -- models ----------------------------------------------------------------------------------
    def model_summary(self, m: registry.ModelInfo) -> dict[str, Any]:
        files = cat.parts(m, self.settings.precision)
        return {"version": m.id, "model": m.name, "task": m.task, "arch": m.arch, "stage": m.stage,
                "dataset_version": m.version, "classes": m.classes, "input_size": m.input_size,
                "metrics": m.metrics, "created_at": m.created_at,
                "loaded": files is not None and self.pool.get_loaded(cat.key_of(files)) is not None}

    def describe(self, name: str) -> dict[str, Any]:
        versions = self.catalog.versions(name)
        serving = self.catalog.resolve(name)
        return {"name": name, "kind": "model" if name in self.catalog.by_name else "family",
                "task": serving.model.task, "serving": serving.version,
                "versions": [self.model_summary(m) for m in versions]}

    def list_models(self) -> list[dict[str, Any]]:
        names = [*self.catalog.families(), *self.catalog.by_name]
        return [self.describe(n) for n in names]

    async def promote(self, name: str, stage: str | None) -> dict[str, Any]:
        assert self.store is not None
        target = self.catalog.resolve(name)  # validates the name first
        model = name if name in self.catalog.by_name else target.model.name
        await asyncio.to_thread(registry.promote, self.store, model, stage)
        await self.refresh()
        return self.describe(name)

    # -- prediction ------------------------------------------------------------------------------
    async def predict(self, name: str, version: str | None, images: list[tuple[str, bytes]],
                      params: Params, *, key_prefix: str | None = None) -> dict[str, Any]:
        t0 = time.perf_counter()
        target = self.catalog.resolve(name, version)
        labels = (target.name, str(target.version))
        code = 200
        try:
            if not images:
                raise BadRequest("no image in the request",
                                 hint="send multipart files, raw image bytes, or JSON {\"images\": [{\"base64\": …}]}")
            if len(images) > self.settings.max_images:
                raise PayloadTooLarge(f"{len(images)} images in one request, at most {self.settings.max_images}",
                                      hint="split them over several requests")
            loaded = await self._load(target)
            keep = self._class_filter(loaded, params.classes)
            results = await asyncio.gather(*(self._one(loaded, i, n, d, params, keep)
                                             for i, (n, d) in enumerate(images)))
            self.metrics.images.labels(*labels).inc(len(results))
            if self.predlog is not None:  # sampled, queued, written later: never waits, never raises
                for (n, d), r in zip(images, results, strict=True):
                    self.predlog.offer(target, n, d, r, key_prefix=key_prefix)
            return {"model": {"name": target.name, "version": target.version, "model": target.model.name,
                              "stage": target.model.stage, "task": target.model.task},
                    "images": results,
                    "timings": {"total_ms": round((time.perf_counter() - t0) * 1000, 3)}}
        except VisionLoopError as e:
            from visionloop.serve.errors import status_of

            code = status_of(e)
            raise
        except Exception:
            code = 500
            raise
        finally:
            self.metrics.requests.labels(*labels, str(code)).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - t0)

    def _class_filter(self, loaded: Loaded, classes: list[str] | None) -> np.ndarray | None:
        if not classes:
            return None
        names = loaded.predictor.classes
        keep = np.zeros(len(names), bool)
        for c in classes:
            if c in names:
                keep[names.index(c)] = True
            elif c.isdigit() and int(c) < len(names):
                keep[int(c)] = True
            else:
                raise BadRequest(f"unknown class {c[:64]!r} in `classes`", hint=f"classes: {', '.join(names)}")
        return keep

    async def _one(self, loaded: Loaded, index: int, name: str, data: bytes, params: Params,
                   keep: np.ndarray | None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        p = loaded.predictor
        label = f"image {index + 1}" + (f" ({name})" if name else "")
        t0 = time.perf_counter()
        if params.tile is not None:
            return await self._tiled(loaded, index, name, data, params, keep, label)
        if loaded.pipeline:
            return await self._pipeline(loaded, index, name, data, params, keep, label)
        x, matrix, w, h = await loop.run_in_executor(self.decode, self._prepare, p, data, label)
        t1 = time.perf_counter()
        res = await loaded.batcher.submit(x)
        t2 = time.perf_counter()
        preds = await loop.run_in_executor(self.decode, self._post, p, res.outputs, matrix, w, h, params, keep)
        t3 = time.perf_counter()
        return {"index": index, "name": name, "size": {"width": w, "height": h}, "predictions": preds,
                "batch_size": res.batch,
                "timings": {"decode_ms": _ms(t1 - t0), "queue_ms": _ms(res.queue_s),
                            "inference_ms": _ms(res.inference_s), "postprocess_ms": _ms(t3 - t2),
                            "total_ms": _ms(t3 - t0)}}

    async def _pipeline(self, loaded: Loaded, index: int, name: str, data: bytes, params: Params,
                        keep: np.ndarray | None, label: str) -> dict[str, Any]:
        """A pipeline model (OCR): the decoded image whole through its runner, the same decode as a graph's."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        rgb = await loop.run_in_executor(
            self.decode, lambda: img.decode(data, max_pixels=self.settings.max_pixels, name=label))
        t1 = time.perf_counter()
        res = await loaded.batcher.submit(rgb, conf=params.confidence, max_det=params.max_detections)
        t2 = time.perf_counter()
        preds = pipeline_predictions(res.prediction, keep)
        t3 = time.perf_counter()
        h, w = rgb.shape[:2]
        return {"index": index, "name": name, "size": {"width": w, "height": h}, "predictions": preds,
                "batch_size": res.batch,
                "timings": {"decode_ms": _ms(t1 - t0), "queue_ms": _ms(res.queue_s),
                            "inference_ms": _ms(res.inference_s), "postprocess_ms": _ms(t3 - t2),
                            "total_ms": _ms(t3 - t0)}}

    # -- concepts --------------------------------------------------------------------------------------------
    async def list_concepts(self) -> list[dict[str, Any]]:
        from visionloop.store import concepts as concept_store

        assert self.store is not None
        infos = await asyncio.to_thread(concept_store.list_all, self.store)
        return [{"name": i.name, "kind": i.kind, "threshold": i.threshold, "embedder": i.embedder,
                 "created_at": i.created_at} for i in infos]

    async def predict_concepts(self, name: str, images: list[tuple[str, bytes]]) -> dict[str, Any]:
        """Each concept answers on each image's embedding (the project's ONNX embedder, one session per file)."""
        from visionloop.infer.concepts import ConceptHead, predict
        from visionloop.store import concepts as concept_store

        assert self.store is not None
        t0 = time.perf_counter()
        if not images:
            raise BadRequest("no image in the request", hint="send multipart files, raw image bytes, or JSON")
        if len(images) > self.settings.max_images:
            raise PayloadTooLarge(f"{len(images)} images in one request, at most {self.settings.max_images}",
                                  hint="split them over several requests")

        def load() -> tuple[list[Any], Any]:
            assert self.store is not None
            if name == "all":
                infos = concept_store.list_all(self.store)
                if not infos:
                    raise NotFound("the project has no concepts", hint="teach one with `visionloop concepts train`")
            else:
                infos = []
                for n in (n.strip() for n in name.split(",") if n.strip()):
                    try:
                        infos.append(concept_store.get(self.store, n))
                    except VisionLoopError:
                        raise NotFound(f"no concept {n[:64]!r}", hint="GET /v1/concepts lists them") from None
            if len({i.embedder_sha256 for i in infos}) > 1:
                raise BadRequest("these concepts use different embedders", hint="ask them one at a time")
            return infos, self._embedder(infos[0].embedder_sha256)

        infos, embedder = await asyncio.to_thread(load)
        rgbs = await asyncio.gather(*(asyncio.to_thread(
            img.decode, d, max_pixels=self.settings.max_pixels, name=f"image {i + 1}" + (f" ({n})" if n else ""))
            for i, (n, d) in enumerate(images)))
        vectors = await asyncio.to_thread(embedder.embed, rgbs)
        preds = predict({i.name: ConceptHead.from_json(i.head) for i in infos}, vectors, [n for n, _ in images])
        return {"concepts": [i.name for i in infos],
                "images": [{"index": k, "name": n, "matches": p.matches, "concepts": [a.to_json() for a in p.answers]}
                           for k, ((n, _), p) in enumerate(zip(images, preds, strict=True))],
                "timings": {"total_ms": _ms(time.perf_counter() - t0)}}

    def _embedder(self, sha256: str) -> Any:
        from visionloop.infer.embed import OnnxEmbedder
        from visionloop.store.models import blob_file

        assert self.store is not None
        if sha256 not in self.embedders:
            self.embedders[sha256] = OnnxEmbedder(blob_file(self.store, sha256), threads=1)
        return self.embedders[sha256]

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
            self.decode, lambda: img.decode(data, max_pixels=self.settings.max_pixels, name=label))
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
        preds = _detections(boxes, conf, labels, p.classes)
        t3 = time.perf_counter()
        return {"index": index, "name": name, "size": {"width": w, "height": h}, "predictions": preds,
                "batch_size": max(r.batch for r in results), "tiles": len(tiles),
                "timings": {"decode_ms": _ms(t1 - t0), "queue_ms": _ms(max(r.queue_s for r in results)),
                            "inference_ms": _ms(sum(r.inference_s for r in results)), "postprocess_ms": _ms(t3 - t2),
                            "total_ms": _ms(t3 - t0)}}

    def _prepare(self, p: Any, data: bytes, label: str) -> tuple[np.ndarray, np.ndarray, int, int]:
        rgb = img.decode(data, max_pixels=self.settings.max_pixels, name=label)
        x, matrix = p.preprocess(rgb)
        return x[0], matrix, rgb.shape[1], rgb.shape[0]

    @staticmethod
    def _post(p: Any, outs: list[np.ndarray], matrix: np.ndarray, w: int, h: int, params: Params,
              keep: np.ndarray | None) -> list[dict[str, Any]]:
        names = p.classes
        if p.task == "classify":
            probs = outs[0].astype(np.float64)
            order = [int(i) for i in np.argsort(-probs, kind="stable")
                     if probs[i] >= params.confidence and (keep is None or keep[i])][:params.max_detections]
            return [{"class": names[i], "class_id": i, "confidence": round(float(probs[i]), 6)} for i in order]
        if p.task == "semantic":
            label_map = semantic_map(outs[0], matrix, w, h)
            counts = np.bincount(label_map.reshape(-1), minlength=len(names) + 1)
            return [{"class": names[k - 1], "class_id": k - 1, "pixels": int(counts[k]),
                     "fraction": round(float(counts[k]) / max(1, label_map.size), 6), "mask": rle(label_map == k)}
                    for k in range(1, len(names) + 1) if counts[k] and (keep is None or keep[k - 1])]
        scores = outs[1] if keep is None else outs[1] * keep[None, :]
        index, conf, labels = select(outs[0], scores, conf=params.confidence, iou=params.iou,
                                     max_det=params.max_detections)
        boxes = unletterbox(outs[0][index].reshape(-1, 4), matrix, w, h)
        out = _detections(boxes, conf, labels, names)
        if p.task == "segment":
            for d, m in zip(out, instance_masks(outs[2][index], outs[3], boxes, matrix, w, h), strict=True):
                d["mask"] = rle(m)
        elif len(outs) > 2:  # a gallery detector's landmarks
            for d, pts in zip(out, unletterbox_points(outs[2][index], matrix, w, h), strict=True):
                d["keypoints"] = [[round(float(pts[i]), 2), round(float(pts[i + 1]), 2)] for i in range(0, len(pts), 2)]
        return out

    # -- video jobs ----------------------------------------------------------------------------------------
    async def start_video(self, name: str, version: str | None, data: bytes, params: Params,
                          every_ms: float) -> Any:
        from visionloop.serve import jobs

        assert self.store is not None
        target = self.catalog.resolve(name, version)
        loaded = await self._load(target)
        keep = self._class_filter(loaded, params.classes)
        folder = Path(self.store.root) / ".cache" / "videos"
        path = await asyncio.to_thread(jobs.save_video, data, folder)
        try:
            fps, duration = await asyncio.to_thread(jobs.probe, path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        job = jobs.Job(jobs.new_id(), target.name, target.version, every_ms, fps=fps, duration_ms=duration)
        self.jobs.add(job)
        self.jobs.start(self._run_video(job, loaded, path, params, keep))
        return job

    async def _run_video(self, job: Any, loaded: Loaded, path: Path, params: Params,
                         keep: np.ndarray | None) -> None:
        """Frames sampled as `visionloop predict` samples them (infer.video), each through the batcher; for a
        detector, detections linked into tracks by infer's IoU tracker (ByteTrack-style, per class)."""
        import itertools
        from dataclasses import replace

        from visionloop.infer.video import IoUTracker, sample_frames

        loop = asyncio.get_running_loop()
        p = loaded.predictor
        tracker = IoUTracker(high=params.confidence, low=min(0.1, params.confidence / 2)) \
            if p.task in ("detect", "segment") else None
        low = replace(params, confidence=min(params.confidence, tracker.low)) if tracker else params
        gen = itertools.islice(sample_frames(path, job.every_ms), self.settings.max_video_frames)
        job.status = "running"
        try:
            while (item := await loop.run_in_executor(self.decode, next, gen, None)) is not None:
                index, ms, rgb = item
                preds = await self._frame(loaded, rgb, low, keep)
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
            await loop.run_in_executor(self.decode, gen.close)
            path.unlink(missing_ok=True)

    async def _frame(self, loaded: Loaded, rgb: np.ndarray, params: Params,
                     keep: np.ndarray | None) -> list[dict[str, Any]]:
        """One video frame's predictions; waits while the model's queue is full of live requests (they go first)."""
        from visionloop.serve.errors import RetryLater

        loop = asyncio.get_running_loop()
        p = loaded.predictor
        x = matrix = None
        if not loaded.pipeline:
            x, matrix = await loop.run_in_executor(self.decode, p.preprocess, rgb)
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
        return await loop.run_in_executor(self.decode, self._post, p, res.outputs, matrix, w, h, params, keep)

    # -- feedback ----------------------------------------------------------------------------------------
    async def add_feedback(self, body: Any, *, key_prefix: str | None) -> Any:
        """Validate a correction against the model it corrects, then store it (image as a blob)."""
        import base64
        import binascii
        import math

        from visionloop.store import feedback

        assert self.store is not None
        members = self.catalog.versions(body.model)
        if body.version is not None and all(m.id != body.version for m in members):
            raise NotFound(f"no version {body.version} of model {body.model!r}",
                           hint=f"versions: {', '.join(str(m.id) for m in members)}")
        model = next((m for m in members if m.id == body.version), members[-1])
        data, size = None, None
        if body.image is not None:
            if body.image.base64 is not None:
                text = body.image.base64.partition(",")[2] if body.image.base64.startswith("data:") \
                    else body.image.base64
                try:
                    data = base64.b64decode(text, validate=True)
                except (binascii.Error, ValueError):
                    raise BadRequest("image.base64 is not valid base64") from None
            elif body.image.url is not None:
                data = await self.fetch(body.image.url)
            if data is not None:
                _, w, h = img.check(data, max_pixels=self.settings.max_pixels, name="the image")
                size = (w, h)
        if data is None and body.image_sha256 is None:
            raise BadRequest("feedback needs the image", hint="send image.base64, or image_sha256 of an image "
                                                             "already in the project")
        for i, c in enumerate(body.correction):
            if c.class_ not in model.classes:
                raise BadRequest(f"correction[{i}]: unknown class {c.class_[:64]!r} for model {model.name}",
                                 hint=f"classes: {', '.join(model.classes)}")
            if c.box is not None:
                b = c.box
                if not all(math.isfinite(v) for v in (b.x0, b.y0, b.x1, b.y1)) or b.x0 >= b.x1 or b.y0 >= b.y1:
                    raise BadRequest(f"correction[{i}].box is empty or not finite: need x0 < x1 and y0 < y1")
                if size and (b.x0 < 0 or b.y0 < 0 or b.x1 > size[0] or b.y1 > size[1]):
                    raise BadRequest(f"correction[{i}].box lies outside the {size[0]}x{size[1]} image")
        correction = [{"class": c.class_, **({"box": [c.box.x0, c.box.y0, c.box.x1, c.box.y1]} if c.box else {})}
                      for c in body.correction]
        name = body.image.name if body.image is not None else ""
        return await asyncio.to_thread(
            feedback.add, self.store, model=body.model, model_version=model.id, correction=correction,
            prediction=body.prediction, image=data, image_sha256=body.image_sha256, image_name=name,
            note=body.note, key_prefix=key_prefix)

    # -- URL inputs --------------------------------------------------------------------------------
    async def fetch(self, url: str) -> bytes:
        """A URL's bytes, only from hosts on the allow-list (off when the list is empty), no redirects."""
        from urllib.parse import urlsplit

        from visionloop.serve.errors import Forbidden

        allow = self.settings.url_allow_list
        if not allow:
            raise Forbidden("fetching image URLs is off on this server",
                            hint="send the image bytes (multipart, raw or base64), or start the server with "
                                 "--allow-url HOST")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadRequest(f"not an http(s) URL: {url[:200]!r}")
        if parts.hostname not in allow:
            raise Forbidden(f"host {parts.hostname!r} is not on this server's URL allow-list",
                            hint=f"allowed: {', '.join(allow)}")
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, timeout=self.settings.url_timeout_s)
        limit = self.settings.max_body_bytes
        try:
            async with self._http.stream("GET", url) as r:
                if r.status_code != 200:
                    raise BadRequest(f"fetching {url[:200]} answered HTTP {r.status_code}")
                chunks, size = [], 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(f"{url[:200]} is larger than {limit:,} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as e:
            raise BadRequest(f"cannot fetch {url[:200]}: {type(e).__name__}") from None


def _warm() -> None:
    """Import and run the decoders and NMS once, so the first request does not pay for it."""
    import cv2

    ok, data = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    img.decode(data.tobytes(), max_pixels=64)
    postprocess(np.zeros((4, 4), np.float32), np.full((4, 2), 0.5, np.float32))


def _ms(s: float) -> float:
    return round(s * 1000, 3)


def pipeline_predictions(pred: Any, keep: np.ndarray | None = None) -> list[dict[str, Any]]:
    """A pipeline's `infer.Prediction` as the API answers it: detections (box, class, class id, confidence), each
    OCR line with its `text` and `polygon` (4 [x, y] corners in the image's pixels, clockwise from top-left)."""
    out = _detections(pred.boxes, pred.scores, pred.labels, pred.classes)
    if pred.texts is not None and pred.polygons is not None:
        for d, t, poly in zip(out, pred.texts, pred.polygons, strict=True):
            d["text"] = t
            d["polygon"] = [[round(float(x), 2), round(float(y), 2)] for x, y in poly]
    if keep is not None:
        out = [d for d in out if keep[d["class_id"]]]
    return out


def _detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    """Detections as the API answers them (box in the image's pixels, class, class id, confidence)."""
    return [{"box": {"x0": round(float(b[0]), 2), "y0": round(float(b[1]), 2), "x1": round(float(b[2]), 2),
                     "y1": round(float(b[3]), 2)},
             "class": names[int(c)], "class_id": int(c), "confidence": round(float(s), 6)}
            for b, s, c in zip(boxes, scores, labels, strict=True)]
