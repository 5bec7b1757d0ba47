"""`fix`: apply the unambiguous repairs as one batch of kind "fix"; `undo` puts every row back.

What is fixed (and only this; the rest needs a human and stays in the report):

- a box or polygon partly outside its image is clipped to it; a polyline is cut at the image's edges
  (one leaving the image and coming back becomes one annotation per part inside: the first part updates
  the row, the others are inserted, `polylines_split`; one with no part inside is deleted);
- a box of zero or negative width or height, an annotation entirely outside its image,
  and a box left with zero area by clipping are deleted;
- of two boxes on one image, of one class (after merging), with IoU > 0.95, the later
  one (higher id) is deleted;
- class names that differ only by case or spaces are merged into the most used spelling
  (its annotations move over, the other class row is deleted);
- of images that are the same picture (same bytes or same decoded pixels), one is kept —
  the one in `train`, else the unassigned one; among those the earliest imported (lowest
  batch), else the one with the shortest file name, else the oldest row; the plan says
  which rule decided — and a copy is deleted
  when its annotations are the same as the kept one's (or it was never labelled).
  Copies that straddle train and validation therefore stay in train and leave
  validation, which removes the leakage without losing training data. Copies with
  different annotations are left alone (the report calls them conflicting).

Every changed or deleted row is written to the change log (`ChangeRow`: table, row id,
op, the whole row before and after) under the fix batch, so `undo(store, batch)`
restores exactly, row ids included. Blobs are never deleted.

The image rows whose annotations change get their `ann_digest` recomputed from the new
annotations (`codec.annotations_digest`), so the digest always describes what the store
holds: exporting after a fix and re-importing that export changes nothing. Re-importing
the ORIGINAL, unfixed files afterwards is a different statement about those images: the
importer sees annotations that differ from the store's and, as for any relabelled image,
replaces them (counted as `images_updated`), bringing their defects back; images the fix
deleted as duplicates come back as new images. Import with fixing on (the default clips
and drops zero-area boxes by itself) and run `visionloop fix` again, or undo the fix
first if the files are the better version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from visionloop.core.errors import ProjectError
from visionloop.core.geometry import Box
from visionloop.health import duplicates, findings
from visionloop.health.load import Annotations, Images, load_annotations, load_classes, load_images
from visionloop.store import batches, codec
from visionloop.store.batches import BatchKind, Op, RowChange
from visionloop.store.project import Store

log = logging.getLogger(__name__)

ANN, IMG, CLS, REG = "annotation", "image", "class", "blur_region"


@dataclass
class Change:
    """One row a fix changes: what and where in words, and the row before/after."""

    table: str
    row_id: int
    op: str  # update | delete | insert
    image: str | None
    what: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "row_id": self.row_id, "op": self.op, "image": self.image, "what": self.what}

    def row_change(self) -> RowChange:
        return RowChange(self.table, self.row_id, Op(self.op), self.before, self.after)


@dataclass
class FixReport:
    batch_id: int | None  # None for a dry run, or when there was nothing to fix
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    undone: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch_id, "dry_run": self.dry_run, "undone": self.undone, "counts": self.counts,
                "changes": [c.to_json() for c in self.changes]}


def _fmt_box(b: np.ndarray | list[float]) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in b) + ")"


def plan(store: Store, *, workers: int = 2, cache: bool = True) -> tuple[list[Change], dict[str, int]]:
    """The changes `fix` would make, in the order they are applied, with whole before/after rows."""
    images = load_images(store)
    anns = load_annotations(store, images)
    classes = load_classes(store)
    uniq, n = np.unique(anns.class_id, return_counts=True)
    per_class = dict(zip(uniq.tolist(), n.tolist(), strict=True))
    m = findings.detect(images, anns, classes, per_class)
    names = dict(zip(classes.id.tolist(), classes.name, strict=True))

    new_class = findings.canonical_class(anns, m.merge)
    new_box = anns.box.copy()
    clip = m.partly_outside[np.isin(anns.kind[m.partly_outside], findings.CLIPPABLE)]
    new_box[clip] = findings.clip_boxes(images, anns)[clip]
    flat = np.zeros(len(anns), bool)
    flat[clip] = (((new_box[clip, 2] - new_box[clip, 0]) <= 0) | ((new_box[clip, 3] - new_box[clip, 1]) <= 0)) \
        & (anns.kind[clip] != "polyline")  # a line's box may be flat; what the edge leaves of it is decided below
    reason = np.full(len(anns), "", dtype=object)
    reason[m.duplicate_drop] = "duplicate"
    reason[flat] = "zero area after clipping"
    reason[m.entirely_outside] = "outside the image"
    reason[m.zero_area] = "zero area"
    dropped = reason != ""
    moved = (new_class != anns.class_id) & ~dropped
    clipped = np.zeros(len(anns), bool)
    clipped[clip] = True
    clipped &= ~dropped
    touched = np.flatnonzero(dropped | moved | clipped)

    # images whose annotations change, and same-picture groups (for duplicate images)
    _, inv = np.unique(images.sha256.astype(str), return_inverse=True)
    group = duplicates.analyse(store, images, workers=workers, cache=cache, confirm_near=False).group
    igroup = group[inv]
    in_group = np.flatnonzero(np.bincount(igroup)[igroup] > 1)  # images sharing their picture with another
    affected = np.union1d(np.unique(anns.image[touched]), in_group)

    changes: list[Change] = []
    counts: dict[str, int] = {}
    with store.engine.connect() as conn:
        new_id = batches.next_id(conn, ANN)
        ann_ids = anns.id[np.isin(anns.image, affected)].tolist()
        ann_rows = batches.rows(conn, ANN, ann_ids)
        img_rows = batches.rows(conn, IMG, images.id[affected].tolist())
        cls_rows = batches.rows(conn, CLS, list(m.merge))
        reg_rows = batches.rows_where(conn, REG, "image_id", images.id[in_group].tolist())
        # captions (no class, never touched here) still count in the affected images' digests and states
        caption_rows = [r for r in batches.rows_where(conn, ANN, "image_id", images.id[affected].tolist()).values()
                        if r["class_id"] is None]
    ids = sorted(ann_rows)
    pos_of = dict(zip(ids, np.searchsorted(anns.id, ids).tolist(), strict=True))
    by_image: dict[int, list[int]] = {}
    for aid in ids:
        by_image.setdefault(ann_rows[aid]["image_id"], []).append(aid)

    # the annotations as they will be, per affected image, for the new digests and states
    final: dict[int, list[dict[str, Any]]] = {int(images.id[p]): [] for p in affected}
    ann_after: dict[int, dict[str, Any] | None] = {}
    added: list[tuple[int, dict[str, Any]]] = []  # (annotation cut, new row): the other parts of cut polylines
    for aid, row in ann_rows.items():
        p = pos_of[aid]
        if dropped[p]:
            ann_after[aid] = None
            continue
        after = dict(row)
        if moved[p]:
            after["class_id"] = int(new_class[p])
        if clipped[p]:
            more = _clip_row(after, new_box[p], images, anns, p)
            if more is None:  # a polyline whose box reaches in, the line itself not
                ann_after[aid], reason[p] = None, "outside the image"
                continue
            added += [(aid, r) for r in more]
            final[row["image_id"]].extend(more)
        if after != row:
            ann_after[aid] = after
        final[row["image_id"]].append(after)
    for row in caption_rows:
        final[row["image_id"]].append(row)
    digest, state = images.ann_digest.copy(), images.state.copy()
    for p in affected:
        iid = int(images.id[p])
        rows = final[iid]
        st = str(images.state[p])
        if not rows and st == "annotated":
            st = "null"
        state[p] = st
        digest[p] = codec.annotations_digest(
            [codec.annotation_from(SimpleNamespace(**r), codec.label_of(r["class_id"], names)) for r in rows], st)
    drop_img, keep_of = duplicates.drop_plan(images, igroup, digest=digest, state=state)
    drop_set = set(images.id[drop_img].tolist())

    fname = {int(i): f for i, f in zip(images.id[affected].tolist(), images.file_name[affected], strict=True)}
    # 1. annotation updates and deletes (annotations of dropped images go with their image)
    for aid in sorted(ann_rows):
        row, p = ann_rows[aid], pos_of[aid]
        if row["image_id"] in drop_set:
            continue
        if aid not in ann_after:
            continue
        new_row = ann_after[aid]
        if new_row is None:
            what = f"delete {names.get(row['class_id'], '?')} box {_fmt_box(anns.box[p])}: {reason[p]}"
            counts[f"annotations_deleted_{reason[p].replace(' ', '_')}"] = counts.get(
                f"annotations_deleted_{reason[p].replace(' ', '_')}", 0) + 1
            changes.append(Change(ANN, aid, "delete", fname[row["image_id"]], what, row, None))
            continue
        parts = []
        if new_row["class_id"] != row["class_id"]:
            parts.append(f"class {names[row['class_id']]!r} → {names[new_row['class_id']]!r}")
            counts["annotations_reclassed"] = counts.get("annotations_reclassed", 0) + 1
        if clipped[p]:
            box = [new_row[k] for k in ("x0", "y0", "x1", "y1")]
            parts.append(f"clip {_fmt_box(anns.box[p])} → {_fmt_box(box)}")
            counts["annotations_clipped"] = counts.get("annotations_clipped", 0) + 1
        changes.append(Change(ANN, aid, "update", fname[row["image_id"]], "; ".join(parts), row, new_row))
        for k, (cut, extra) in enumerate((c, r) for c, r in added if c == aid):
            extra["id"], new_id = new_id, new_id + 1
            box = [extra[c] for c in ("x0", "y0", "x1", "y1")]
            changes.append(Change(ANN, extra["id"], "insert", fname[row["image_id"]],
                                  f"add part {k + 2} of polyline {cut}, cut by the image's edge: {_fmt_box(box)}",
                                  None, extra))
            counts["polylines_split"] = counts.get("polylines_split", 0) + 1
    # 2. duplicate images: their annotations, then the image rows
    for p, k in zip(drop_img.tolist(), keep_of.tolist(), strict=True):
        iid = int(images.id[p])
        for aid in by_image.get(iid, []):
            changes.append(Change(ANN, aid, "delete", images.file_name[p], "delete with its duplicate image",
                                  ann_rows[aid], None))
            counts["annotations_deleted_with_images"] = counts.get("annotations_deleted_with_images", 0) + 1
        for rid, reg in reg_rows.items():
            if reg["image_id"] == iid:  # the same picture: its blur regions move to the image that is kept
                changes.append(Change(REG, rid, "update", images.file_name[p],
                                      f"move blur region to {images.file_name[k]} (the same picture)", reg,
                                      {**reg, "image_id": int(images.id[k])}))
                counts["blur_regions_moved"] = counts.get("blur_regions_moved", 0) + 1
        changes.append(Change(IMG, iid, "delete", images.file_name[p],
                              f"delete duplicate image ({images.split[p]}) of {images.file_name[k]} "
                              f"({images.split[k]}); {images.file_name[k]} is kept: "
                              f"{duplicates.keep_reason(images, k, p)}", img_rows[iid], None))
        counts["images_deleted"] = counts.get("images_deleted", 0) + 1
    # 3. image rows whose annotations changed: new digest (and state)
    for p in affected:
        iid = int(images.id[p])
        row = img_rows[iid]
        if iid in drop_set or (digest[p] == row["ann_digest"] and state[p] == row["state"]):
            continue
        after = {**row, "ann_digest": str(digest[p]), "state": str(state[p])}
        what = "annotations changed: new digest" + (f", state {row['state']} → {state[p]}"
                                                     if state[p] != row["state"] else "")
        changes.append(Change(IMG, iid, "update", images.file_name[p], what, row, after))
        counts["images_updated"] = counts.get("images_updated", 0) + 1
    # 4. merged class rows
    for cid, into in m.merge.items():
        changes.append(Change(CLS, cid, "delete", None, f"merge class {names[cid]!r} into {names[into]!r}",
                              cls_rows[cid], None))
        counts["classes_merged"] = counts.get("classes_merged", 0) + 1
    return changes, counts


def _clip_row(row: dict[str, Any], box: np.ndarray, images: Images, anns: Annotations,
              p: int) -> list[dict[str, Any]] | None:
    """Clip one annotation row (a box, or a polygon's rings) to its image, as the importer does. A polyline is cut
    at the edges (`Polyline.clip`): `row` becomes the first part, and the other parts are returned as new rows
    (without an id); None when no part is inside."""
    from visionloop.core.geometry import Polygon, Polyline

    W, H = float(images.width[anns.image[p]]), float(images.height[anns.image[p]])
    if row["kind"] == "polyline":
        pieces = Polyline(tuple(row["data"]["points"])).clip(W, H)
        if not pieces:
            return None
        rows = [dict(row) for _ in pieces]
        for r, piece in zip(rows, pieces, strict=True):
            b = piece.bounds() if not r["bbox_declared"] else Box(r["x0"], r["y0"], r["x1"], r["y1"]).clip(W, H)
            r.update(x0=b.x0, y0=b.y0, x1=b.x1, y1=b.y1, data={**r["data"], "points": list(piece.points)})
        row.update(rows[0])
        return rows[1:]
    row["x0"], row["y0"], row["x1"], row["y1"] = (float(v) for v in box)
    if row["kind"] == "polygon":
        rings = [[min(max(v, 0.0), W if k % 2 == 0 else H) for k, v in enumerate(r)] for r in row["data"]["rings"]]
        row["data"] = {**row["data"], "rings": rings}
        if not row["area_declared"]:
            row["area"] = Polygon(tuple(tuple(r) for r in rings)).area
        if not row["bbox_declared"]:
            poly = Polygon(tuple(tuple(r) for r in rings)).bounds()
            row["x0"], row["y0"], row["x1"], row["y1"] = poly.x0, poly.y0, poly.x1, poly.y1
    elif not row["area_declared"]:
        row["area"] = float((box[2] - box[0]) * (box[3] - box[1]))
    return []


def fix(store: Store, *, dry_run: bool = False, workers: int = 2, cache: bool = True) -> FixReport:
    """Apply every unambiguous fix as one batch (kind "fix"), or with `dry_run` only say what it would do."""
    changes, counts = plan(store, workers=workers, cache=cache)
    if dry_run or not changes:
        return FixReport(None, dry_run, counts, changes)
    with store.engine.begin() as conn:
        batch_id = batches.open_batch(conn, BatchKind.FIX, source="visionloop fix", summary=counts)
        batches.apply(conn, batch_id, [c.row_change() for c in changes])
    log.info("fix batch %d: %s", batch_id, counts)
    return FixReport(int(batch_id), False, counts, changes)


def undo(store: Store, batch_id: int) -> FixReport:
    """Put back every row a fix batch changed. Refused when a later batch changed those rows since."""
    with store.engine.begin() as conn:
        batch = batches.batch_row(conn, batch_id, root=store.root)
        if batch.kind != BatchKind.FIX:
            raise ProjectError(f"batch {batch_id} is an {batch.kind}, not a fix: `visionloop undo {batch_id}` "
                               "undoes it", path=store.root)
        inverse = batches.undo(conn, batch_id, root=store.root).restored
    log.info("undid fix batch %d: %d rows restored", batch_id, len(inverse))
    changes = [Change(c.table, c.row_id, str(c.op), None, f"undo {_UNDONE[c.op]}", c.before, c.after)
               for c in inverse]
    return FixReport(batch_id, False, {"rows_restored": len(inverse)}, changes, undone=True)


_UNDONE = {Op.INSERT: "delete", Op.DELETE: "insert", Op.UPDATE: "update"}
