"""POST /v1/models/{name}/predict and /v1/models/{name}/versions/{v}/predict."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from visionloop.serve import inputs
from visionloop.serve.deps import ServiceDep, require
from visionloop.serve.schemas import ErrorOut, JobOut, PredictJSON, PredictOut

router = APIRouter(prefix="/v1/models", tags=["predict"], dependencies=[Depends(require("predict"))])

BODY = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": PredictJSON.model_json_schema()},
}, "required": True}}
ERRORS = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 413, 415, 422, 429, 503)}

Conf = Annotated[float | None, Query(description="Minimum confidence (0..1, default 0.25)")]
Iou = Annotated[float | None, Query(description="NMS IoU threshold (0..1, default 0.6)")]
MaxDet = Annotated[int | None, Query(description="At most this many predictions per image (default 100)")]
Classes = Annotated[str | None, Query(description="Comma-separated class names or ids to keep")]
Tile = Annotated[str | None, Query(description="Tiled inference for small objects in big images: ROWSxCOLS, e.g. 2x2")]
Overlap = Annotated[float | None, Query(description="Overlap of neighbouring tiles (0..1, default 0.2)")]


async def _predict(request: Request, svc: ServiceDep, name: str, version: str | None, confidence: float | None,
                   iou: float | None, max_detections: int | None, classes: str | None, tile: str | None = None,
                   overlap: float | None = None) -> Response:
    images, body_params = await inputs.read(request, svc)
    query = {"confidence": confidence, "iou": iou, "max_detections": max_detections, "classes": classes,
             "tile": tile, "overlap": overlap}
    key = getattr(request.state, "key", None)
    out = await svc.predict(name, version, images, inputs.params(query, body_params),
                            key_prefix=key.prefix if key else None)
    return Response(orjson.dumps(out), media_type="application/json")


@router.post("/{name}/predict", response_model=PredictOut, responses=ERRORS, openapi_extra=BODY)
async def predict(request: Request, svc: ServiceDep, name: str, confidence: Conf = None, iou: Iou = None,
                  max_detections: MaxDet = None, classes: Classes = None, tile: Tile = None,
                  overlap: Overlap = None) -> Response:
    """Predict with the model's ga version, else its newest."""
    return await _predict(request, svc, name, None, confidence, iou, max_detections, classes, tile, overlap)


@router.post("/{name}/versions/{version}/predict", response_model=PredictOut, responses=ERRORS,
             openapi_extra=BODY)
async def predict_version(request: Request, svc: ServiceDep, name: str, version: str, confidence: Conf = None,
                          iou: Iou = None, max_detections: MaxDet = None, classes: Classes = None,
                          tile: Tile = None, overlap: Overlap = None) -> Response:
    """Predict with one version (a registry id: see GET /v1/models/{name})."""
    return await _predict(request, svc, name, version, confidence, iou, max_detections, classes, tile, overlap)


VIDEO = {"requestBody": {"required": True, "content": {
    "video/*": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}}}}}}}


@router.post("/{name}/predict/video", status_code=202, response_model=JobOut, responses=ERRORS,
             openapi_extra=VIDEO)
async def predict_video(request: Request, svc: ServiceDep, name: str,
                        every_ms: Annotated[float, Query(ge=1, le=3_600_000,
                                                         description="Sample a frame every this many ms")] = 500,
                        version: Annotated[str | None, Query(description="A version id (default: ga, else newest)")]
                        = None, confidence: Conf = None, iou: Iou = None, max_detections: MaxDet = None,
                        classes: Classes = None) -> JobOut:
    """Start a video job; poll GET /v1/jobs/{id} for its per-frame predictions."""
    data = await inputs.read_video(request, svc)
    query = {"confidence": confidence, "iou": iou, "max_detections": max_detections, "classes": classes}
    job = await svc.start_video(name, version, data, inputs.params(query, {}), every_ms)
    return JobOut.model_validate(job.to_json())
