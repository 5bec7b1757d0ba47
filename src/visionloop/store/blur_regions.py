"""Privacy blur regions of the project's images, as `visionloop blur` finds them and users correct them.

    batch_id, n = store_found(store, {image_id: [Found(cls, box, score, source)]}, source="visionloop blur")
    rows = regions(store, image_id=None)              # [RegionInfo], id order
    batch_id, rid = add(store, image_id, box, cls="face")
    batch_id = reject(store, region_id)                # state blur → rejected
    to_blur = boxes_to_blur(conn, image_ids)           # image id → boxes in state blur (what exports apply)
    done = write(store, found, source=..., bake={image_id: Bake(png_sha, size, digest(boxes))})

Every write is one batch of kind "blur" (each row in its change log), so `visionloop undo BATCH` takes it back
exactly. While the project keeps originals (`privacy.keep_originals`, the default) the image bytes in the blob
store never change; exports and versions blur the regions in state blur. When it does not, `write` with `bake`
replaces an image's blob by its blurred PNG in the same batch (its regions' state becomes baked, the image's
meta records `blurred_from`: the sha256 of the bytes first imported) and removes the original blob from the
blob store when no row refers to it any more. Such a batch cannot be undone: the unblurred pixels are gone.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, text

from visionloop.core.errors import NotFoundError, ProjectError, VisionLoopError
from visionloop.store import batches, bulk, thumbs
from visionloop.store.batches import BatchKind, Op, RowChange
from visionloop.store.gc import DERIVED, REFERENCES
from visionloop.store.project import Store
from visionloop.store.schema import Base, BlobRow, BlurRegionRow, ImageRow

log = logging.getLogger(__name__)

BLUR, REJECTED, BAKED = "blur", "rejected", "baked"
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
    """(image id, detector) pairs that already have regions (any state): a re-run does not detect them again. A
    vehicle detector's plate bands (source `NAME (car band)`) count as NAME's."""
    names = list(sources)
    if not names:
        return set()
    cond = or_(BlurRegionRow.source.in_(names),
               *[BlurRegionRow.source.startswith(f"{n} (", autoescape=True) for n in names])
    out: set[tuple[int, str]] = set()
    with store.session() as s:
        for i, src in s.execute(select(BlurRegionRow.image_id, BlurRegionRow.source).distinct().where(cond)):
            name = src if src in names else src.split(" (", 1)[0]
            out.add((int(i), name))
    return out


def store_found(store: Store, found: dict[int, list[Found]], *, source: str,
                summary: dict[str, Any] | None = None) -> tuple[int | None, int]:
    """Store detected regions in one batch: (its id, regions added); no batch when there is nothing to add."""
    done = write(store, found, source=source, summary=summary)
    return done.batch, done.regions


@dataclass(frozen=True)
class Bake:
    """An image's new pixels: its upright pixels with every region in state blur (those it had, then this batch's
    new ones, in that order) blurred, as a PNG already written to the blob store (`blobs.put`)."""

    sha256: str
    size: int
    boxes: str  # digest() of the boxes blurred into it: the batch refuses to land if the regions changed meanwhile


@dataclass
class Written:
    batch: int | None  # None: nothing to write
    regions: int = 0  # regions added
    region_ids: list[int] = field(default_factory=list)
    baked: int = 0  # images whose stored pixels were replaced by their blurred copy
    discarded: list[str] = field(default_factory=list)  # original blobs removed from the blob store
    kept: dict[str, str] = field(default_factory=dict)  # original blob → the row that still uses it (not removed)


def baked_images(conn: Connection, image_ids: Sequence[int]) -> set[int]:
    """The images (of `image_ids`) whose stored pixels are their blurred copy (a region in state baked)."""
    ids = list(image_ids)
    out: set[int] = set()
    for k in range(0, len(ids), batches.CHUNK):
        out.update(int(i) for i in conn.scalars(select(BlurRegionRow.image_id).distinct().where(
            BlurRegionRow.state == BAKED, BlurRegionRow.image_id.in_(ids[k:k + batches.CHUNK]))))
    return out


def blurred_originals(conn: Connection) -> dict[str, list[tuple[str, str, str | None]]]:
    """sha256 of the bytes first imported → [(blob now stored, file name, split)] of the images blurred in place:
    what a re-import of those bytes is (`BatchWriter` maps it onto them, never storing the original again)."""
    out: dict[str, list[tuple[str, str, str | None]]] = {}
    baked = select(BlurRegionRow.image_id).where(BlurRegionRow.state == BAKED).distinct().scalar_subquery()
    for r in conn.execute(select(ImageRow.sha256, ImageRow.file_name, ImageRow.split, ImageRow.meta)
                          .where(ImageRow.id.in_(baked)).order_by(ImageRow.id)):
        src = (r.meta or {}).get("blurred_from")
        if isinstance(src, str):
            out.setdefault(src, []).append((r.sha256, r.file_name, r.split))
    return out


def png_name(name: str) -> str:
    """The name of an image once its pixels are a blurred PNG (as every export names a blurred image)."""
    return posixpath.splitext(name)[0] + ".png"


def write(store: Store, found: dict[int, list[Found]], *, source: str, summary: dict[str, Any] | None = None,
          bake: dict[int, Bake] | None = None) -> Written:
    """One batch of kind blur: the regions `found` (state blur, or baked for the images in `bake`), and for every
    image in `bake` its blob replaced by the blurred PNG — its regions in state blur become baked, its name ends in
    .png, its meta records `blurred_from` (the bytes first imported). Original blobs no row refers to any more
    are removed from the blob store after the commit. Nothing to write: no batch."""
    bake = bake or {}
    n = sum(len(v) for v in found.values())
    if n == 0 and not bake:
        return Written(None)
    done = Written(None, n)
    olds: set[str] = set()
    with store.engine.begin() as conn:
        batch_id = batches.open_batch(conn, BatchKind.BLUR, source=source,
                                      summary={**(summary or {}), "regions_added": n})
        done.batch = batch_id
        rid = _next_id(conn)
        changes: list[RowChange] = []
        for image_id in sorted(found):
            for f in found[image_id]:
                row = _row(rid, image_id, f)
                if image_id in bake:
                    row["state"] = BAKED
                changes.append(RowChange("blur_region", rid, Op.INSERT, None, row))
                done.region_ids.append(rid)
                rid += 1
        images: list[RowChange] = []
        if bake:
            baking = _bake_changes(conn, store, found, bake, olds)
            changes += [c for c in baking if c.table == "blur_region"]
            images = [c for c in baking if c.table == "image"]
            bulk.insert_blobs(conn, {b.sha256: (b.size, "png") for b in bake.values()})
        batches.apply(conn, batch_id, changes)
        # an image keeps the batch that added it (an undo of that import then names this batch as the reason)
        batches.run(conn, images)
        batches.log(conn, batch_id, images)
        if bake:
            done.baked = len(bake)
            done.kept = _still_used(conn, olds)
            gone = sorted(olds - set(done.kept))
            _forget_blob_rows(conn, gone)
            done.discarded = gone
            batches.set_summary(conn, batch_id, {**(summary or {}), "regions_added": n, "baked": done.baked,
                                                 "originals_discarded": len(gone)})
    if done.discarded:
        remove_blobs(store, done.discarded)
    return done


def _bake_changes(conn: Connection, store: Store, found: dict[int, list[Found]], bake: dict[int, Bake],
                  olds: set[str]) -> list[RowChange]:
    """The row changes that make each image in `bake` its blurred copy; `olds` collects the blobs it had."""
    ids = sorted(bake)
    images = batches.rows(conn, "image", ids)
    current = batches.rows_where(conn, "blur_region", "image_id", ids)
    changes: list[RowChange] = []
    for iid in ids:
        im = images.get(iid)
        if im is None:
            raise NotFoundError(f"no image {iid} in this project", path=store.root)
        mine = [r for r in current.values() if r["image_id"] == iid and r["state"] == BLUR]
        boxes = [(r["x0"], r["y0"], r["x1"], r["y1"]) for r in mine] + [f.box for f in found.get(iid, [])]
        if digest(boxes) != bake[iid].boxes:
            raise ProjectError(f"the blur regions of {im['file_name']} changed while it was being blurred",
                               path=store.root, hint="run the command again")
        for r in mine:
            changes.append(RowChange("blur_region", r["id"], Op.UPDATE, dict(r), {**r, "state": BAKED}))
        if im["sha256"] == bake[iid].sha256:
            continue
        meta = dict(im["meta"] or {})
        meta.setdefault("blurred_from", im["sha256"])  # the bytes first imported, through every later bake
        after = {**im, "sha256": bake[iid].sha256, "file_name": png_name(im["file_name"]), "format": "png",
                 "orientation": 1, "meta": meta}
        changes.append(RowChange("image", iid, Op.UPDATE, dict(im), after))
        olds.add(im["sha256"])
    _refuse_clashes(conn, store, [c.after for c in changes if c.table == "image" and c.after is not None])
    return changes


def _refuse_clashes(conn: Connection, store: Store, afters: list[dict[str, Any]]) -> None:
    """Two images of the same picture in one split, `a.jpg` and `a.png`, would both become `a.png` over the same
    blurred blob: one image twice. Refused, naming them (the project's duplicate fix keeps one)."""
    seen: dict[tuple[str, str, str | None], int] = {}
    shas = sorted({a["sha256"] for a in afters})
    for k in range(0, len(shas), batches.CHUNK):
        for r in conn.execute(select(ImageRow.id, ImageRow.sha256, ImageRow.file_name, ImageRow.split)
                              .where(ImageRow.sha256.in_(shas[k:k + batches.CHUNK]))):
            seen[(r.sha256, r.file_name, r.split)] = int(r.id)
    for a in afters:
        key = (a["sha256"], a["file_name"], a["split"])
        other = seen.get(key)
        if other is not None and other != a["id"]:
            raise ProjectError(f"image {a['id']} blurred in place would be {a['file_name']}"
                               + (f" in split {a['split']}" if a["split"] else "")
                               + f", the same picture as image {other}", path=store.root,
                               hint="they are duplicates: `visionloop fix` keeps one (its blur regions move to it)")
        seen[key] = int(a["id"])


def _still_used(conn: Connection, shas: set[str]) -> dict[str, str]:
    """Blob → the first table that still refers to it (another image of the same bytes, a version, a log)."""
    tables = Base.metadata.tables
    used: dict[str, str] = {}
    for t, c in REFERENCES:
        if t not in tables:
            continue
        todo = sorted(shas - set(used))
        for k in range(0, len(todo), batches.CHUNK):
            for sha in conn.scalars(select(tables[t].c[c]).distinct().where(
                    tables[t].c[c].in_(todo[k:k + batches.CHUNK]))):
                used.setdefault(sha, t)
    return used


def _forget_blob_rows(conn: Connection, shas: Sequence[str]) -> None:
    tables = Base.metadata.tables
    for k in range(0, len(shas), batches.CHUNK):
        part = list(shas[k:k + batches.CHUNK])
        conn.execute(delete(BlobRow).where(BlobRow.sha256.in_(part)))
        for t, c in DERIVED:  # an embedding of the unblurred pixels goes with them
            if t in tables:
                conn.execute(delete(tables[t]).where(tables[t].c[c].in_(part)))


def remove_blobs(store: Store, shas: Sequence[str]) -> list[str]:
    """Remove the files of blobs that no row knows or refers to (what a bake discarded), with the web UI's cached
    thumbnails of them; the ones removed. Holds the write lock, as `gc` does, so no import publishes them again
    meanwhile; a blob an import brought back since is left alone."""
    removed: list[str] = []
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM blob WHERE 1 = 0"))  # takes the write lock
        doomed = set(shas)
        thumb_blobs: set[str] = set()
        for sha in shas:
            thumb_blobs.update(thumbs.forget(store, sha))
        candidates = doomed | thumb_blobs
        order = sorted(candidates)
        known = {k for i in range(0, len(order), batches.CHUNK) for k in conn.scalars(
            select(BlobRow.sha256).where(BlobRow.sha256.in_(order[i:i + batches.CHUNK])))}
        used = _still_used(conn, candidates)
        for sha in sorted(candidates):
            if sha in known or sha in used:
                continue
            if store.blobs.exists(sha):
                store.blobs.remove(sha)
            if sha in doomed:
                removed.append(sha)
    log.info("removed %d original blobs after blurring them in place", len(removed))
    return removed


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


def check_box(store: Store, image_id: int, box: Box) -> Box:
    """The box as floats, after checking that it lies inside the image (upright pixels)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    with store.engine.connect() as conn:
        im = conn.execute(select(ImageRow.width, ImageRow.height, ImageRow.file_name)
                          .where(ImageRow.id == image_id)).first()
    if im is None:
        raise NotFoundError(f"no image {image_id} in this project", path=store.root)
    if not (0 <= x0 < x1 <= im.width and 0 <= y0 < y1 <= im.height):
        raise VisionLoopError(f"box {x0:g} {y0:g} {x1:g} {y1:g} is not inside {im.file_name} "
                              f"({im.width} x {im.height})", path=store.root,
                              hint="give x0 y0 x1 y1 in the image's upright pixels, x0 < x1 and y0 < y1")
    return x0, y0, x1, y1


def add(store: Store, image_id: int, box: Box, *, cls: str = "face", bake: Bake | None = None) -> tuple[int, int]:
    """A region a user drew, in one batch: (batch id, region id). The box must lie inside the image. With `bake`
    (the project keeps no originals) the image's blob becomes its blurred copy in the same batch."""
    box = check_box(store, image_id, box)
    done = write(store, {image_id: [Found(cls, box, None, USER)]}, source="visionloop blur regions add",
                 summary={}, bake={image_id: bake} if bake is not None else None)
    assert done.batch is not None
    return done.batch, done.region_ids[0]


def reject(store: Store, region_id: int) -> int:
    """Mark a region rejected (not blurred from now on), in one batch: its id."""
    with store.engine.begin() as conn:
        before = batches.rows(conn, "blur_region", [region_id]).get(region_id)
        if before is None:
            raise NotFoundError(f"no blur region {region_id} in this project", path=store.root,
                                hint="`visionloop blur regions list` shows them")
        if before["state"] == BAKED:
            raise ProjectError(f"blur region {region_id} is blurred into the stored image, whose unblurred original "
                               f"was discarded (batch {before['batch_id']}); rejecting it cannot bring the pixels "
                               "back", path=store.root,
                               hint="the project keeps no originals (`visionloop blur settings` shows the policy)")
        if before["state"] == REJECTED:
            raise ProjectError(f"blur region {region_id} is already rejected (batch {before['batch_id']})",
                               path=store.root, hint=f"`visionloop undo {before['batch_id']}` blurs it again")
        batch_id = batches.open_batch(conn, BatchKind.BLUR, source="visionloop blur regions reject",
                                      summary={"regions_rejected": 1})
        batches.apply(conn, batch_id, [RowChange("blur_region", region_id, Op.UPDATE, dict(before),
                                                 {**before, "state": REJECTED})])
    return batch_id


def boxes_to_blur(conn: Connection, image_ids: Sequence[int] | None = None, *,
                  states: tuple[str, ...] = (BLUR,)) -> dict[int, list[Box]]:
    """image id → the boxes of its regions in state blur (what must still be applied to its stored pixels), in id
    order; images without any are absent. `states=(BLUR, BAKED)`: every region in effect, applied or not."""
    q = (select(BlurRegionRow.image_id, BlurRegionRow.x0, BlurRegionRow.y0, BlurRegionRow.x1, BlurRegionRow.y1)
         .where(BlurRegionRow.state.in_(states)).order_by(BlurRegionRow.id))
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
