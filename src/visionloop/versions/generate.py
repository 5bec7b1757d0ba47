"""create_version: select, split, then generate every output over a process pool — resumably.

    info = create_version(store, "recipe.yaml", workers=2, progress=advance)

- Deterministic: outputs depend on (recipe, seed, image sha256, output index)
  only; workers finish in any order, results are stored in source order.
- Streaming: the main process hands out ranges of positions, keeps at most a
  few in flight per worker, and commits every `batch` outputs, so memory
  depends on the batch size; per image it holds only the selection's id and
  split (5 bytes, see selection.py).
- Resumable: each commit records how many source images are done. Running the
  same recipe on the same source again continues an unfinished version where it
  stopped (blobs already written are found by their hash) and yields the same
  version as an uninterrupted run. A finished identical version is returned as
  it is: generating twice is free.
- Workers build their own jobs: each opens the project database itself (read
  only) and reads the images and annotations of the positions it is given;
  they read source blobs and write output blobs themselves. What travels
  between processes is the selection's id and split columns (once per worker),
  ranges of positions, and compact rows back (hashes, sizes, annotation JSON),
  which the main process inserts with one executemany per commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import (
    Engine,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    select,
    type_coerce,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from visionloop.core.errors import VisionLoopError
from visionloop.core.sample import Annotation
from visionloop.runtime import Pool
from visionloop.store import bulk, codec
from visionloop.store import versions as store_versions
from visionloop.store.blobs import BlobStore
from visionloop.store.lookup import find_version_id
from visionloop.store.project import Store
from visionloop.store.schema import AnnotationRow, ImageRow, VersionItemRow, VersionRow
from visionloop.versions import redact
from visionloop.versions.blobio import BlobIO
from visionloop.versions.info import VersionInfo, info_from_row
from visionloop.versions.pipeline import TRAIN, Job, Pipeline, SourceImage, output_rng
from visionloop.versions.recipe import Recipe, load_recipe
from visionloop.versions.selection import SPLITS, Selection, classes_to_json, select_images, stem_key

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
MOSAIC_STREAM = 1


def create_version(
    store: Store,
    recipe: Recipe | str | Path | dict[str, Any],
    *,
    name: str | None = None,
    parent: str | int | None = None,
    workers: int = 2,
    batch: int = 256,
    progress: Progress | None = None,
    total: Callable[[int], None] | None = None,
) -> VersionInfo:
    """Generate a version (or finish an interrupted one, or return the identical finished one).

    `progress(n)` is called with the number of source images just committed;
    `total(n)` once with the number selected (for a progress bar).
    """
    recipe = load_recipe(recipe)
    sel = select_images(store, recipe)
    # images with blur regions enter the version blurred; the regions are part of what the version was made from
    blur_boxes = redact.boxes_for(store, sel.ids.tolist())
    # the fingerprint covers regions already blurred into the stored pixels too (what `check_blur_current` compares)
    blur_digest = redact.boxes_digest(redact.boxes_for(store, sel.ids.tolist(), baked=True))
    if blur_digest:
        sel.digest = hashlib.sha256(f"{sel.digest}\0blur\0{blur_digest}".encode()).hexdigest()
    if total is not None:
        total(len(sel))
    with store.session() as s, s.begin():
        row = s.scalars(select(VersionRow).where(VersionRow.recipe_hash == recipe.hash,
                                                 VersionRow.source_digest == sel.digest)
                        .order_by(VersionRow.id.desc())).first()
        if row is not None and row.status == "ready":
            log.info("version %s already holds this recipe applied to this source", row.name)
            parent_name = s.scalar(select(VersionRow.name).where(VersionRow.id == row.parent_id)) \
                if row.parent_id else None
            info = info_from_row(row, parent=parent_name)
            info.reused = True
            return info
        if row is None:
            row = _new_row(s, recipe, sel, name=name, parent=parent)
        elif name is not None and name != row.name:
            log.warning("resuming version %s (same recipe and source); the name %r is not used", row.name, name)
        version_id = row.id
        start = row.done
    if start:
        log.info("resuming version %s at image %d of %d", row.name, start, len(sel))
        if progress is not None:
            progress(start)
    redacted = redact.prepare_sources(store, blur_boxes) if start < len(sel) else {}
    _generate(store, version_id, recipe, sel, start=start, workers=workers, batch=batch, progress=progress,
              redacted=redacted)
    return _finish(store, version_id, sel, parent_id=row.parent_id, blur_digest=blur_digest)


def _new_row(s: Session, recipe: Recipe, sel: Selection, *, name: str | None, parent: str | int | None) -> VersionRow:
    if name is None:
        n = (s.scalar(select(func.count()).select_from(VersionRow)) or 0) + 1
        while s.scalar(select(VersionRow.id).where(VersionRow.name == f"v{n}")) is not None:
            n += 1
        name = f"v{n}"
    elif s.scalar(select(VersionRow.id).where(VersionRow.name == name)) is not None:
        raise VisionLoopError(f"a version named {name!r} already exists", hint="versions are immutable: pick a new name")
    parent_id = None
    if parent is not None:
        parent_id = find_version_id(s, parent)
    return store_versions.new_version(s, name=name, parent_id=parent_id, recipe=recipe.to_json(),
                                      recipe_hash=recipe.hash, seed=recipe.seed, source_batches=sel.batches,
                                      source_digest=sel.digest, classes=classes_to_json(sel.classes),
                                      counts={"selection": sel.counts}, total=len(sel))


# -- jobs, built where they run --------------------------------------------------------------
@dataclass
class Plan:
    """What building and storing jobs needs of the selection, sent once to each worker: after that only
    ranges of positions travel to the workers, and compact rows back."""

    version_id: int
    ids: np.ndarray  # position → image id
    splits: np.ndarray  # position → index into SPLITS
    label_of: dict[int, str | None]
    duplicate_stems: np.ndarray  # sorted stem keys of names that occur twice
    keypoint_names: dict[str, tuple[str, ...]]
    redacted: dict[int, str] = field(default_factory=dict)  # image id → blob of its blurred upright PNG


#: the generation counts a range adds up, in the order of its counts tuple
GENERATION_COUNTS = ("outputs", "reused", "encoded", "bytes_encoded", "annotations_dropped")
#: one range of positions done: (last position, item rows, new blobs (sha256, size, format), counts)
Result = tuple[int, list[tuple[Any, ...]], list[tuple[str, int, str]], tuple[int, ...]]

_IMAGES = (select(ImageRow.id, ImageRow.sha256, ImageRow.file_name, ImageRow.width, ImageRow.height,
                  ImageRow.orientation, ImageRow.format, ImageRow.split)
           .where(ImageRow.id.in_(bindparam("ids", expanding=True))))
_ANNOTATIONS = (select(AnnotationRow.image_id, AnnotationRow.class_id, AnnotationRow.kind, AnnotationRow.x0,
                       AnnotationRow.y0, AnnotationRow.x1, AnnotationRow.y1,
                       type_coerce(AnnotationRow.data, Text).label("data"),
                       type_coerce(AnnotationRow.attributes, Text).label("attributes"),
                       AnnotationRow.source, AnnotationRow.confidence, AnnotationRow.track_id, AnnotationRow.crowd,
                       AnnotationRow.bbox_declared, AnnotationRow.area_declared, AnnotationRow.area)
                .where(AnnotationRow.image_id.in_(bindparam("ids", expanding=True))).order_by(AnnotationRow.id))


def _json(text: str | dict[str, Any] | list[Any] | None) -> Any:
    """A JSON column's value from its text (orjson; the stdlib for what only it reads, such as NaN). SQLite gives
    the text; PostgreSQL's driver gives the value already decoded (psycopg decodes `json` whatever SQLAlchemy's
    type says)."""
    if isinstance(text, dict | list):
        return text if text != {} else None
    if not text or text == "{}":
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return orjson.loads(orjson.dumps(json.loads(text)))  # what a JSON round trip would give


class JobReader:
    """Jobs for a range of positions, read from the database by whoever runs them (a worker, or the main
    process when workers=0): two queries per range, a third for mosaic partners."""

    def __init__(self, engine: Engine, recipe: Recipe, plan: Plan) -> None:
        self.engine = engine
        self.plan = plan
        self.seed = recipe.seed
        aug = recipe.augment
        self.copies_train = aug.multiplier if aug is not None else 1
        self.keep_original = aug is not None and aug.keep_original
        self.mosaic = aug.mosaic.percent / 100 if aug is not None and aug.mosaic is not None else None
        self.train_positions = np.flatnonzero(plan.splits == 0) if self.mosaic is not None else None

    def jobs(self, lo: int, hi: int) -> list[Job]:
        plan = self.plan
        ids = plan.ids
        partner_of: dict[tuple[int, int], list[int]] = {}
        with self.engine.connect() as conn:
            images = self._sources(conn, ids[lo:hi].tolist())
            train = self.train_positions
            if self.mosaic is not None and train is not None and len(train):
                for pos in range(lo, hi):
                    if plan.splits[pos] != 0:
                        continue
                    src = images[int(ids[pos])]
                    for c in range(self.copies_train):
                        if self.keep_original and c == 0:
                            continue
                        rng = output_rng(self.seed, src.sha256, c, MOSAIC_STREAM)
                        if rng.random() < self.mosaic:
                            picks = train[rng.integers(0, len(train), 3)]
                            partner_of[(pos, c)] = ids[picks].tolist()
                wanted = sorted({i for v in partner_of.values() for i in v} - images.keys())
                if wanted:
                    images.update(self._sources(conn, wanted))
        jobs = []
        for pos in range(lo, hi):
            split = SPLITS[plan.splits[pos]]
            copies = self.copies_train if split == TRAIN else 1
            job = Job(position=pos, split=split, copies=copies, source=images[int(ids[pos])])
            for c in range(copies):
                partners = partner_of.get((pos, c))
                if partners is not None:
                    job.partners[c] = [images[i] for i in partners]
            jobs.append(job)
        return jobs

    def _sources(self, conn: Connection, ids: Sequence[int]) -> dict[int, SourceImage]:
        label_of = self.plan.label_of
        dup = self.plan.duplicate_stems
        out: dict[int, SourceImage] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start:start + 500])
            anns: dict[int, list[Annotation]] = {i: [] for i in part}
            for row in conn.execute(_ANNOTATIONS, {"ids": part}):
                label = label_of.get(row[1]) if row[1] is not None else ""  # "": a caption (no class), kept
                if label is not None:
                    anns[row[0]].append(_annotation(label, row))
            for iid, sha, name, width, height, orientation, fmt, split in conn.execute(_IMAGES, {"ids": part}):
                if len(dup) and _contains(dup, stem_key(name)):
                    # a.jpg and a.png would both become a.jpg; (bytes, name, split) is what is unique
                    stem, ext = posixpath.splitext(name)
                    name = f"{stem}_{sha[:8]}{ext.replace('.', '_')}{'_' + split if split else ''}{ext}"
                blurred = self.plan.redacted.get(iid)
                if blurred is not None:  # its blur regions applied, upright: the version never sees the original
                    sha, orientation, fmt, name = blurred, 1, "png", redact.png_name(name)
                out[iid] = SourceImage(image_id=iid, sha256=sha, name=name, width=width, height=height,
                                       orientation=orientation, media_format=fmt, annotations=tuple(anns[iid]))
        return out


def _annotation(label: str, row: Any) -> Annotation:
    """An _ANNOTATIONS row as the version sees it (its JSON columns come as text, decoded here)."""
    return codec.annotation_from(row, label, data=_json(row.data) or {}, attributes=_json(row.attributes) or {})


def _contains(sorted_keys: np.ndarray, key: int) -> bool:
    i = int(np.searchsorted(sorted_keys, np.uint64(key)))
    return i < len(sorted_keys) and int(sorted_keys[i]) == key


class Runner:
    """Runs ranges of positions: reads their jobs, renders and writes their outputs, returns compact rows."""

    def __init__(self, recipe: Recipe, plan: Plan, blobs: BlobIO, engine: Engine) -> None:
        self.reader = JobReader(engine, recipe, plan)
        self.pipeline = Pipeline(recipe, keypoint_names=plan.keypoint_names)
        self.blobs = blobs
        self.version_id = plan.version_id

    def run(self, lo: int, hi: int) -> Result:
        vid = self.version_id
        rows: list[tuple[Any, ...]] = []
        new: list[tuple[str, int, str]] = []
        reused = size = dropped = 0
        for job in self.reader.jobs(lo, hi):
            for o in self.pipeline.run(job, self.blobs):
                rows.append((vid, o.position, o.out_index, o.split, o.file_name, o.sha256, o.width, o.height,
                             o.orientation, o.media_format or None, o.source_image_id, o.n_annotations,
                             o.annotations, o.meta))
                if o.reused:
                    reused += 1
                else:
                    new.append((o.sha256, o.size, o.media_format))
                size += o.size
                dropped += o.dropped
        self.blobs.flush()  # every blob is on disk before the main process records it
        return hi - 1, rows, new, (len(rows), reused, len(rows) - reused, size, dropped)


def reader_engine(db_url: str) -> Engine:
    """A worker's own engine on the project database, for reading (SQLite in WAL mode lets readers run
    beside the main process's writes)."""
    engine = create_engine(db_url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _read_only(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA query_only = ON")

    return engine


def _shareable(engine: Engine) -> bool:
    """Whether another process can open this database (not an in-memory SQLite)."""
    url = engine.url
    return not (url.get_backend_name() == "sqlite"
                and (url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"))


# -- the workers ------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(recipe_json: dict[str, Any], blob_url: str, db_url: str, plan: Plan) -> None:
    """Runs once in each worker process (after the runtime's own set-up: SIGINT ignored, one OpenCV thread)."""
    _WORKER["runner"] = Runner(Recipe.model_validate(recipe_json), plan, BlobIO(BlobStore(blob_url)),
                               reader_engine(db_url))


def _run_range(bounds: tuple[int, int]) -> Result:
    runner: Runner = _WORKER["runner"]
    return runner.run(*bounds)


# -- generation -------------------------------------------------------------------------------
def _generate(store: Store, version_id: int, recipe: Recipe, sel: Selection, *, start: int, workers: int,
              batch: int, progress: Progress | None, redacted: dict[int, str] | None = None) -> None:
    n = len(sel)
    if start >= n:
        return
    batch = max(1, batch)
    plan = Plan(version_id=version_id, ids=sel.ids, splits=sel.splits, label_of=sel.label_of,
                duplicate_stems=sel.duplicate_stems, keypoint_names=sel.keypoint_names, redacted=redacted or {})
    if workers > 0 and not _shareable(store.engine):
        log.info("an in-memory database cannot be shared with worker processes: generating in this one")
        workers = 0
    pool: Pool | None = None
    runner: Runner | None = None
    threads = 0
    if workers > 0:
        pool = Pool(workers, initializer=_init_worker, name="version generation",
                    initargs=(recipe.to_json(), store.blobs.url, store.db_url, plan))
    else:
        import cv2

        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        runner = Runner(recipe, plan, BlobIO(store.blobs), store.engine)
    chunk = max(1, min(32, batch // max(1, 2 * workers)))
    window = max(2, 3 * workers)
    ranges = ((lo, min(n, lo + chunk)) for lo in range(start, n, chunk))
    writer = _Writer(store, version_id, start=start, every=batch)
    try:
        if pool is not None:
            results: Iterator[Result] = pool.imap(_run_range, ranges, window=window)
        else:
            assert runner is not None
            results = (runner.run(lo, hi) for lo, hi in ranges)
        for result in results:
            writer.take(result, progress)
        writer.commit(progress)
    except BaseException:
        if pool is not None:
            pool.terminate()
            pool = None
        raise
    finally:
        if pool is not None:
            pool.close()
        if runner is not None:
            import cv2

            cv2.setNumThreads(threads)
        writer.close()


class _Writer:
    """Stores outputs in source order and commits every `batch` outputs, with the resume point."""

    def __init__(self, store: Store, version_id: int, *, start: int, every: int) -> None:
        self.version_id = version_id
        self.conn = store.engine.connect()
        with self.conn.begin():
            counts = self.conn.scalar(select(VersionRow.counts).where(VersionRow.id == version_id))
        self.base: dict[str, Any] = dict(counts or {})
        self.generation: Counter[str] = Counter(dict.fromkeys(GENERATION_COUNTS, 0))
        self.generation.update(self.base.get("generation", {}))  # what a resumed run had done
        self.rows: list[tuple[Any, ...]] = []
        self.blobs: dict[str, tuple[int, str]] = {}
        self.done = start
        self.committed = start
        self.images = 0
        self.every = every

    def take(self, result: Result, progress: Progress | None) -> None:
        last, rows, blobs, counts = result
        self.rows += rows
        for sha, size, fmt in blobs:
            self.blobs[sha] = (size, fmt)
        for key, n in zip(GENERATION_COUNTS, counts, strict=True):
            self.generation[key] += n
        self.images += last + 1 - self.done
        self.done = last + 1
        if len(self.rows) >= self.every:
            self.commit(progress)

    def commit(self, progress: Progress | None) -> None:
        if self.done == self.committed:
            return
        conn = self.conn
        with conn.begin():
            if self.blobs:
                bulk.insert_blobs(conn, self.blobs)
            if self.rows:
                store_versions.insert_items(conn, self.rows)
            store_versions.set_progress(conn, self.version_id, done=self.done,
                                        counts={**self.base, "generation": dict(self.generation)})
        n_images = self.images
        self.committed = self.done
        self.rows, self.blobs, self.images = [], {}, 0
        if progress is not None and n_images:
            progress(n_images)

    def close(self) -> None:
        self.conn.close()


# -- finishing --------------------------------------------------------------------------------
def item_digest_line(split: str, file_name: str, sha256: str, width: int, height: int, orientation: int,
                     annotations: str) -> bytes:
    return f"{split}\0{file_name}\0{sha256}\0{width}\0{height}\0{orientation}\0{annotations}\n".encode()


def _finish(store: Store, version_id: int, sel: Selection, *, parent_id: int | None,
            blur_digest: str = "") -> VersionInfo:
    digest = hashlib.sha256()
    images: Counter[str] = Counter()
    annotations: Counter[str] = Counter()
    by_class: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    null = 0
    with store.session() as s:
        q = (select(VersionItemRow.split, VersionItemRow.file_name, VersionItemRow.sha256, VersionItemRow.width,
                    VersionItemRow.height, VersionItemRow.orientation, VersionItemRow.annotations)
             .where(VersionItemRow.version_id == version_id)
             .order_by(VersionItemRow.position, VersionItemRow.out_index).execution_options(yield_per=5000))
        for split, file_name, sha, w, h, o, anns in s.execute(q):
            digest.update(item_digest_line(split, file_name, sha, w, h, o, anns))
            images[split] += 1
            parsed = orjson.loads(anns)
            annotations[split] += len(parsed)
            null += not parsed
            for a in parsed:
                by_class[a["label"]] += 1
                by_kind[a["kind"]] += 1
    with store.session() as s, s.begin():
        row = s.get(VersionRow, version_id)
        assert row is not None
        counts = dict(row.counts or {})
        counts.update({
            "images": sum(images.values()), "annotations": sum(annotations.values()), "null_images": null,
            "by_split": {k: {"images": images[k], "annotations": annotations[k]} for k in sorted(images)},
            "by_class": {c.name: by_class.get(c.name, 0) for c in sel.classes},
            "by_kind": dict(sorted(by_kind.items())),
        })
        if blur_digest:
            counts["blur_regions"] = blur_digest
        store_versions.mark_ready(s, row, counts=counts, content_digest=digest.hexdigest(), batches=sel.batches)
        parent = s.scalar(select(VersionRow.name).where(VersionRow.id == parent_id)) if parent_id else None
        info = info_from_row(row, parent=parent)
    log.info("version %s ready: %s", info.name, {k: counts[k] for k in ("images", "annotations")})
    return info

