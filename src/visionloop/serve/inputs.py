"""Reading the images and parameters of a prediction request: multipart, raw bytes, or JSON."""

from __future__ import annotations

import binascii
from typing import Any

import orjson
from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from visionloop.core.errors import VisionLoopError
from visionloop.serve.answers import Params as RunParams
from visionloop.serve.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMedia
from visionloop.serve.schemas import Params
from visionloop.serve.service import Service

PARAMS = ("confidence", "iou", "max_detections", "classes", "tile", "overlap")


def _name(text: Any) -> str:
    return str(text or "")[:128]


async def read(request: Request, svc: Service) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """(name, bytes) per image and the parameters found in the body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = svc.settings.max_images
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=limit, max_fields=20)
        except StarletteHTTPException as e:  # too many files or fields, malformed multipart
            if "Too many files" in str(e.detail):
                raise PayloadTooLarge(f"more than {limit} images in one request",
                                      hint="split them over several requests") from None
            raise BadRequest(f"malformed multipart body: {e.detail}") from None
        images, params = [], {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                images.append((_name(value.filename), await value.read()))
            elif key in PARAMS:
                params[key] = value
        await form.close()
        return images, params
    if ctype == "application/json":
        try:
            obj = orjson.loads(await request.body())
        except orjson.JSONDecodeError as e:
            raise BadRequest(f"the JSON body is malformed: {e}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("images"), list):
            raise BadRequest("the JSON body needs an `images` list",
                             hint='{"images": [{"base64": "…"}], "confidence": 0.3}')
        if len(obj["images"]) > limit:
            raise PayloadTooLarge(f"{len(obj['images'])} images in one request, at most {limit}",
                                  hint="split them over several requests")
        images = []
        for i, item in enumerate(obj["images"]):
            if not isinstance(item, dict):
                raise BadRequest(f"images[{i}] is not an object", hint='{"base64": "…"} or {"url": "…"}')
            if isinstance(item.get("base64"), str):
                text = item["base64"]
                if text.startswith("data:"):
                    text = text.partition(",")[2]
                try:
                    data = binascii.a2b_base64(text, strict_mode=True)
                except (binascii.Error, ValueError):
                    raise BadRequest(f"images[{i}].base64 is not valid base64") from None
            elif isinstance(item.get("url"), str):
                data = await svc.fetch(item["url"])
            else:
                raise BadRequest(f"images[{i}] has neither `base64` nor `url`")
            images.append((_name(item.get("name")), data))
        return images, {k: obj[k] for k in PARAMS if obj.get(k) is not None}
    if ctype in ("", "application/octet-stream") or ctype.startswith("image/"):
        return [("", await request.body())], {}
    raise UnsupportedMedia(f"unsupported request content type {ctype[:80]!r}",
                           hint="multipart/form-data, image/* (raw bytes) or application/json")


def params(query: dict[str, Any], body: dict[str, Any]) -> RunParams:
    merged = {**query, **body}
    if isinstance(merged.get("classes"), str):
        merged["classes"] = [c.strip() for c in merged["classes"].split(",") if c.strip()]
    try:
        p = Params.model_validate({k: v for k, v in merged.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "parameters"
        raise Unprocessable(f"parameter {field}: {err['msg']}") from None
    tile = None
    if p.tile is not None:
        from visionloop.infer.tiles import parse_tile

        try:
            tile = parse_tile(p.tile)
        except VisionLoopError as e:
            raise Unprocessable(f"parameter tile: {e}", hint="write it as ROWSxCOLS, e.g. 2x2") from None
    return RunParams(p.confidence, p.iou, p.max_detections, p.classes, tile, p.overlap)


async def read_video(request: Request, svc: Service) -> bytes:
    """A video as the raw body (video/*, application/octet-stream) or the one file of a multipart body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=10)
        except StarletteHTTPException as e:
            raise BadRequest(f"one video per request ({e.detail})") from None
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        data = await files[0].read() if files else b""
        await form.close()
    elif ctype in ("", "application/octet-stream") or ctype.startswith("video/"):
        data = await request.body()
    else:
        raise UnsupportedMedia(f"unsupported request content type {ctype[:80]!r}",
                               hint="send the video as video/* bytes or a multipart file")
    if not data:
        raise BadRequest("no video in the request")
    return data
