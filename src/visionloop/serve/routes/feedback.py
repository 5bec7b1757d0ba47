"""POST /v1/feedback (scope upload): a correction of a prediction, stored for relabelling."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from visionloop.serve.deps import ServiceDep, require
from visionloop.serve.schemas import ErrorOut, FeedbackIn, FeedbackOut

router = APIRouter(prefix="/v1", tags=["feedback"], dependencies=[Depends(require("upload"))])


@router.post("/feedback", status_code=201, responses={c: {"model": ErrorOut} for c in (400, 401, 403, 404, 413, 415)})
async def add_feedback(body: FeedbackIn, request: Request, svc: ServiceDep) -> FeedbackOut:
    key = getattr(request.state, "key", None)
    info = await svc.add_feedback(body, key_prefix=key.prefix if key else None)
    return FeedbackOut(id=info.id, model=info.model, model_version=info.model_version,
                       image_sha256=info.image_sha256, status=info.status)
