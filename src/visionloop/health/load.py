"""The store's image and annotation columns as numpy arrays: one SQL query each, no ORM objects.

Everything the health check computes is SQL aggregates plus vectorised numpy
over these arrays; nothing loops over annotations in Python.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, Select, String, cast, func, select

from visionloop.core.geometry import kind
from visionloop.store.project import Store
from visionloop.store.schema import AnnotationRow, ClassRow, ImageRow

UNASSIGNED = "unassigned"  # how a split of None is named in reports


def class_key(name: str) -> str:
    """What two class names that differ only by case or spaces have in common."""
    return "".join(name.split()).casefold()


@dataclass
class Images:
    """One entry per image row, in id order."""

    id: np.ndarray  # int64
    sha256: np.ndarray  # object (str)
    file_name: np.ndarray  # object (str)
    split: np.ndarray  # object (str, UNASSIGNED for None)
    state: np.ndarray  # object (str)
    width: np.ndarray  # float64
    height: np.ndarray  # float64
    orientation: np.ndarray  # int64
    ann_digest: np.ndarray  # object (str): what the annotations say, as the importer hashed them
    batch: np.ndarray  # int64: the import batch that added the image (0 for a version's items)

    def __len__(self) -> int:
        return len(self.id)

    def index_of(self, image_ids: np.ndarray) -> np.ndarray:
        """Positions of image ids in this table (ids must be present)."""
        return np.searchsorted(self.id, image_ids)


@dataclass
class Annotations:
    """One entry per annotation row, in id order; `image` indexes into `Images`."""

    id: np.ndarray  # int64
    image: np.ndarray  # int64 position in Images
    class_id: np.ndarray  # int64 (the class row id)
    kind: np.ndarray  # object (str)
    box: np.ndarray  # (n, 4) float64 x0, y0, x1, y1; NaN where the kind has no box
    area: np.ndarray  # float64, NaN when unknown

    def __len__(self) -> int:
        return len(self.id)


@dataclass
class Classes:
    id: np.ndarray  # int64 class row ids, by position
    name: list[str]

    def names_of(self, class_ids: np.ndarray) -> np.ndarray:
        lookup = dict(zip(self.id.tolist(), self.name, strict=True))
        uniq, inv = np.unique(class_ids, return_inverse=True)
        return np.array([lookup.get(int(c), f"<unknown class {int(c)}>") for c in uniq], dtype=object)[inv]


def load_images(store: Store, *, split: str | None = None) -> Images:
    q = select(ImageRow.id, ImageRow.sha256, ImageRow.file_name, ImageRow.split, ImageRow.state,
               ImageRow.width, ImageRow.height, ImageRow.orientation, ImageRow.ann_digest,
               ImageRow.batch_id).order_by(ImageRow.id)
    if split is not None:
        q = q.where(ImageRow.split.is_(None) if split == UNASSIGNED else ImageRow.split == split)
    with store.engine.connect() as c:
        rows = c.execute(q).all()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 10
    del rows
    names: dict[str, str] = {}
    return Images(
        id=np.asarray(cols[0], dtype=np.int64),
        sha256=np.asarray(cols[1], dtype=object),
        file_name=np.asarray(cols[2], dtype=object),
        # one str object per split and state name, shared by the rows (not one each)
        split=np.asarray([names.setdefault(s, s) if s is not None else UNASSIGNED for s in cols[3]], dtype=object),
        state=np.asarray([names.setdefault(s, s) for s in cols[4]], dtype=object),
        width=np.asarray(cols[5], dtype=np.float64),
        height=np.asarray(cols[6], dtype=np.float64),
        orientation=np.asarray(cols[7], dtype=np.int64),
        ann_digest=np.asarray(cols[8], dtype=object),
        batch=np.asarray(cols[9], dtype=np.int64),
    )


#: the annotations the health checks look at: those with a class (captions have none and are counted apart,
#: `caption_counts`; they describe the whole image and no check about boxes or classes concerns them)
CLASSED = AnnotationRow.class_id.is_not(None)

#: rows fetched from the database at a time: the annotation columns grow by the dataset, the rows in
#: flight (Python objects, about 50 times the size of their numpy columns) by this only
CHUNK = 10_000


def load_annotations(store: Store, images: Images) -> Annotations:
    """Annotations of the given images (all of them when `images` is the whole project).

    The rows are streamed in chunks of CHUNK into preallocated numpy columns, so memory
    is the columns (about 70 bytes an annotation) plus one chunk of rows, not the rows.
    """
    q = select(AnnotationRow.id, AnnotationRow.image_id, AnnotationRow.class_id, AnnotationRow.kind,
               AnnotationRow.x0, AnnotationRow.y0, AnnotationRow.x1, AnnotationRow.y1,
               AnnotationRow.area).where(CLASSED).order_by(AnnotationRow.id)
    kinds: dict[str, str] = {}  # one str object per kind, shared by every row
    with store.engine.connect() as c:
        n = c.scalar(select(func.count()).select_from(AnnotationRow).where(CLASSED)) or 0
        ids = np.empty(n, np.int64)
        pos = np.empty(n, np.int64)
        class_id = np.empty(n, np.int64)
        kind_col = np.empty(n, object)
        box = np.empty((n, 4), np.float64)
        area = np.empty(n, np.float64)
        keep = np.zeros(n, bool)
        k = 0
        for rows in c.execution_options(yield_per=CHUNK).execute(q).partitions():
            m = min(len(rows), n - k)  # rows added since the count (another process) are left for next time
            rows = rows[:m]
            cols = list(zip(*rows, strict=True))
            image_ids = np.asarray(cols[1], dtype=np.int64)
            p = np.searchsorted(images.id, image_ids)
            pc = np.minimum(p, max(len(images) - 1, 0))
            keep[k:k + m] = (p < len(images)) & (images.id[pc] == image_ids) if len(images) else False
            ids[k:k + m] = cols[0]
            pos[k:k + m] = p
            class_id[k:k + m] = cols[2]
            kind_col[k:k + m] = [kinds.setdefault(x, x) for x in cols[3]]
            box[k:k + m] = np.array(cols[4:8], dtype=np.float64).T  # None -> nan
            area[k:k + m] = np.array(cols[8], dtype=np.float64)
            k += m
            del rows, cols
            if k == n:
                break
    keep[k:] = False
    if keep.all():
        return Annotations(ids, pos, class_id, kind_col, box, area)
    return Annotations(ids[keep], pos[keep], class_id[keep], kind_col[keep], box[keep], area[keep])


def _row_batches(c: Connection, q: Select, size: int) -> Iterator[Sequence[Sequence[Any]]]:
    """The rows of `q`, `size` at a time: plain tuples from the driver's cursor on SQLite (no Row objects,
    half the time), SQLAlchemy's streamed partitions elsewhere."""
    if c.dialect.name == "sqlite":
        cur = c.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(str(q.compile(dialect=c.dialect)))
            while rows := cur.fetchmany(size):
                yield rows
        finally:
            cur.close()
        return
    yield from c.execution_options(yield_per=size).execute(q).partitions()


def iter_annotations(store: Store, images: Images, *, chunk: int | None = None) -> Iterator[Annotations]:
    """The annotations of the given images in chunks of about `chunk` rows, each holding every annotation
    of its images (a chunk never splits an image), in image order and by id within an image.

    Memory is one chunk, whatever the number of annotations: what needs every annotation at once
    (quantiles, the duplicate search within an image...) is computed chunk by chunk and merged.
    """
    chunk = chunk or CHUNK
    q = select(AnnotationRow.id, AnnotationRow.image_id, AnnotationRow.class_id, AnnotationRow.kind,
               AnnotationRow.x0, AnnotationRow.y0, AnnotationRow.x1, AnnotationRow.y1,
               AnnotationRow.area).where(CLASSED).order_by(AnnotationRow.image_id, AnnotationRow.id)
    kinds: dict[str, str] = {}  # one str object per kind, shared by every row
    carry: list[np.ndarray] | None = None  # the last image's rows of the previous batch (it may go on)
    with store.engine.connect() as c:
        for rows in _row_batches(c, q, chunk):
            cols = list(zip(*rows, strict=True))
            image_ids = np.asarray(cols[1], dtype=np.int64)
            part = [np.asarray(cols[0], dtype=np.int64), image_ids, np.asarray(cols[2], dtype=np.int64),
                    np.asarray([kinds.setdefault(x, x) for x in cols[3]], dtype=object),
                    np.array(cols[4:8], dtype=np.float64).T.reshape(-1, 4),  # None -> nan
                    np.array(cols[8], dtype=np.float64)]
            del rows, cols
            if carry is not None:
                part = [np.concatenate([a, b]) for a, b in zip(carry, part, strict=True)]
            cut = int(np.searchsorted(part[1], part[1][-1]))  # where the last image's rows begin
            carry = [a[cut:] for a in part]
            if cut:
                yield _select(images, [a[:cut] for a in part])
        if carry is not None and len(carry[0]):
            yield _select(images, carry)


def _select(images: Images, cols: list[np.ndarray]) -> Annotations:
    """Columns (id, image id, ...) as Annotations of `images`, dropping rows of other images."""
    ids, image_ids, class_id, kinds, box, area = cols
    p = np.searchsorted(images.id, image_ids)
    pc = np.minimum(p, max(len(images) - 1, 0))
    keep = (p < len(images)) & (images.id[pc] == image_ids) if len(images) else np.zeros(len(ids), bool)
    if keep.all():
        return Annotations(ids, p, class_id, kinds, box, area)
    return Annotations(ids[keep], p[keep], class_id[keep], kinds[keep], box[keep], area[keep])


def chunks_of(anns: Annotations, *, chunk: int | None = None) -> Iterator[Annotations]:
    """In-memory annotations (a version's) cut into chunks at image boundaries, as `iter_annotations` yields
    them: sorted by image position, then id."""
    chunk = chunk or CHUNK
    if not len(anns):
        return
    order = np.lexsort((anns.id, anns.image))
    img = anns.image[order]
    start = 0
    while start < len(order):
        end = min(start + chunk, len(order))
        if end < len(order):
            end = int(np.searchsorted(img, img[end - 1], side="right"))
        sel = order[start:end]
        yield Annotations(anns.id[sel], anns.image[sel], anns.class_id[sel], anns.kind[sel], anns.box[sel],
                          anns.area[sel])
        start = end


def image_boxes(store: Store, image_ids: list[int]) -> dict[int, tuple[int, list[tuple[float, float, float, float,
                                                                                  str]]]]:
    """image id -> (upright height, boxes (x0, y0, x1, y1, class name) of its annotations that have one)."""
    out: dict[int, tuple[int, list[tuple[float, float, float, float, str]]]] = {}
    if not image_ids:
        return out
    with store.engine.connect() as c:
        for iid, h in c.execute(select(ImageRow.id, ImageRow.height).where(ImageRow.id.in_(image_ids))):
            out[int(iid)] = (int(h), [])
        q = (select(AnnotationRow.image_id, AnnotationRow.x0, AnnotationRow.y0, AnnotationRow.x1, AnnotationRow.y1,
                    ClassRow.name).join(ClassRow, ClassRow.id == AnnotationRow.class_id, isouter=True)
             .where(AnnotationRow.image_id.in_(image_ids), AnnotationRow.x0.is_not(None)).order_by(AnnotationRow.id))
        for iid, x0, y0, x1, y1, name in c.execute(q):
            out[int(iid)][1].append((float(x0), float(y0), float(x1), float(y1), name or "?"))
    return out


def annotation_count(store: Store) -> int:
    with store.engine.connect() as c:
        return c.scalar(select(func.count()).select_from(AnnotationRow)) or 0


def class_counts(store: Store, *, split: str | None = None) -> dict[int, int]:
    """class id -> annotations, in the whole project or on the images of one split (an SQL group-by)."""
    q = select(AnnotationRow.class_id, func.count()).where(CLASSED).group_by(AnnotationRow.class_id)
    if split is not None:
        q = q.join(ImageRow, ImageRow.id == AnnotationRow.image_id).where(
            ImageRow.split.is_(None) if split == UNASSIGNED else ImageRow.split == split)
    with store.engine.connect() as c:
        return {int(cid): int(n) for cid, n in c.execute(q)}


def caption_counts(store: Store) -> dict[str, int]:
    """split (UNASSIGNED for None) -> caption annotations on its images."""
    q = (select(ImageRow.split, func.count()).select_from(AnnotationRow)
         .join(ImageRow, ImageRow.id == AnnotationRow.image_id)
         .where(AnnotationRow.class_id.is_(None)).group_by(ImageRow.split))
    with store.engine.connect() as c:
        return {split or UNASSIGNED: int(n) for split, n in c.execute(q)}


def load_classes(store: Store) -> Classes:
    with store.engine.connect() as c:
        rows = c.execute(select(ClassRow.id, ClassRow.name).order_by(ClassRow.position, ClassRow.id)).all()
    return Classes(np.asarray([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows])


def declared_sizes(store: Store, images: Images) -> dict[int, tuple[int, int]]:
    """image id -> the size its annotation file declared, where that disagreed with the pixels."""
    q = (select(ImageRow.id, ImageRow.meta["declared_size"])
         .where(cast(ImageRow.meta, String).contains("declared_size")))
    wanted = set(images.id.tolist())
    with store.engine.connect() as c:
        return {int(i): (int(v[0]), int(v[1])) for i, v in c.execute(q)
                if isinstance(v, list) and len(v) == 2 and i in wanted}


def load_version(store: Store, version: str | int) -> tuple[Images, Annotations, Classes, str, dict[str, int]]:
    """A version's generated images, annotations and classes in the same columns as the project's.

    Item ids stand in for image ids; a version's own classes get ids 1..n in its
    order. A version stores each image's annotations as one JSON text, so this
    decodes them image by image (the project tables need no such loop).
    Returns the version's name and its caption annotations per split (they have no class) too.
    """
    from visionloop.store import itemcodec
    from visionloop.store.lookup import find_version_id
    from visionloop.store.schema import VersionItemRow, VersionRow

    with store.session() as s:
        row = s.get(VersionRow, find_version_id(s, version))
        assert row is not None
        name, class_names, version_id = row.name, [c["name"] for c in row.classes or []], row.id
    q = (select(VersionItemRow.id, VersionItemRow.sha256, VersionItemRow.file_name, VersionItemRow.split,
                VersionItemRow.n_annotations, VersionItemRow.width, VersionItemRow.height,
                VersionItemRow.orientation, VersionItemRow.annotations)
         .where(VersionItemRow.version_id == version_id).order_by(VersionItemRow.id))
    class_id = {n: i + 1 for i, n in enumerate(class_names)}
    img: list[list[Any]] = [[] for _ in range(9)]  # the item columns (the annotation text as its digest)
    ids, pos, cls, kinds, boxes, areas = [], [], [], [], [], []  # one chunk of annotations
    parts: list[list[np.ndarray]] = []  # the chunks as numpy columns: no item text nor Python object kept
    names: dict[str, str] = {}
    captions: dict[str, int] = {}  # split -> caption annotations

    def flush() -> None:
        parts.append([np.asarray(ids, np.int64), np.asarray(pos, np.int64), np.asarray(cls, np.int64),
                      np.asarray(kinds, dtype=object), np.asarray(boxes, np.float64).reshape(-1, 4),
                      np.asarray(areas, np.float64)])
        for x in (ids, pos, cls, kinds, boxes, areas):
            x.clear()

    n = 0
    with store.engine.connect() as c:
        for rows in c.execution_options(yield_per=CHUNK).execute(q).partitions():
            for item in rows:
                k = len(img[0])
                split = item[3] or UNASSIGNED
                for col, v in zip(img, (item[0], item[1], item[2], names.setdefault(split, split),
                                        "annotated" if item[4] else "null", item[5], item[6], item[7],
                                        hashlib.sha256(item[8].encode()).hexdigest()), strict=True):
                    col.append(v)
                for ann in itemcodec.loads(item[8]):
                    if ann.is_caption:  # no class: not among the annotations the checks look at (CLASSED)
                        captions[split] = captions.get(split, 0) + 1
                        continue
                    if ann.label not in class_id:
                        class_id[ann.label] = len(class_id) + 1
                        class_names.append(ann.label)
                    box = ann.box
                    n += 1
                    ids.append(n)
                    pos.append(k)
                    cls.append(class_id[ann.label])
                    kd = kind(ann.geometry)
                    kinds.append(names.setdefault(kd, kd))
                    boxes.append((box.x0, box.y0, box.x1, box.y1) if box is not None else (np.nan,) * 4)
                    areas.append(ann.area if ann.area is not None else ann.geometry.area)
                if len(ids) >= CHUNK:
                    flush()
            del rows
    flush()
    images = Images(
        id=np.asarray(img[0], dtype=np.int64),
        sha256=np.asarray(img[1], dtype=object),
        file_name=np.asarray(img[2], dtype=object),
        split=np.asarray(img[3], dtype=object),
        state=np.asarray(img[4], dtype=object),
        width=np.asarray(img[5], dtype=np.float64),
        height=np.asarray(img[6], dtype=np.float64),
        orientation=np.asarray(img[7], dtype=np.int64),
        ann_digest=np.asarray(img[8], dtype=object),
        batch=np.zeros(len(img[0]), np.int64),
    )
    anns = Annotations(*(np.concatenate([p[i] for p in parts]) for i in range(6)))
    classes = Classes(np.arange(1, len(class_names) + 1, dtype=np.int64), class_names)
    return images, anns, classes, name, captions


def select_split(images: Images, anns: Annotations, split: str) -> tuple[Images, Annotations]:
    """The images of one split and their annotations, positions renumbered."""
    keep = images.split == split
    new_pos = np.cumsum(keep) - 1
    sub = Images(**{f: getattr(images, f)[keep] for f in images.__dataclass_fields__})
    a_keep = keep[anns.image] if len(anns) else np.zeros(0, bool)
    sub_anns = Annotations(anns.id[a_keep], new_pos[anns.image[a_keep]], anns.class_id[a_keep], anns.kind[a_keep],
                           anns.box[a_keep], anns.area[a_keep])
    return sub, sub_anns
