"""Privacy blur regions of the project's images, as `visionloop blur` finds them and users correct them.

    batch_id, n = store_found(store, {image_id: [Found(cls, box, score, source)]}, source="visionloop blur")
    rows = regions(store, image_id=None)              # [RegionInfo], id order
    batch_id, rid = add(store, image_id, box, cls="face")
    batch_id = reject(store, region_id)                # state blur → rejected
    to_blur = boxes_to_blur(conn, image_ids)           # image id → boxes in state blur (what exports apply)

Every write is one undoable batch of kind "blur" (each row in its change log), so `visionloop undo BATCH`
takes it back exactly. The image bytes in the blob store never change; exports and versions blur.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from visionloop.core.errors import NotFoundError, ProjectError, VisionLoopError
from visionloop.store import batches
from visionloop.store.batches import BatchKind, Op, RowChange
from visionloop.store.project import Store
from visionloop.store.schema import BlurRegionRow, ImageRow

BLUR, REJECTED = "blur", "rejected"
USER = "user"
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Found:
    cls: str
    box: Box
    score: float | None
    source: str  # the detector's registry name, or "user"


@dataclass(frozen=True)
class RegionInfo:
    id: int
    image_id: int
    file_name: str
    split: str | None
    cls: str
    box: Box
    score: float | None
    source: str
    state: str
    batch_id: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "image_id": self.image_id, "file_name": self.file_name, "split": self.split,
                "class": self.cls, "box": [round(v, 2) for v in self.box],
                "score": None if self.score is None else round(self.score, 4), "source": self.source,
                "state": self.state, "batch": self.batch_id}


def _next_id(conn: Connection) -> int:
    return int(conn.scalar(select(func.max(BlurRegionRow.id))) or 0) + 1


def _row(rid: int, image_id: int, f: Found) -> dict[str, Any]:
    x0, y0, x1, y1 = (float(v) for v in f.box)
    return {"id": rid, "image_id": image_id, "cls": f.cls, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
            "score": None if f.score is None else float(f.score), "source": f.source, "state": BLUR, "batch_id": 0}


def detected_by(store: Store, sources: Sequence[str]) -> set[tuple[int, str]]:
    """(image id, detector) pairs that already have regions (any state): a re-run does not detect them again."""
    with store.session() as s:
        return {(int(i), src) for i, src in s.execute(
            select(BlurRegionRow.image_id, BlurRegionRow.source).distinct()
            .where(BlurRegionRow.source.in_(list(sources))))}


def store_found(store: Store, found: dict[int, list[Found]], *, source: str,
                summary: dict[str, Any] | None = None) -> tuple[int | None, int]:
    """Store detected regions in one batch: (its id, regions added); no batch when there is nothing to add."""
    n = sum(len(v) for v in found.values())
    if n == 0:
        return None, 0
    with store.engine.begin() as conn:
        batch_id = batches.open_batch(conn, BatchKind.BLUR, source=source,
                                      summary={**(summary or {}), "regions_added": n})
        rid = _next_id(conn)
        changes = []
        for image_id in sorted(found):
            for f in found[image_id]:
                changes.append(RowChange("blur_region", rid, Op.INSERT, None, _row(rid, image_id, f)))
                rid += 1
        batches.apply(conn, batch_id, changes)
    return batch_id, n


def find_image(store: Store, ident: str) -> int:
    """An image id from an id, a file name, or `split/file name` when the name is in several splits."""
    with store.session() as s:
        by_name = s.execute(select(ImageRow.id, ImageRow.split).where(ImageRow.file_name == ident)).all()
        if not by_name and "/" in ident:
            split, name = ident.split("/", 1)
            by_name = s.execute(select(ImageRow.id, ImageRow.split).where(ImageRow.file_name == name,
                                                                           ImageRow.split == split)).all()
        if len(by_name) == 1:
            return int(by_name[0].id)
        if len(by_name) > 1:
            raise VisionLoopError(f"{len(by_name)} images are named {ident!r}", path=store.root,
                                  hint="name one as SPLIT/FILE (" + ", ".join(f"{r.split}/{ident} (id {r.id})"
                                                                             for r in by_name) + ")")
        if ident.isdigit() and s.get(ImageRow, int(ident)) is not None:
            return int(ident)
    raise NotFoundError(f"no image {ident!r} in this project", path=store.root,
                        hint="give an image id or file name (`visionloop blur regions list` shows them)")


def regions(store: Store, *, image_id: int | None = None) -> list[RegionInfo]:
    q = (select(BlurRegionRow, ImageRow.file_name, ImageRow.split)
         .join(ImageRow, ImageRow.id == BlurRegionRow.image_id).order_by(BlurRegionRow.id))
    if image_id is not None:
        q = q.where(BlurRegionRow.image_id == image_id)
    with store.session() as s:
        return [RegionInfo(r.id, r.image_id, name, split, r.cls, (r.x0, r.y0, r.x1, r.y1), r.score, r.source,
                           r.state, r.batch_id) for r, name, split in s.execute(q)]


def add(store: Store, image_id: int, box: Box, *, cls: str = "face") -> tuple[int, int]:
    """A region a user drew, in one batch: (batch id, region id). The box must lie inside the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    with store.engine.begin() as conn:
        im = conn.execute(select(ImageRow.width, ImageRow.height, ImageRow.file_name)
                          .where(ImageRow.id == image_id)).first()
        if im is None:
            raise NotFoundError(f"no image {image_id} in this project", path=store.root)
        if not (0 <= x0 < x1 <= im.width and 0 <= y0 < y1 <= im.height):
            raise VisionLoopError(f"box {x0:g} {y0:g} {x1:g} {y1:g} is not inside {im.file_name} "
                                  f"({im.width} x {im.height})", path=store.root,
                                  hint="give x0 y0 x1 y1 in the image's upright pixels, x0 < x1 and y0 < y1")
        batch_id = batches.open_batch(conn, BatchKind.BLUR, source="visionloop blur regions add",
                                      summary={"regions_added": 1})
        rid = _next_id(conn)
        batches.apply(conn, batch_id, [RowChange("blur_region", rid, Op.INSERT, None,
                                                 _row(rid, image_id, Found(cls, (x0, y0, x1, y1), None, USER)))])
    return batch_id, rid


def reject(store: Store, region_id: int) -> int:
    """Mark a region rejected (not blurred from now on), in one batch: its id."""
    with store.engine.begin() as conn:
        before = batches.rows(conn, "blur_region", [region_id]).get(region_id)
        if before is None:
            raise NotFoundError(f"no blur region {region_id} in this project", path=store.root,
                                hint="`visionloop blur regions list` shows them")
        if before["state"] == REJECTED:
            raise ProjectError(f"blur region {region_id} is already rejected (batch {before['batch_id']})",
                               path=store.root, hint=f"`visionloop undo {before['batch_id']}` blurs it again")
        batch_id = batches.open_batch(conn, BatchKind.BLUR, source="visionloop blur regions reject",
                                      summary={"regions_rejected": 1})
        batches.apply(conn, batch_id, [RowChange("blur_region", region_id, Op.UPDATE, dict(before),
                                                 {**before, "state": REJECTED})])
    return batch_id


def boxes_to_blur(conn: Connection, image_ids: Sequence[int] | None = None) -> dict[int, list[Box]]:
    """image id → the boxes of its regions in state blur, in id order; images without any are absent."""
    q = (select(BlurRegionRow.image_id, BlurRegionRow.x0, BlurRegionRow.y0, BlurRegionRow.x1, BlurRegionRow.y1)
         .where(BlurRegionRow.state == BLUR).order_by(BlurRegionRow.id))
    out: dict[int, list[Box]] = {}
    if image_ids is None:
        for r in conn.execute(q):
            out.setdefault(int(r.image_id), []).append((r.x0, r.y0, r.x1, r.y1))
        return out
    ids = list(image_ids)
    for s in range(0, len(ids), batches.CHUNK):
        for r in conn.execute(q.where(BlurRegionRow.image_id.in_(ids[s:s + batches.CHUNK]))):
            out.setdefault(int(r.image_id), []).append((r.x0, r.y0, r.x1, r.y1))
    return out


def digest(boxes: Sequence[Box]) -> str:
    """A short fingerprint of an image's boxes (what a redacted copy was made from)."""
    return hashlib.sha256(repr([tuple(round(v, 3) for v in b) for b in boxes]).encode()).hexdigest()[:16]
