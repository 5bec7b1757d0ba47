"""GET /v1/concepts and POST /v1/concepts/{name}/predict (scope predict): the project's taught concepts."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from visionloop.serve import inputs
from visionloop.serve.deps import ServiceDep, require
from visionloop.serve.routes.predict import BODY
from visionloop.serve.schemas import ErrorOut

router = APIRouter(prefix="/v1/concepts", tags=["concepts"], dependencies=[Depends(require("predict"))])
ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 413, 415, 422, 429)}


@router.get("", responses=ERRORS)
async def list_concepts(svc: ServiceDep) -> list[dict[str, Any]]:
    """Every concept: name, kind (logistic or prototype), threshold, how many images taught it."""
    return await svc.list_concepts()


@router.post("/{name}/predict", responses=ERRORS, openapi_extra=BODY)
async def predict_concepts(request: Request, svc: ServiceDep, name: str) -> Response:
    """Does each image show the concept? `name` is one concept, several as a,b,c (each answers alone), or
    `all`. The same body forms as model prediction (multipart files, raw bytes, JSON base64)."""
    images, _ = await inputs.read(request, svc)
    out = await svc.predict_concepts(name, images)
    return Response(orjson.dumps(out), media_type="application/json")
