"""`POST /v1/feedback`: a user's correction of a prediction, checked against the model it corrects (its
versions, its classes, the image's size) before it is stored for relabelling (`store.feedback`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from visionloop.serve import images as img
from visionloop.serve.catalog import Catalog
from visionloop.serve.errors import BadRequest, NotFound
from visionloop.serve.settings import Settings
from visionloop.store import Store


async def add_feedback(store: Store, catalog: Catalog, settings: Settings, fetch: Callable[[str], Awaitable[bytes]],
                       body: Any, *, key_prefix: str | None) -> Any:
    """Validate a correction against the model it corrects, then store it (image as a blob)."""
    import base64
    import binascii
    import math

    from visionloop.store import feedback

    members = catalog.versions(body.model)
    if body.version is not None and all(m.id != body.version for m in members):
        raise NotFound(f"no version {body.version} of model {body.model!r}",
                       hint=f"versions: {', '.join(str(m.id) for m in members)}")
    model = next((m for m in members if m.id == body.version), members[-1])
    data, size = None, None
    if body.image is not None:
        if body.image.base64 is not None:
            text = body.image.base64.partition(",")[2] if body.image.base64.startswith("data:") \
                else body.image.base64
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("image.base64 is not valid base64") from None
        elif body.image.url is not None:
            data = await fetch(body.image.url)
        if data is not None:
            _, w, h = img.check(data, max_pixels=settings.max_pixels, name="the image")
            size = (w, h)
    if data is None and body.image_sha256 is None:
        raise BadRequest("feedback needs the image", hint="send image.base64, or image_sha256 of an image "
                                                         "already in the project")
    for i, c in enumerate(body.correction):
        if c.class_ not in model.classes:
            raise BadRequest(f"correction[{i}]: unknown class {c.class_[:64]!r} for model {model.name}",
                             hint=f"classes: {', '.join(model.classes)}")
        if c.box is not None:
            b = c.box
            if not all(math.isfinite(v) for v in (b.x0, b.y0, b.x1, b.y1)) or b.x0 >= b.x1 or b.y0 >= b.y1:
                raise BadRequest(f"correction[{i}].box is empty or not finite: need x0 < x1 and y0 < y1")
            if size and (b.x0 < 0 or b.y0 < 0 or b.x1 > size[0] or b.y1 > size[1]):
                raise BadRequest(f"correction[{i}].box lies outside the {size[0]}x{size[1]} image")
    correction = [{"class": c.class_, **({"box": [c.box.x0, c.box.y0, c.box.x1, c.box.y1]} if c.box else {})}
                  for c in body.correction]
    name = body.image.name if body.image is not None else ""
    return await asyncio.to_thread(
        feedback.add, store, model=body.model, model_version=model.id, correction=correction,
        prediction=body.prediction, image=data, image_sha256=body.image_sha256, image_name=name,
        note=body.note, key_prefix=key_prefix)


