"""POST /v1/inputs (scope upload): add images, optionally with an annotation file, to the project as a batch."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from visionloop.serve.deps import ServiceDep, require
from visionloop.serve.errors import BadRequest, PayloadTooLarge, UnsupportedMedia
from visionloop.serve.schemas import ErrorOut
from visionloop.serve.uploads import import_uploads

router = APIRouter(prefix="/v1", tags=["inputs"], dependencies=[Depends(require("upload"))])

BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "annotations": {"type": "string", "format": "binary",
                        "description": "One annotation file in any format `visionloop import` reads"},
        "format": {"type": "string"}, "split": {"type": "string"}}}}}}}


@router.post("/inputs", status_code=201, openapi_extra=BODY,
             responses={c: {"model": ErrorOut} for c in (400, 401, 403, 413, 415)})
async def add_inputs(request: Request, svc: ServiceDep) -> dict[str, Any]:
    """The import report: batch id, images and annotations added, quarantined entries."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        raise UnsupportedMedia("POST /v1/inputs takes multipart/form-data", hint="send the images as `files`")
    limit = svc.settings.max_images
    try:
        form = await request.form(max_files=limit + 1, max_fields=10)
    except StarletteHTTPException as e:
        if "Too many files" in str(e.detail):
            raise PayloadTooLarge(f"more than {limit} images in one request",
                                  hint="split them over several requests") from None
        raise BadRequest(f"malformed multipart body: {e.detail}") from None
    files, annotations, fields = [], None, {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            item = (str(value.filename or "")[:128], await value.read())
            if key == "annotations":
                annotations = item
            else:
                files.append(item)
        elif key in ("format", "split"):
            fields[key] = str(value)[:64] or None
    await form.close()
    if len(files) > limit:
        raise PayloadTooLarge(f"{len(files)} images in one request, at most {limit}")
    assert svc.store is not None
    return await asyncio.to_thread(import_uploads, svc.store, files, annotations=annotations,
                                   format=fields.get("format"), split=fields.get("split"),
                                   max_pixels=svc.settings.max_pixels)
