"""ONNX Runtime sessions in an LRU, each behind a dynamic micro-batcher.

    pool = Pool(settings, metrics)
    loaded = await pool.get(target, loader)       # loads once (in a thread), then cached by export sha256
    outs = await loaded.batcher.submit(x)         # x: (3, H, W) float32; waits for its batch, returns its rows

The batcher takes the first waiting image, then whatever else is queued, up to `max_batch`, waiting
at most `max_wait_ms` for more; `workers` inference threads per model each run a batch at a time on
the same session (on CPU: one worker per core, each with one ONNX Runtime thread, measured faster
than one worker using every core — see Settings). At most `queue_size` images wait per model: beyond that `submit`
raises `RetryLater` (503 + Retry-After) at once instead of letting latency grow without bound.
An evicted or swapped-out model finishes what is queued before its thread stops.

A pipeline model (OCR: detection, crops, recognition — several sessions with code between them, see
`catalog.PIPELINES`) has no single (3, H, W) input to stack, so it gets a `PipelineRunner` instead: whole RGB
images in, `infer.Prediction`s out, the same bounded queue (503 + Retry-After) and metrics, `workers` workers
each owning its own predictor, one image at a time (rapidocr's pipeline keeps per-call state, so one instance
never runs two images at once); batching happens inside the pipeline (rapidocr batches an image's text crops).

    loaded = await pool.get(key, files, labels, task="ocr")  # files() -> {"onnx": path, "onnx-rec": path, ...}
    res = await loaded.batcher.submit(rgb, conf=0.5, max_det=100)   # res.prediction: infer.Prediction

Under Ray Serve (`serve.ray_app`) a model's inference runs in its own deployment: `pool.remote[key]` then holds
a `RemoteBatcher`'s call (a graph's batches) or a `RemotePipeline` (a pipeline's whole images), used in place of
the local Batcher / PipelineRunner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from visionloop.infer import Predictor
from visionloop.serve.errors import RetryLater
from visionloop.serve.metrics import Metrics
from visionloop.serve.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Item:
    x: np.ndarray | None
    future: asyncio.Future[Any]
    queued: float
    #: a whole image (`submit_whole`): made into `x` and its answer on the inference thread
    prepare: Callable[[], tuple[np.ndarray, Any]] | None = None
    finish: Callable[[list[np.ndarray], Any], Any] | None = None


@dataclass
class Result:
    outputs: list[np.ndarray]  # this image's row of every output
    queue_s: float
    inference_s: float
    batch: int
    answer: Any = None  # submit_whole: what `finish` made of the outputs
    prepare_s: float = 0.0
    finish_s: float = 0.0


class _Bounded:
    """What both runners share: a bounded queue (503 + Retry-After when full) and its depth gauge."""

    queue_size: int
    retry_after: int
    labels: tuple[str, str]
    metrics: Metrics | None
    pending: int
    closed: bool

    def _admit(self, what: str) -> asyncio.Future[Any]:
        """A future for one more image, or RetryLater when `queue_size` images already wait."""
        if self.closed:
            raise RuntimeError(f"{what} closed")
        if self.pending >= self.queue_size:
            if self.metrics:
                self.metrics.rejected.labels(*self.labels).inc()
            raise RetryLater(f"model {self.labels[0]} is busy: {self.pending} images are waiting",
                             status=503, retry_after=self.retry_after, hint="retry after the Retry-After seconds")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending += 1
        self._gauge()
        return fut

    def _gauge(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.labels(*self.labels).set(self.pending)


class Batcher(_Bounded):
    def __init__(self, run: Callable[[np.ndarray], list[np.ndarray]], *, max_batch: int, max_wait_ms: float,
                 queue_size: int, retry_after_s: int = 1, labels: tuple[str, str] = ("", ""),
                 metrics: Metrics | None = None, workers: int = 1,
                 solo: Callable[[np.ndarray], list[np.ndarray]] | None = None) -> None:
        self.run = run
        self.solo = solo  # runs a lone image on every core (Settings.solo_threads)
        self.running = 0  # batches being inferred now
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.queue_size = queue_size
        self.retry_after = retry_after_s
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue()
        self.pending = 0
        self.closed = False
        self.metrics = metrics
        self.labels = labels
        self.workers = workers
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix=f"infer-{labels[0]}-{labels[1]}")
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._work()) for _ in range(workers)]

    async def submit(self, x: np.ndarray) -> Result:
        fut = self._admit("batcher")
        self.queue.put_nowait(Item(x, fut, time.perf_counter()))
        return await fut

    @property
    def whole(self) -> bool:
        """Whether `submit_whole` is the faster way in: without cross-request batching an image needs no
        tensor before its turn, so decoding, inference and its answer are one trip to an inference thread
        instead of three thread hand-offs (measured in bench/serve.py)."""
        return self.max_batch == 1

    async def submit_whole(self, prepare: Callable[[], tuple[np.ndarray, Any]],
                           finish: Callable[[list[np.ndarray], Any], Any]) -> Result:
        """`prepare()` -> (the (3, H, W) input, what `finish` needs of it: decode + letterbox), the model, then
        `finish(outputs, that)`, all on the inference thread; `Result.answer` is what `finish` returned.
        Errors of `prepare` (a corrupt image) reach this request alone."""
        fut = self._admit("batcher")
        self.queue.put_nowait(Item(None, fut, time.perf_counter(), prepare, finish))
        return await fut

    async def _take(self) -> list[Item] | None:
        first = await self.queue.get()
        if first is None:
            return None
        items = [first]
        deadline = time.perf_counter() + self.max_wait
        while len(items) < self.max_batch:
            try:
                nxt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self.queue.get(), left)
                except TimeoutError:
                    break
            if nxt is None:
                self.queue.put_nowait(None)  # seen again after this batch
                break
            items.append(nxt)
        return items

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._take()
            if items is None:
                self.queue.put_nowait(None)
                break
            self.pending -= len(items)
            self._gauge()
            live = [it for it in items if not it.future.done()]  # a cancelled request's image is skipped
            if not live:
                continue
            start = time.perf_counter()
            # alone: nothing else being inferred and nothing waiting -> the session that uses every core
            run = self.solo if self.solo is not None and self.running == 0 and self.queue.empty() else self.run
            self.running += 1
            try:
                if live[0].prepare is not None:  # submit_whole: one image, one trip to the thread
                    res = await loop.run_in_executor(self.executor, _whole, run, live[0])
                    res.queue_s = start - live[0].queued
                    self._observe(1, res.inference_s, [res.queue_s])
                    if not live[0].future.done():
                        live[0].future.set_result(res)
                    continue
                xs = [it.x for it in live if it.x is not None]
                assert len(xs) == len(live), "submit_whole is for a batcher without batching (max_batch 1)"
                x = xs[0][None] if len(xs) == 1 else np.stack(xs)
                outs = await loop.run_in_executor(self.executor, run, x)
            except Exception as e:  # a bug or a broken model: every waiting request gets it, the loop goes on
                for it in live:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            finally:
                self.running -= 1
            took = time.perf_counter() - start
            waiting = [(i, it) for i, it in enumerate(live) if not it.future.done()]
            self._observe(len(live), took, [start - it.queued for _, it in waiting])
            for i, it in waiting:
                it.future.set_result(Result([o[i] for o in outs], start - it.queued, took, len(live)))

    def _observe(self, batch: int, inference_s: float, waits: list[float]) -> None:
        if self.metrics:
            self.metrics.batch_size.labels(*self.labels).observe(batch)
            self.metrics.inference.labels(*self.labels).observe(inference_s)
            for wait in waits:
                self.metrics.queue_wait.labels(*self.labels).observe(wait)

    async def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        if self.closed:
            return
        self.closed = True
        self.queue.put_nowait(None)  # each worker puts it back for the next
        await asyncio.gather(*self.tasks)
        self.executor.shutdown(wait=False)


def _whole(run: Callable[[np.ndarray], list[np.ndarray]], it: Item) -> Result:
    """On the inference thread: prepare, run, finish one image (`Batcher.submit_whole`)."""
    assert it.prepare is not None and it.finish is not None
    t0 = time.perf_counter()
    x, at = it.prepare()
    t1 = time.perf_counter()
    outs = run(x[None])
    t2 = time.perf_counter()
    answer = it.finish([o[0] for o in outs], at)
    return Result([], 0.0, t2 - t1, 1, answer, t1 - t0, time.perf_counter() - t2)


@dataclass
class PipelineResult:
    prediction: Any  # infer.Prediction in the image's pixels
    queue_s: float
    inference_s: float
    batch: int = 1


class PipelineRunner(_Bounded):
    """A pipeline model's bounded queue: each of `len(predictors)` workers runs whole images through its own
    predictor (`predictor.predict(rgb, **kw)`) on the runner's threads, one image at a time."""

    def __init__(self, predictors: list[Any], *, queue_size: int, retry_after_s: int = 1,
                 labels: tuple[str, str] = ("", ""), metrics: Metrics | None = None) -> None:
        self.predictors = predictors
        self.queue_size = queue_size
        self.retry_after = retry_after_s
        self.labels = labels
        self.metrics = metrics
        self.queue: asyncio.Queue[tuple[np.ndarray, dict[str, Any], asyncio.Future[Any], float] | None] = \
            asyncio.Queue()
        self.pending = 0
        self.closed = False
        self.executor = ThreadPoolExecutor(len(predictors), thread_name_prefix=f"pipeline-{labels[0]}-{labels[1]}")
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._work(p)) for p in predictors]

    async def submit(self, rgb: np.ndarray, **kw: Any) -> PipelineResult:
        fut = self._admit("pipeline runner")
        self.queue.put_nowait((rgb, kw, fut, time.perf_counter()))
        return await fut

    async def _work(self, predictor: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self.queue.get()
            if item is None:
                self.queue.put_nowait(None)  # for the next worker
                break
            rgb, kw, fut, queued = item
            self.pending -= 1
            self._gauge()
            if fut.done():  # the request was cancelled while waiting
                continue
            start = time.perf_counter()
            try:
                pred = await loop.run_in_executor(self.executor, partial(predictor.predict, rgb, **kw))
            except Exception as e:
                if not fut.done():
                    fut.set_exception(e)
                continue
            took = time.perf_counter() - start
            if self.metrics:
                self.metrics.batch_size.labels(*self.labels).observe(1)
                self.metrics.inference.labels(*self.labels).observe(took)
                self.metrics.queue_wait.labels(*self.labels).observe(start - queued)
            if not fut.done():
                fut.set_result(PipelineResult(pred, start - queued, took))

    async def close(self) -> None:
        """Finish what is queued, then stop the threads."""
        if self.closed:
            return
        self.closed = True
        self.queue.put_nowait(None)
        await asyncio.gather(*self.tasks)
        self.executor.shutdown(wait=False)


def load_pipeline(task: str, files: dict[str, Any], *, threads: int | None, device: str = "cpu") -> Any:
    """One predictor of a pipeline task from its files (paths or bytes) by export format (see `catalog.PIPELINES`)."""
    if task == "ocr":
        from visionloop.infer.ocr import OcrPredictor

        return OcrPredictor(files["onnx"], files["onnx-rec"], files.get("onnx-cls"), threads=threads, device=device)
    raise ValueError(f"no pipeline for task {task!r}")


class RemotePipeline:
    """A PipelineRunner whose images run elsewhere (a Ray Serve deployment per pipeline model, see
    `serve.ray_app`): `run(rgb, kw)` is awaited per image and returns its `PipelineResult`; the queue limits are
    the remote side's. It stands in for the predictor too (`task`, `classes`), so the process holding it loads
    none of the model's files."""

    def __init__(self, run: Callable[[np.ndarray, dict[str, Any]], Awaitable[PipelineResult]], *, task: str,
                 classes: list[str]) -> None:
        self.run = run
        self.task = task
        self.classes = classes

    async def submit(self, rgb: np.ndarray, **kw: Any) -> PipelineResult:
        return await self.run(rgb, kw)

    async def close(self) -> None:
        return None


class RemoteBatcher:
    """A Batcher whose batches run elsewhere (a Ray Serve deployment per model, see `serve.ray_app`):
    `run(x)` is awaited per image and returns its `Result`; batching and queue limits are the remote side's."""

    def __init__(self, run: Callable[[np.ndarray], Awaitable[Result]]) -> None:
        self.run = run

    async def submit(self, x: np.ndarray) -> Result:
        return await self.run(x)

    async def close(self) -> None:
        return None


@dataclass
class Loaded:
    key: str
    #: infer.Predictor; a pipeline's first predictor (task, classes) for a PipelineRunner; a RemotePipeline itself
    predictor: Any
    batcher: Batcher | RemoteBatcher | PipelineRunner | RemotePipeline

    @property
    def pipeline(self) -> bool:
        return isinstance(self.batcher, PipelineRunner | RemotePipeline)


class Pool:
    """Loaded models by export sha256, least recently used evicted beyond `cache_models`."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.loaded: OrderedDict[str, Loaded] = OrderedDict()
        self.loading: dict[str, asyncio.Future[Loaded]] = {}
        self.closing: set[asyncio.Task[None]] = set()
        #: model key -> where that model's inference runs instead of here (Ray Serve): a graph's batches (by its
        #: export sha256), a pipeline's whole images (by `catalog.key_of` its parts, a RemotePipeline)
        self.remote: dict[str, Callable[[np.ndarray], Awaitable[Result]] | RemotePipeline] = {}

    def get_loaded(self, key: str) -> Loaded | None:
        got = self.loaded.get(key)
        if got is not None:
            self.loaded.move_to_end(key)
        return got

    async def get(self, key: str, path: Callable[[], str], labels: tuple[str, str], *,
                  pipeline: tuple[str, Callable[[], dict[str, str]]] | None = None) -> Loaded:
        """The loaded model `key`: an ONNX graph from `path()`, or with `pipeline=(task, files)` a
        `PipelineRunner` over `workers` predictors of that task built from `files()` (paths by export format)."""
        if (got := self.get_loaded(key)) is not None:
            return got
        if key in self.loading:
            return await asyncio.shield(self.loading[key])
        fut: asyncio.Future[Loaded] = asyncio.get_running_loop().create_future()
        self.loading[key] = fut
        try:
            s = self.settings
            remote = self.remote.get(key)
            if pipeline is not None:
                loaded = (Loaded(key, remote, remote) if isinstance(remote, RemotePipeline)
                          else await self._pipeline(key, pipeline[0], pipeline[1], labels))
                return self._publish(loaded, labels, fut)

            def build() -> Predictor:
                return Predictor(path(), threads=s.ort_threads(), device=s.device, spin_us=s.spin_us)

            predictor = await asyncio.to_thread(build)
            batcher: Batcher | RemoteBatcher
            if remote is not None and not isinstance(remote, RemotePipeline):  # pre/post-processing here, inference there
                batcher = RemoteBatcher(remote)
            else:
                warm = np.zeros((1, 3, predictor.height, predictor.width), np.float32)
                await asyncio.to_thread(predictor.raw, warm)  # first run allocates; not on a user's clock
                solo = None
                if (n := s.solo_threads()) is not None:
                    solo = await asyncio.to_thread(lambda: Predictor(path(), threads=n, device=s.device,
                                                                        spin_us=s.spin_us))
                    await asyncio.to_thread(solo.raw, warm)
                batcher = Batcher(predictor.raw, max_batch=s.batch_limit(), max_wait_ms=s.max_wait_ms,
                                  queue_size=s.queue_size, retry_after_s=s.retry_after_s, labels=labels,
                                  metrics=self.metrics, workers=s.inference_workers(),
                                  solo=solo.raw if solo is not None else None)
            return self._publish(Loaded(key, predictor, batcher), labels, fut)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self.loading[key]

    async def _pipeline(self, key: str, task: str, files: Callable[[], dict[str, str]],
                        labels: tuple[str, str]) -> Loaded:
        s = self.settings
        paths = await asyncio.to_thread(files)
        workers = s.inference_workers()

        def build() -> list[Any]:
            out = [load_pipeline(task, paths, threads=s.ort_threads(), device=s.device) for _ in range(workers)]
            warm = np.full((64, 256, 3), 255, np.uint8)  # first runs allocate; not on a user's clock
            for p in out:
                p.predict(warm)
            return out

        predictors = await asyncio.to_thread(build)
        runner = PipelineRunner(predictors, queue_size=s.queue_size, retry_after_s=s.retry_after_s, labels=labels,
                                metrics=self.metrics)
        return Loaded(key, predictors[0], runner)

    def _publish(self, loaded: Loaded, labels: tuple[str, str], fut: asyncio.Future[Loaded]) -> Loaded:
        self.loaded[loaded.key] = loaded
        log.info("loaded model %s version %s (%s)", labels[0], labels[1], loaded.key[:12])
        while len(self.loaded) > self.settings.cache_models:
            _, old = self.loaded.popitem(last=False)
            log.info("evicting model %s", old.key[:12])
            self._close_later(old)
        self.metrics.loaded.set(len(self.loaded))
        fut.set_result(loaded)
        return loaded

    def _close_later(self, old: Loaded) -> None:
        task = asyncio.get_running_loop().create_task(old.batcher.close())
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    async def close(self) -> None:
        for loaded in list(self.loaded.values()):
            await loaded.batcher.close()
        self.loaded.clear()
        if self.closing:
            await asyncio.gather(*self.closing, return_exceptions=True)
