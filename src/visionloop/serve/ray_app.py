"""The same HTTP API as a Ray Serve application: `visionloop serve --ray [--replicas N]`.

    handle = deploy("myproject", Settings(), replicas=2)   # after ray.init() / serve.start(...)

One ingress deployment runs the ordinary FastAPI app (`create_app`: every route, auth, limits, decoding,
pre- and post-processing, so answers are the plain server's); inference goes to one deployment per
servable model (`model-<name>`, N replicas each), which receives preprocessed (3, H, W) arrays and batches
them across requests — with Ray Serve's `@serve.batch` (default, `batching="ray"`: 3-11 % more requests/s
and a lower p95 than our engine's Batcher in each replica, `batching="engine"`, in bench/serve_ray.py on
2 cores; the Batcher would queue a second time behind Ray's own request queue). A model promoted after start-up
has no deployment of its own: the ingress runs it in-process (the plain engine) until the next deploy.

A pipeline model (OCR: several ONNX files with code between them) gets its own deployment too (`model-<name>`,
N replicas), so the ingress stays light (it loads none of its files): the ingress decodes the image and sends it
whole; each replica runs one predictor on one image at a time, behind the engine's bounded `PipelineRunner`, as
one worker of the plain server does. It is not batched across requests, with either `batching`: its images
differ in size and each goes through detection at its own resized shape, then crops of their own widths, so
there is no common tensor to stack; rapidocr already batches the text crops inside one image. Scale it with
--replicas (each replica: `threads` ONNX Runtime threads, default 1, on `device`).

Ray is imported lazily: without it, `--ray` fails with one line naming `pip install 'visionloop[ray]'`.
"""

from __future__ import annotations

import asyncio
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import VisionLoopError
from visionloop.serve.settings import Settings

BATCHING = ("engine", "ray")


def _ray() -> tuple[Any, Any]:
    try:
        import ray
        from ray import serve
    except ImportError:
        raise VisionLoopError("--ray needs Ray Serve, which is not installed",
                              hint="pip install 'visionloop[ray]'") from None
    return ray, serve


@cache
def _deployments() -> tuple[Any, Any, Any]:
    """The three deployment classes, built on first use (defining them needs `ray.serve`)."""
    _, serve = _ray()

    class Model:
        """One model's ONNX Runtime session; `infer(x)` answers one image's `Result`, batched."""

        def __init__(self, onnx: bytes, settings_json: str, batching: str, labels: tuple[str, str]) -> None:
            from visionloop.infer import Predictor

            s = Settings.model_validate_json(settings_json)
            self.settings = s
            self.labels = labels
            self.batching = batching
            self.predictor = Predictor(onnx, threads=s.threads or 1, device=s.device)
            self.predictor.raw(np.zeros((1, 3, self.predictor.height, self.predictor.width), np.float32))
            self.batcher: Any = None
            if batching == "ray":
                self.infer_batch.set_max_batch_size(s.max_batch or 4)
                self.infer_batch.set_batch_wait_timeout_s(s.max_wait_ms / 1000)

        async def infer(self, x: np.ndarray) -> Any:
            if self.batching == "ray":
                return await self.infer_batch(x)
            if self.batcher is None:  # needs the replica's running loop
                from visionloop.serve.engine import Batcher

                s = self.settings
                self.batcher = Batcher(self.predictor.raw, max_batch=s.max_batch or 4, max_wait_ms=s.max_wait_ms,
                                       queue_size=s.queue_size, retry_after_s=s.retry_after_s,
                                       labels=self.labels, workers=1)
            return await self.batcher.submit(x)

        @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.0)
        async def infer_batch(self, xs: list[np.ndarray]) -> list[Any]:
            from visionloop.serve.engine import Result

            start = time.perf_counter()
            outs = await asyncio.to_thread(self.predictor.raw, np.stack(xs))
            took = time.perf_counter() - start
            return [Result([o[i] for o in outs], 0.0, took, len(xs)) for i in range(len(xs))]

    class Pipeline:
        """One pipeline model's predictor (OCR); `infer(rgb, kw)` answers one whole image's `PipelineResult`."""

        def __init__(self, task: str, files: dict[str, bytes], settings_json: str, labels: tuple[str, str]) -> None:
            from visionloop.serve.engine import load_pipeline

            s = Settings.model_validate_json(settings_json)
            self.settings = s
            self.labels = labels
            self.predictor = load_pipeline(task, files, threads=s.threads or 1, device=s.device)
            self.predictor.predict(np.full((64, 256, 3), 255, np.uint8))  # first run allocates
            self.runner: Any = None

        async def infer(self, rgb: np.ndarray, kw: dict[str, Any]) -> Any:
            if self.runner is None:  # needs the replica's running loop
                from visionloop.serve.engine import PipelineRunner

                s = self.settings
                # as many waiting as Ray lets in (max_ongoing_requests): the runner only serialises them
                self.runner = PipelineRunner([self.predictor], queue_size=s.queue_size,
                                             retry_after_s=s.retry_after_s, labels=self.labels)
            return await self.runner.submit(rgb, **kw)

    @serve.ingress()
    class Ingress:
        """The FastAPI app, its models' inference sent to their deployments."""

        def __init__(self, project: str, settings_json: str, models: dict[str, Any],
                     pipelines: dict[str, tuple[Any, str, list[str]]]) -> None:
            self.project = project
            self.settings = Settings.model_validate_json(settings_json)
            self.models = models
            self.pipelines = pipelines

        def __serve_build_asgi_app__(self) -> Any:
            from visionloop.serve.app import create_app
            from visionloop.serve.engine import RemotePipeline

            app = create_app(self.project, self.settings)
            pool = app.state.service.pool
            for key, handle in self.models.items():
                pool.remote[key] = _caller(handle)
            for key, (handle, task, classes) in self.pipelines.items():
                pool.remote[key] = RemotePipeline(_pipeline_caller(handle), task=task, classes=classes)
            return app

    return Model, Pipeline, Ingress


def _caller(handle: Any) -> Any:
    async def call(x: np.ndarray) -> Any:
        return await handle.infer.remote(x)

    return call


def _pipeline_caller(handle: Any) -> Any:
    async def call(rgb: np.ndarray, kw: dict[str, Any]) -> Any:
        return await handle.infer.remote(rgb, kw)

    return call


def build(project: str | Path, settings: Settings, *, replicas: int = 1, batching: str = "ray") -> Any:
    """The Ray Serve application (not yet running): one `model-<name>` deployment per servable model (a graph's
    batched session, or a pipeline's predictor), and the `api` ingress."""
    from visionloop.serve import catalog as cat
    from visionloop.serve.service import check_auth
    from visionloop.store import Store

    if batching not in BATCHING:
        raise VisionLoopError(f"unknown batching {batching!r}", hint=f"one of: {', '.join(BATCHING)}")
    if replicas < 1:
        raise VisionLoopError(f"--replicas must be at least 1, not {replicas}")
    _, serve = _ray()
    Model, Pipeline, Ingress = _deployments()
    project = Path(project).resolve()
    with Store.open(project) as store:
        check_auth(store, settings)
        catalog = cat.Catalog(cat.load(store, settings.precision), settings.precision, settings.models)
        chosen = {m.id: m for m in [*catalog.by_name.values(), *(m for f in catalog.families().values() for m in f)]}
        if settings.models and not chosen:
            raise VisionLoopError(f"no servable model {settings.models[0]!r} in this project (ready, exported to "
                                  "ONNX)", hint="see `visionloop model list`")
        blobs, pipes = {}, {}
        for m in chosen.values():
            files = cat.parts(m, settings.precision)
            assert files is not None
            if cat.kind(m.task) == "pipeline":
                pipes[cat.key_of(files)] = (m, {fmt: store.blobs.get(e.sha256) for fmt, e in files.items()})
            else:
                blobs[files["onnx"].sha256] = (m, store.blobs.get(files["onnx"].sha256))
    settings_json = settings.model_dump_json()
    waiting = max(settings.queue_size, 2 * (settings.max_batch or 4))
    models = {key: serve.deployment(Model).options(
        name=f"model-{m.name}", num_replicas=replicas, max_ongoing_requests=waiting,
        ray_actor_options={"num_cpus": 0}).bind(data, settings_json, batching, (m.name, str(m.id)))
        for key, (m, data) in blobs.items()}
    pipelines = {key: (serve.deployment(Pipeline).options(
        name=f"model-{m.name}", num_replicas=replicas, max_ongoing_requests=settings.queue_size,
        ray_actor_options={"num_cpus": 0}).bind(m.task, data, settings_json, (m.name, str(m.id))), m.task, m.classes)
        for key, (m, data) in pipes.items()}
    return serve.deployment(Ingress).options(
        name="api", num_replicas=1, max_ongoing_requests=waiting,
        ray_actor_options={"num_cpus": 0}).bind(str(project), settings_json, models, pipelines)


def deploy(project: str | Path, settings: Settings, *, replicas: int = 1, batching: str = "ray",
           name: str = "visionloop") -> Any:
    """`build` and `serve.run` it at route prefix "/" on the running Ray instance; returns the ingress handle."""
    _, serve = _ray()
    return serve.run(build(project, settings, replicas=replicas, batching=batching), name=name, route_prefix="/")


def serve_ray(project: str | Path, settings: Settings, *, replicas: int = 1, batching: str = "ray",
              address: str | None = None) -> None:
    """`visionloop serve --ray`: start (or join, with `address`) Ray, serve on settings.host:port until Ctrl-C."""
    ray, serve = _ray()
    app = build(project, settings, replicas=replicas, batching=batching)  # user mistakes before Ray starts
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(app, name="visionloop", route_prefix="/")
        while True:
            time.sleep(3600)
    finally:  # Ctrl-C: shut Ray down, then the interrupt goes on to the CLI, which exits 130 (not 0)
        serve.shutdown()
        ray.shutdown()
