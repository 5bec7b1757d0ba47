"""Malformed annotations, found with vectorised numpy over the loaded columns (and SQL joins).

Each detector returns index arrays into `Annotations` so that `fix` repairs
exactly what the report counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from visionloop.health.load import Annotations, Classes, Images, class_key
from visionloop.health.result import Finding, Severity
from visionloop.store.project import Store
from visionloop.store.schema import AnnotationRow, ClassRow, ImageRow

#: two annotations of the same class on the same image are duplicates above this IoU
DUPLICATE_IOU = 0.95
#: kinds `fix` clips to the image when they reach outside it (a polyline is cut at the edges: fix.py)
CLIPPABLE = ("box", "polygon", "polyline")
EXAMPLES = 10


def _finite_box(anns: Annotations) -> np.ndarray:
    return np.isfinite(anns.box).all(axis=1)


def outside_image(images: Images, anns: Annotations) -> tuple[np.ndarray, np.ndarray]:
    """(partly outside, entirely outside) masks over annotations that have a box."""
    b = anns.box
    W, H = images.width[anns.image], images.height[anns.image]
    ok = _finite_box(anns) & (anns.kind != "mask")  # a mask is the image's size by construction
    with np.errstate(invalid="ignore"):
        partly = ok & ((b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > W) | (b[:, 3] > H))
        entirely = ok & ((b[:, 0] >= W) | (b[:, 1] >= H) | (b[:, 2] <= 0) | (b[:, 3] <= 0))
    return partly & ~entirely, entirely


def zero_area(anns: Annotations) -> np.ndarray:
    """Boxes with zero or negative width or height."""
    b = anns.box
    with np.errstate(invalid="ignore"):
        return (anns.kind == "box") & _finite_box(anns) & (((b[:, 2] - b[:, 0]) <= 0) | ((b[:, 3] - b[:, 1]) <= 0))


def degenerate(anns: Annotations) -> np.ndarray:
    """Polygons that enclose nothing (collinear or repeated points) and empty masks."""
    b = anns.box
    with np.errstate(invalid="ignore"):
        flat = ((b[:, 2] - b[:, 0]) <= 0) | ((b[:, 3] - b[:, 1]) <= 0) | ~(anns.area > 0)
    return np.isin(anns.kind, ("polygon", "mask")) & flat


def class_groups(classes: Classes, per_class: dict[int, int]) -> dict[int, int]:
    """class row id -> the class row id it should be merged into (only for case/space variants).

    The spelling kept is the most used one (ties: the first in class order).
    """
    by_key: dict[str, list[int]] = {}
    for cid, name in zip(classes.id.tolist(), classes.name, strict=True):
        by_key.setdefault(class_key(name), []).append(cid)
    merge: dict[int, int] = {}
    for ids in by_key.values():
        if len(ids) > 1:
            keep = max(ids, key=lambda c: (per_class.get(c, 0), -ids.index(c)))
            merge.update({c: keep for c in ids if c != keep})
    return merge


def canonical_class(anns: Annotations, merge: dict[int, int]) -> np.ndarray:
    if not merge:
        return anns.class_id
    src = np.fromiter(merge.keys(), np.int64)
    dst = np.fromiter(merge.values(), np.int64)
    order = np.argsort(src)
    src, dst = src[order], dst[order]
    pos = np.minimum(np.searchsorted(src, anns.class_id), len(src) - 1)
    return np.where(src[pos] == anns.class_id, dst[pos], anns.class_id)


def duplicate_pairs(anns: Annotations, group: np.ndarray, *, iou: float = DUPLICATE_IOU,
                    usable: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(keep, drop) annotation positions of box pairs on one image, same `group`, IoU > `iou`.

    Sorted by (image, group, x0), a box can only match a later one whose x0 is
    within (1 - iou) of its width (IoU > t needs the intersection to be wider
    than t times each box), so the scan over offsets k = 1, 2, ... keeps
    shrinking and stops: no quadratic loop, no Python loop over annotations.
    Of each pair the annotation with the higher id is the one to drop.
    """
    sel = (anns.kind == "box") & _finite_box(anns)
    if usable is not None:
        sel &= usable
    idx = np.flatnonzero(sel)
    if len(idx) < 2:
        e = np.zeros(0, np.int64)
        return e, e
    b = anns.box[idx]
    order = np.lexsort((anns.id[idx], b[:, 0], group[idx], anns.image[idx]))
    s, b = idx[order], b[order]
    img, grp = anns.image[s], group[s]
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    area = np.clip(w, 0, None) * np.clip(h, 0, None)
    active = np.arange(len(s) - 1)
    keep, drop = [], []
    k = 1
    while active.size:
        j = active + k
        inside = j < len(s)
        active, j = active[inside], j[inside]
        near = (img[active] == img[j]) & (grp[active] == grp[j]) & (b[j, 0] - b[active, 0] <= (1 - iou) * w[active])
        active, j = active[near], j[near]
        iw = np.clip(np.minimum(b[active, 2], b[j, 2]) - np.maximum(b[active, 0], b[j, 0]), 0, None)
        ih = np.clip(np.minimum(b[active, 3], b[j, 3]) - np.maximum(b[active, 1], b[j, 1]), 0, None)
        inter = iw * ih
        union = area[active] + area[j] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            hit = (union > 0) & (inter / union > iou)
        a_pos, b_pos = s[active[hit]], s[j[hit]]
        first = anns.id[a_pos] < anns.id[b_pos]
        keep.append(np.where(first, a_pos, b_pos))
        drop.append(np.where(first, b_pos, a_pos))
        k += 1
    keep_a, drop_a = np.concatenate(keep), np.concatenate(drop)
    return keep_a, drop_a


def first_images(anns: Annotations, limit: int = EXAMPLES) -> dict[int, np.ndarray]:
    """class id -> positions of the first `limit` images carrying it (`stats.Tally.first_images` keeps the
    same chunk by chunk)."""
    out = {}
    for cid in np.unique(anns.class_id).tolist():
        out[cid] = np.unique(anns.image[anns.class_id == cid])[:limit]
    return out


def name_images(found: list[Finding], images: Images, first: Annotations | dict[int, np.ndarray],
                classes: Classes, limit: int = EXAMPLES) -> None:
    """Fill each finding's `images` with the file names its examples name (keys image/file_name/file/a/b),
    or, for a class-level finding (examples name a class), with the first images carrying that class
    (`first`: class id -> image positions, as `first_images` makes them from annotations)."""
    if isinstance(first, Annotations):
        first = first_images(first, limit)
    cid_of = {n: int(c) for c, n in zip(classes.id.tolist(), classes.name, strict=True)}
    for f in found:
        if f.images:
            continue
        names: list[str] = []
        for e in f.examples:
            for k in ("image", "file_name", "file", "a", "b"):
                v = e.get(k)
                if isinstance(v, str) and v not in names:
                    names.append(v)
        if not names:
            for e in f.examples:
                cid = cid_of.get(e.get("class")) if isinstance(e.get("class"), str) else None
                if cid is None or not first:  # no class named, or no annotations at all
                    continue
                pos = first.get(cid, np.zeros(0, np.int64))[:limit]
                e_names = [str(n) for n in images.file_name[pos]]
                if f.check == "class_name_variants":
                    e["images"] = e_names
                names += [n for n in e_names if n not in names]
        f.images = names[:limit]


def unknown_class_images(store: Store, limit: int = EXAMPLES) -> list[str]:
    """File names of the first images having an annotation whose class row does not exist."""
    with store.engine.connect() as c:
        return list(c.scalars(select(ImageRow.file_name).where(ImageRow.id.in_(
            select(AnnotationRow.image_id).join(ClassRow, ClassRow.id == AnnotationRow.class_id, isouter=True)
            .where(ClassRow.id.is_(None), AnnotationRow.class_id.is_not(None)))).order_by(ImageRow.id).limit(limit)))


def unknown_class_count(store: Store) -> int:
    """Annotations whose class row does not exist (impossible through the importer, which the store's
    foreign key enforces on SQLite; possible in a database edited by other tools). A caption's class_id is
    NULL: it has no class, which is not an unknown one."""
    with store.engine.connect() as c:
        return c.scalar(select(func.count()).select_from(AnnotationRow)
                        .join(ClassRow, ClassRow.id == AnnotationRow.class_id, isouter=True)
                        .where(ClassRow.id.is_(None), AnnotationRow.class_id.is_not(None))) or 0


def _examples(images: Images, anns: Annotations, classes: Classes, pos: np.ndarray, **extra: Any
              ) -> list[dict[str, Any]]:
    pos = pos[:EXAMPLES]
    names: Any = classes.names_of(anns.class_id[pos]) if len(pos) else []
    return [{"image": images.file_name[anns.image[p]], "annotation": int(anns.id[p]), "class": str(n),
             "box": [round(float(v), 2) for v in anns.box[p]],
             "image_size": [int(images.width[anns.image[p]]), int(images.height[anns.image[p]])]}
            for p, n in zip(pos, names, strict=True)]


@dataclass
class Malformed:
    """What the malformed-annotation checks found, as positions into `Annotations`."""

    partly_outside: np.ndarray
    entirely_outside: np.ndarray
    zero_area: np.ndarray
    degenerate: np.ndarray
    duplicate_keep: np.ndarray
    duplicate_drop: np.ndarray
    merge: dict[int, int]


def detect(images: Images, anns: Annotations, classes: Classes, per_class: dict[int, int]) -> Malformed:
    partly, entirely = outside_image(images, anns)
    merge = class_groups(classes, per_class)
    zero = zero_area(anns)
    # duplicates are looked for among the boxes that survive the other fixes, as clipped boxes
    clipped = Annotations(anns.id, anns.image, anns.class_id, anns.kind, clip_boxes(images, anns), anns.area)
    keep, drop = duplicate_pairs(clipped, canonical_class(anns, merge), usable=~(zero | entirely))
    return Malformed(np.flatnonzero(partly), np.flatnonzero(entirely), np.flatnonzero(zero),
                     np.flatnonzero(degenerate(anns)), keep, drop, merge)


class Flagged:
    """`detect` run chunk by chunk (each chunk holding whole images, as `load.iter_annotations` yields them):
    keeps only the flagged annotations, so memory is one chunk plus what was found.

    `per_class` decides which spelling of a class-name variant is kept (annotations per class id; only
    needed when class names differ by case or spaces). `result()` gives the flagged rows in id order and
    `Malformed` positions into them: `findings()` over them says what it says over every annotation.
    """

    def __init__(self, images: Images, classes: Classes, per_class: dict[int, int]) -> None:
        self.images, self.classes, self.per_class = images, classes, per_class
        self.merge = class_groups(classes, per_class)
        self._rows: list[Annotations] = []
        self._ids: dict[str, list[np.ndarray]] = {k: [] for k in ("partly_outside", "entirely_outside",
                                                                  "zero_area", "degenerate", "duplicate_keep",
                                                                  "duplicate_drop")}

    def add(self, anns: Annotations) -> None:
        m = detect(self.images, anns, self.classes, self.per_class)
        parts = {k: getattr(m, k) for k in self._ids}
        sel = np.unique(np.concatenate(list(parts.values())))
        if not len(sel):
            return
        self._rows.append(Annotations(anns.id[sel], anns.image[sel], anns.class_id[sel], anns.kind[sel],
                                      anns.box[sel], anns.area[sel]))
        for k, pos in parts.items():
            self._ids[k].append(anns.id[pos])

    def result(self) -> tuple[Annotations, Malformed]:
        cols = [np.concatenate([getattr(r, f) for r in self._rows]) if self._rows else None
                for f in ("id", "image", "class_id", "kind", "box", "area")]
        if cols[0] is None:
            sub = Annotations(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                              np.zeros(0, object), np.zeros((0, 4)), np.zeros(0))
        else:
            order = np.argsort(cols[0])
            sub = Annotations(*(c[order] for c in cols))  # type: ignore[index]

        def pos(k: str, sort: bool = True) -> np.ndarray:
            ids = np.concatenate(self._ids[k]) if self._ids[k] else np.zeros(0, np.int64)
            p = np.searchsorted(sub.id, ids).astype(np.int64)
            return np.sort(p) if sort else p

        # pairs keep the order detect gave them, chunk after chunk (the pairs of one image stay in order)
        return sub, Malformed(pos("partly_outside"), pos("entirely_outside"), pos("zero_area"), pos("degenerate"),
                              pos("duplicate_keep", False), pos("duplicate_drop", False), self.merge)


def clip_boxes(images: Images, anns: Annotations) -> np.ndarray:
    """Every box clipped to its image (what `fix` writes for boxes partly outside)."""
    W, H = images.width[anns.image], images.height[anns.image]
    b = anns.box.copy()
    b[:, 0] = np.clip(b[:, 0], 0, W)
    b[:, 2] = np.clip(b[:, 2], 0, W)
    b[:, 1] = np.clip(b[:, 1], 0, H)
    b[:, 3] = np.clip(b[:, 3], 0, H)
    return b


def findings(store: Store | None, images: Images, anns: Annotations, classes: Classes, m: Malformed,
             per_class: dict[int, int], declared: dict[int, tuple[int, int]]) -> list[Finding]:
    out: list[Finding] = []
    ex = lambda pos, **kw: _examples(images, anns, classes, pos, **kw)  # noqa: E731
    if len(m.partly_outside):
        n = len(m.partly_outside)
        out.append(Finding("out_of_bounds", Severity.ERROR, n,
                           f"{n} annotations reach outside their image; `visionloop fix` clips them to the image",
                           fixable=True, examples=ex(m.partly_outside)))
    if len(m.entirely_outside):
        n = len(m.entirely_outside)
        out.append(Finding("outside_image", Severity.ERROR, n,
                           f"{n} annotations lie entirely outside their image; `visionloop fix` removes them",
                           fixable=True, examples=ex(m.entirely_outside)))
    if len(m.zero_area):
        n = len(m.zero_area)
        out.append(Finding("zero_area", Severity.ERROR, n,
                           f"{n} boxes have zero or negative width or height; `visionloop fix` removes them",
                           fixable=True, examples=ex(m.zero_area)))
    if len(m.degenerate):
        n = len(m.degenerate)
        out.append(Finding("degenerate_polygons", Severity.ERROR, n,
                           f"{n} polygons or masks enclose no area (repeated or collinear points); relabel or "
                           "delete them", examples=ex(m.degenerate)))
    drop = np.unique(m.duplicate_drop)
    if len(drop):
        first = {int(d): int(k) for k, d in zip(m.duplicate_keep.tolist(), m.duplicate_drop.tolist(), strict=True)}
        exs = ex(drop)
        for e, p in zip(exs, drop[:EXAMPLES].tolist(), strict=False):
            e["duplicate_of"] = int(anns.id[first[p]])
        out.append(Finding("duplicate_annotations", Severity.ERROR, len(drop),
                           f"{len(drop)} annotations repeat another of the same class on the same image "
                           f"(IoU > {DUPLICATE_IOU}); `visionloop fix` removes the repeats", fixable=True,
                           examples=exs))
    if m.merge:
        names = dict(zip(classes.id.tolist(), classes.name, strict=True))
        exs = [{"class": names[s], "into": names[d], "annotations": per_class.get(s, 0)} for s, d in m.merge.items()]
        listing = ", ".join(f"{e['class']!r} → {e['into']!r}" for e in exs[:5])
        out.append(Finding("class_name_variants", Severity.ERROR, len(m.merge),
                           f"{len(m.merge)} class names differ from another only by case or spaces ({listing}); "
                           "`visionloop fix` merges them into the most used spelling", fixable=True, examples=exs))
    unknown = unknown_class_count(store) if store is not None else 0
    if unknown:
        out.append(Finding("unknown_classes", Severity.ERROR, unknown,
                           f"{unknown} annotations point to a class the project does not have; re-import them",
                           examples=[{"image": n} for n in unknown_class_images(store)]))
    unused = [n for c, n in zip(classes.id.tolist(), classes.name, strict=True)
              if per_class.get(c, 0) == 0 and c not in m.merge]
    if unused:
        out.append(Finding("unused_classes", Severity.INFO, len(unused),
                           f"{len(unused)} classes have no annotations: {', '.join(unused[:10])}",
                           examples=[{"class": n} for n in unused[:EXAMPLES]]))
    if declared:
        pos = images.index_of(np.fromiter(declared.keys(), np.int64))
        exs = [{"image": images.file_name[p], "declared": list(declared[int(images.id[p])]),
                "pixels": [int(images.width[p]), int(images.height[p])]} for p in pos[:EXAMPLES]]
        out.append(Finding("size_mismatch", Severity.ERROR, len(declared),
                           f"{len(declared)} images are not the size their annotation file declares; their boxes "
                           "may have been drawn on another version of the image: check them (not fixed "
                           "automatically)", examples=exs))
    missing = int((images.state == "missing").sum())
    if missing:
        out.append(Finding("missing_labels", Severity.WARNING, missing,
                           f"{missing} images were never labelled (no annotation file): label them, or they "
                           "teach the model that nothing is there once marked as empty",
                           examples=[{"image": f} for f in images.file_name[images.state == "missing"][:EXAMPLES]]))
    return out
