"""`/v1/concepts`: the few-shot concept models (`visionloop concepts train`) answering on images, each image
embedded once by the project's ONNX embedder (one session per embedder file, kept)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from visionloop.core.errors import VisionLoopError
from visionloop.serve import images as img
from visionloop.serve.answers import ms
from visionloop.serve.errors import BadRequest, NotFound, PayloadTooLarge
from visionloop.serve.settings import Settings
from visionloop.store import Store


class Concepts:
    def __init__(self, store: Callable[[], Store], settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.embedders: dict[str, Any] = {}  # ONNX sessions by embedder file sha256

    async def list_concepts(self) -> list[dict[str, Any]]:
        from visionloop.store import concepts as concept_store

        infos = await asyncio.to_thread(concept_store.list_all, self.store())
        return [{"name": i.name, "kind": i.kind, "threshold": i.threshold, "embedder": i.embedder,
                 "created_at": i.created_at} for i in infos]

    async def predict_concepts(self, name: str, images: list[tuple[str, bytes]]) -> dict[str, Any]:
        """Each concept answers on each image's embedding (the project's ONNX embedder, one session per file)."""
        from visionloop.infer.concepts import ConceptHead, predict
        from visionloop.store import concepts as concept_store

        t0 = time.perf_counter()
        if not images:
            raise BadRequest("no image in the request", hint="send multipart files, raw image bytes, or JSON")
        if len(images) > self.settings.max_images:
            raise PayloadTooLarge(f"{len(images)} images in one request, at most {self.settings.max_images}",
                                  hint="split them over several requests")

        def load() -> tuple[list[Any], Any]:
            if name == "all":
                infos = concept_store.list_all(self.store())
                if not infos:
                    raise NotFound("the project has no concepts", hint="teach one with `visionloop concepts train`")
            else:
                infos = []
                for n in (n.strip() for n in name.split(",") if n.strip()):
                    try:
                        infos.append(concept_store.get(self.store(), n))
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
                "timings": {"total_ms": ms(time.perf_counter() - t0)}}

    def _embedder(self, sha256: str) -> Any:
        from visionloop.infer.embed import OnnxEmbedder
        from visionloop.store.models import blob_file

        if sha256 not in self.embedders:
            self.embedders[sha256] = OnnxEmbedder(blob_file(self.store(), sha256), threads=1)
        return self.embedders[sha256]
