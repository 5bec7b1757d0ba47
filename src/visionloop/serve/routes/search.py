"""POST /v1/search (scope predict): the project images most similar to an image, or ranked by a concept."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from visionloop.serve import inputs
from visionloop.serve.deps import ServiceDep, require
from visionloop.serve.errors import BadRequest
from visionloop.serve.schemas import ErrorOut, SearchIn, SearchOut

router = APIRouter(prefix="/v1/search", tags=["search"], dependencies=[Depends(require("predict"))])
ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 413, 415, 422, 429)}


def run_search(store: Any, *, image_id: str | None, image: bytes | None, concept: str | None, k: int
               ) -> dict[str, Any]:
    """The stage the CLI's `similar` and `search` call, on the server's store (in a worker thread)."""
    from visionloop.loop.similar import search_concept, similar
    from visionloop.train.concepts import default_embedder

    if sum(x is not None for x in (image_id, image, concept)) != 1:
        raise BadRequest("send exactly one of image_id, image and concept",
                         hint='e.g. {"image_id": "raccoon-1.jpg", "k": 10} or an image upload')
    if concept is not None:
        return search_concept(store, concept, k=k, workers=1).to_json()
    query: str | bytes = image if image is not None else str(image_id)
    name, sha, _ = default_embedder(store)
    return similar(store, (name, sha), query, k=k, workers=1).to_json()


@router.post("", responses=ERRORS, response_model=SearchOut)
async def search(request: Request, svc: ServiceDep, k: int = Query(20, ge=1, le=1000)) -> dict[str, Any]:
    """JSON `{image_id | image (base64) | concept, k}`, or an image upload (multipart or raw bytes, `?k=`)."""
    store = svc.store
    assert store is not None
    if request.headers.get("content-type", "").startswith("application/json"):
        body = SearchIn.model_validate_json(await request.body())
        data = None
        if body.image is not None:
            try:
                data = base64.b64decode(body.image, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("image is not base64", hint="send the image's bytes base64-encoded") from None
        return await asyncio.to_thread(run_search, store, image_id=body.image_id, image=data,
                                       concept=body.concept, k=body.k)
    images, _ = await inputs.read(request, svc)
    if len(images) != 1:
        raise BadRequest(f"{len(images)} images sent; search takes one", hint="send one image per request")
    return await asyncio.to_thread(run_search, store, image_id=None, image=images[0][1], concept=None, k=k)
