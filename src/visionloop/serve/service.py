"""The server's state and its one prediction pipeline (what the routes call).

    svc = Service(store_path, settings); await svc.start()
    out = await svc.predict("detect", None, [("a.jpg", data)], Params(confidence=0.3))

Per image (`per_image.PerImage`): decoding, inference and the answer off the event loop — one trip to an
inference thread without batching, else decode in a thread, the model's batcher (which batches across
concurrent requests), and the answer in a thread. A registry
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
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError
from visionloop.infer.post import postprocess
from visionloop.serve import catalog as cat
from visionloop.serve import images as img
from visionloop.serve.answers import Params, class_filter
from visionloop.serve.auth import KeyCache, RateLimiter
from visionloop.serve.concept_answers import Concepts
from visionloop.serve.engine import Loaded, Pool
from visionloop.serve.errors import BadRequest, PayloadTooLarge
from visionloop.serve.fetch import UrlFetcher
from visionloop.serve.metrics import Metrics
from visionloop.serve.per_image import PerImage
from visionloop.serve.settings import Settings, is_loopback
from visionloop.store import Store
from visionloop.store import keys as key_store
from visionloop.store import models as registry

log = logging.getLogger(__name__)


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
        self.images = PerImage(self.decode, settings.max_pixels)
        self.keys: KeyCache | None = None
        self.limiter = RateLimiter(settings.rate_limit)
        self.ready = False
        self.started = time.time()
        self._refresher: asyncio.Task[None] | None = None
        from visionloop.serve.jobs import Jobs

        self.jobs = Jobs()
        self.urls = UrlFetcher(settings)
        self.concepts = Concepts(self._store, settings)
        self.predlog: Any = None
        if settings.log_predictions:
            from visionloop.serve.prediction_log import PredictionLogger

            self.predlog = PredictionLogger(settings, self.metrics)

    def _store(self) -> Store:
        assert self.store is not None, "the service is not started"
        return self.store

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
        await self.urls.aclose()
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
            keep = class_filter(loaded.predictor.classes, params.classes)
            results = await asyncio.gather(*(self.images.one(loaded, i, n, d, params, keep)
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

    # -- video jobs ----------------------------------------------------------------------------------------
    async def start_video(self, name: str, version: str | None, data: bytes, params: Params,
                          every_ms: float) -> Any:
        from visionloop.serve import jobs
        from visionloop.serve.video_runner import run_video

        store = self._store()
        target = self.catalog.resolve(name, version)
        loaded = await self._load(target)
        keep = class_filter(loaded.predictor.classes, params.classes)
        path = await asyncio.to_thread(jobs.save_video, data, Path(store.root) / ".cache" / "videos")
        try:
            fps, duration = await asyncio.to_thread(jobs.probe, path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        job = jobs.Job(jobs.new_id(), target.name, target.version, every_ms, fps=fps, duration_ms=duration)
        self.jobs.add(job)
        self.jobs.start(run_video(job, loaded, path, params, keep, decode=self.decode,
                                  max_frames=self.settings.max_video_frames))
        return job

    # -- feedback, URLs, concepts ----------------------------------------------------------------------
    async def add_feedback(self, body: Any, *, key_prefix: str | None) -> Any:
        from visionloop.serve.corrections import add_feedback

        return await add_feedback(self._store(), self.catalog, self.settings, self.fetch, body, key_prefix=key_prefix)

    async def fetch(self, url: str) -> bytes:
        return await self.urls.fetch(url)

    async def list_concepts(self) -> list[dict[str, Any]]:
        return await self.concepts.list_concepts()

    async def predict_concepts(self, name: str, images: list[tuple[str, bytes]]) -> dict[str, Any]:
        return await self.concepts.predict_concepts(name, images)


def _warm() -> None:
    """Import and run the decoders and NMS once, so the first request does not pay for it."""
    import cv2

    ok, data = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    img.decode(data.tobytes(), max_pixels=64)
    postprocess(np.zeros((4, 4), np.float32), np.full((4, 2), 0.5, np.float32))


__all__ = ["Params", "Service", "check_auth"]
