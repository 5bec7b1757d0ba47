"""Stored blur regions applied wherever project pixels leave the store: `visionloop export` and version
generation (so version exports, previews and training images are blurred too).

    for s in redact_samples(store, store.samples(), tmp):   # images with regions point at a blurred PNG in tmp
    red = prepare_sources(store, image_ids)                  # image id → blob of its blurred upright PNG

An image with regions in state blur comes out as a lossless PNG of its upright pixels with each region's ellipse
blurred (`transforms.redact`), named `<stem>.png`, so every pixel outside the regions is exactly the original
decode's; an image without regions is its stored bytes, as before. An image blurred in place (the project keeps
no originals, regions in state baked) is its stored bytes too: they are blurred already.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from visionloop.core.errors import VisionLoopError
from visionloop.core.sample import Sample
from visionloop.store import blur_regions, bulk
from visionloop.store.project import Store
from visionloop.store.schema import ImageRow
from visionloop.transforms.redact import redact

Key = tuple[str, str, str | None]  # an image's identity: (sha256, file name, split)


def png_name(name: str) -> str:
    return posixpath.splitext(name)[0] + ".png"


def _boxes_by_key(store: Store) -> dict[Key, tuple[int, int, list[blur_regions.Box]]]:
    """(sha256, file name, split) → (image id, orientation, boxes to blur), for the images that have any."""
    with store.engine.connect() as conn:
        boxes = blur_regions.boxes_to_blur(conn)
        if not boxes:
            return {}
        out: dict[Key, tuple[int, int, list[blur_regions.Box]]] = {}
        ids = list(boxes)
        for k in range(0, len(ids), 500):
            for r in conn.execute(select(ImageRow.id, ImageRow.sha256, ImageRow.file_name, ImageRow.split,
                                         ImageRow.orientation).where(ImageRow.id.in_(ids[k:k + 500]))):
                out[(r.sha256, r.file_name, r.split)] = (int(r.id), int(r.orientation or 1), boxes[int(r.id)])
        return out


def redact_samples(store: Store, samples: Iterable[Sample], folder: Path) -> Iterator[Sample]:
    """The samples, those whose image has blur regions pointing at a blurred PNG written into `folder` (which
    the caller removes after the write)."""
    by_key = _boxes_by_key(store)
    if not by_key:
        yield from samples
        return
    for s in samples:
        ref = s.image
        hit = by_key.get((ref.sha256 or "", ref.file_name, s.split))
        if hit is None:
            yield s
            continue
        image_id, orientation, boxes = hit
        try:
            data = redact(store.blobs.get(ref.sha256 or ""), orientation, boxes)
        except ValueError:
            raise VisionLoopError("cannot decode the stored image to blur it", path=store.root,
                                  where=ref.file_name) from None
        path = folder / f"{image_id}.png"
        path.write_bytes(data)
        yield replace(s, image=replace(ref, file_name=png_name(ref.file_name), path=str(path),
                                       sha256=hashlib.sha256(data).hexdigest(), format="png", orientation=1))


def boxes_digest(boxes: dict[int, list[blur_regions.Box]]) -> str:
    """A fingerprint of the regions blurred in a set of images ('' when there are none)."""
    if not boxes:
        return ""
    h = hashlib.sha256()
    for iid in sorted(boxes):
        h.update(f"{iid}:{blur_regions.digest(boxes[iid])}\n".encode())
    return h.hexdigest()


def boxes_for(store: Store, image_ids: Sequence[int], *, baked: bool = False) -> dict[int, list[blur_regions.Box]]:
    """image id → the boxes to blur into its stored pixels; `baked`: also those already blurred into them (a project
    that keeps no originals), i.e. every region in effect — what a version's fingerprint of its regions covers."""
    states = (blur_regions.BLUR, blur_regions.BAKED) if baked else (blur_regions.BLUR,)
    with store.engine.connect() as conn:
        return blur_regions.boxes_to_blur(conn, [int(i) for i in image_ids], states=states)


def prepare_sources(store: Store, boxes: dict[int, list[blur_regions.Box]]) -> dict[int, str]:
    """Blurred upright PNG blobs of the images in `boxes` (written, with their blob rows): image id → sha256."""
    if not boxes:
        return {}
    out: dict[int, str] = {}
    rows: dict[str, tuple[int, str | None]] = {}
    with store.engine.connect() as conn:
        meta = {int(r.id): (r.sha256, int(r.orientation or 1), r.file_name) for r in conn.execute(
            select(ImageRow.id, ImageRow.sha256, ImageRow.orientation, ImageRow.file_name)
            .where(ImageRow.id.in_(list(boxes))))}
    for iid, bx in boxes.items():
        sha, orientation, name = meta[iid]
        try:
            data = redact(store.blobs.get(sha), orientation, bx)
        except ValueError:
            raise VisionLoopError("cannot decode the stored image to blur it", path=store.root, where=name) from None
        out[iid] = store.blobs.put(data)
        rows[out[iid]] = (len(data), "png")
    with store.engine.begin() as conn:
        bulk.insert_blobs(conn, rows)
    return out


def image_bytes(store: Store, image_id: int) -> tuple[bytes, bool]:
    """The bytes to let out for one stored image (a labelling tool's upload, a report's thumbnail): its blob, or,
    when it has blur regions, its blurred upright PNG; and whether it was blurred."""
    with store.engine.connect() as conn:
        boxes = blur_regions.boxes_to_blur(conn, [image_id]).get(image_id)
        r = conn.execute(select(ImageRow.sha256, ImageRow.orientation, ImageRow.file_name)
                         .where(ImageRow.id == image_id)).first()
    if r is None:
        raise VisionLoopError(f"no image {image_id} in this project", path=store.root)
    data = store.blobs.get(r.sha256)
    if not boxes:
        return data, False
    try:
        return redact(data, int(r.orientation or 1), boxes), True
    except ValueError:
        raise VisionLoopError("cannot decode the stored image to blur it", path=store.root, where=r.file_name) from None
