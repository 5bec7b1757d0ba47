"""Image tags and label state as the loop stage reads and writes them.

    rows = images(store, unlabelled_only=True)      # [ImageInfo(id, sha256, file_name, split, tags)], id order
    batch_id, tag = add_tag(store, [3, 5], None)     # one undoable batch of kind "select"; tag select-<batch id>

An image is unlabelled when nobody labelled it: state `missing`, or annotated only by a model's pre-labels
(every annotation has source `model`, as `visionloop predict --import` leaves them). An image labelled as
empty (`null`) is labelled. Tagging writes each changed image row to the batch's change log, so
`visionloop undo BATCH` takes the tags off exactly (and the batch becomes the rows' last writer, as a fix does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, or_, select

from visionloop.store import batches
from visionloop.store.batches import BatchKind, Op, RowChange
from visionloop.store.project import Store
from visionloop.store.schema import AnnotationRow, ClassRow, ImageRow


@dataclass(frozen=True)
class ImageInfo:
    id: int
    sha256: str
    file_name: str
    split: str | None
    tags: tuple[Any, ...]


def images(store: Store, *, unlabelled_only: bool = False) -> list[ImageInfo]:
    """The project's images in id order; with `unlabelled_only` those nobody labelled."""
    q = select(ImageRow.id, ImageRow.sha256, ImageRow.file_name, ImageRow.split, ImageRow.tags).order_by(ImageRow.id)
    if unlabelled_only:
        labelled_ann = exists().where(AnnotationRow.image_id == ImageRow.id, AnnotationRow.source != "model")
        q = q.where(or_(ImageRow.state == "missing", (ImageRow.state == "annotated") & ~labelled_ann))
    with store.session() as s:
        return [ImageInfo(int(r.id), r.sha256, r.file_name, r.split, tuple(r.tags or ())) for r in s.execute(q)]


def image_ids_where(store: Store, *, class_name: str | None = None,
                    meta: dict[str, str] | None = None) -> set[int]:
    """Ids of the images with a (human) annotation of `class_name` and whose metadata has every `meta` key with
    that value (compared as text). An unknown class is an error naming the project's classes."""
    from visionloop.core.errors import VisionLoopError

    with store.session() as s:
        q = select(ImageRow.id, ImageRow.meta)
        if class_name is not None:
            cid = s.scalar(select(ClassRow.id).where(ClassRow.name == class_name))
            if cid is None:
                names = sorted(s.scalars(select(ClassRow.name)))
                raise VisionLoopError(f"no class {class_name!r} in the project", path=store.root,
                                      hint=f"classes: {', '.join(names) or 'none'}")
            q = q.where(exists().where(AnnotationRow.image_id == ImageRow.id, AnnotationRow.class_id == cid,
                                       AnnotationRow.source != "model"))
        return {int(r.id) for r in s.execute(q)
                if all(str((r.meta or {}).get(k)) == v and k in (r.meta or {}) for k, v in (meta or {}).items())}


def add_tag(store: Store, ids: Sequence[int], tag: str | None, *, source: str,
            summary: dict[str, Any] | None = None) -> tuple[int | None, str]:
    """Add `tag` to the images' tags in one batch of kind "select": (its id, the tag). Without a tag the batch
    names it, `select-<batch id>`. The id is None when every image already had the tag (no batch is written)."""
    with store.engine.begin() as conn:
        before = batches.rows(conn, "image", list(ids))
        if tag is not None and all(tag in (before[i]["tags"] or []) for i in ids):
            return None, tag
        batch_id = batches.open_batch(conn, BatchKind.SELECT, source=source, summary=summary)
        tag = tag if tag is not None else f"select-{batch_id}"
        changes = [RowChange("image", i, Op.UPDATE, dict(before[i]), {**before[i], "tags": [*(before[i]["tags"] or []),
                                                                                           tag]})
                   for i in ids if tag not in (before[i]["tags"] or [])]
        batches.apply(conn, batch_id, changes)
        batches.set_summary(conn, batch_id, {**(summary or {}), "tag": tag, "images_tagged": len(changes)})
    return batch_id, tag


@dataclass(frozen=True)
class BoxInfo:
    id: int
    image_id: int
    label: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's (upright) pixels
    source: str


def boxes(store: Store, image_ids: Sequence[int] | None = None) -> dict[int, list[BoxInfo]]:
    """image id → its annotations that have a box (declared or derived: boxes, polygons, masks), in id order;
    every requested image has an entry (empty when it has none)."""
    from visionloop.store.schema import ClassRow

    q = (select(AnnotationRow.id, AnnotationRow.image_id, ClassRow.name, AnnotationRow.x0, AnnotationRow.y0,
                AnnotationRow.x1, AnnotationRow.y1, AnnotationRow.source)
         .join(ClassRow, ClassRow.id == AnnotationRow.class_id)
         .where(AnnotationRow.x0.is_not(None)).order_by(AnnotationRow.id))
    out: dict[int, list[BoxInfo]] = {int(i): [] for i in image_ids} if image_ids is not None else {}
    with store.session() as s:
        if image_ids is not None:
            ids = list(out)
            for k in range(0, len(ids), 500):
                for r in s.execute(q.where(AnnotationRow.image_id.in_(ids[k:k + 500]))):
                    out[r.image_id].append(BoxInfo(r.id, r.image_id, r.name, (r.x0, r.y0, r.x1, r.y1), r.source))
        else:
            for r in s.execute(q):
                out.setdefault(r.image_id, []).append(BoxInfo(r.id, r.image_id, r.name, (r.x0, r.y0, r.x1, r.y1),
                                                              r.source))
    return out
