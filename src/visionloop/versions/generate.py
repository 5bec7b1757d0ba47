"""create_version: select, split, then generate every output over a process pool — resumably.

    info = create_version(store, "recipe.yaml", workers=2, progress=advance)

- Deterministic: outputs depend on (recipe, seed, image sha256, output index)
  only; workers finish in any order, results are stored in source order.
- Streaming: the main process reads `batch` images at a time from the store,
  keeps at most a few small tasks in flight per worker, and commits every
  `batch` images, so memory depends on the batch size, never on the dataset.
- Resumable: each commit records how many source images are done. Running the
  same recipe on the same source again continues an unfinished version where it
  stopped (blobs already written are found by their hash) and yields the same
  version as an uninterrupted run. A finished identical version is returned as
  it is: generating twice is free.
- Workers read source blobs and write output blobs themselves; what travels
  between processes is hashes, sizes and annotation JSON.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import posixpath
import signal
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

import visionloop
from visionloop.core.errors import VisionLoopError
from visionloop.store.blobs import BlobStore
from visionloop.store.lookup import find_version_id
from visionloop.store.project import Store
from visionloop.store.schema import AnnotationRow, BlobRow, ImageRow, LineageRow, VersionItemRow, VersionRow
from visionloop.versions.blobio import BlobIO
from visionloop.versions.info import VersionInfo, info_from_row
from visionloop.versions.pipeline import TRAIN, Job, Output, Pipeline, SourceImage, output_rng
from visionloop.versions.recipe import Recipe, load_recipe
from visionloop.versions.selection import Selection, classes_to_json, select_images, stem_key

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
    _generate(store, version_id, recipe, sel, start=start, workers=workers, batch=batch, progress=progress)
    return _finish(store, version_id, sel, parent_id=row.parent_id)


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
    row = VersionRow(name=name, parent_id=parent_id, status="generating", recipe=recipe.to_json(),
                     recipe_hash=recipe.hash, seed=recipe.seed, source_batches=sel.batches, source_digest=sel.digest,
                     classes=classes_to_json(sel.classes), counts={"selection": sel.counts}, total=len(sel), done=0,
                     code_version=visionloop.__version__)
    s.add(row)
    s.flush()
    return row


# -- the workers ------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(recipe_json: dict[str, Any], blob_url: str, keypoint_names: dict[str, tuple[str, ...]]) -> None:
    """Runs once in each worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides what an interrupt means
    import cv2

    cv2.setNumThreads(1)
    _WORKER["pipeline"] = Pipeline(Recipe.model_validate(recipe_json), keypoint_names=keypoint_names)
    _WORKER["blobs"] = BlobIO(BlobStore(blob_url))


def _run_jobs(jobs: list[Job]) -> list[Output]:
    pipeline: Pipeline = _WORKER["pipeline"]
    blobs: BlobIO = _WORKER["blobs"]
    out = [o for job in jobs for o in pipeline.run(job, blobs)]
    blobs.flush()  # every blob is on disk before the main process records it
    return out


class _Done:
    """A finished 'future' for the in-process path."""

    def __init__(self, value: list[Output]) -> None:
        self.value = value

    def result(self) -> list[Output]:
        return self.value


def pool_context() -> Any:
    """fork while this process runs one thread (fast, and scripts need no `if __name__ == "__main__"`);
    forkserver when other threads run (forking them could deadlock); spawn where neither exists."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


# -- generation -------------------------------------------------------------------------------
def _generate(store: Store, version_id: int, recipe: Recipe, sel: Selection, *, start: int, workers: int,
              batch: int, progress: Progress | None) -> None:
    n = len(sel)
    if start >= n:
        return
    batch = max(1, batch)
    executor: ProcessPoolExecutor | None = None
    if workers > 0:
        executor = ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=_init_worker,
                                       initargs=(recipe.to_json(), store.blobs.url, sel.keypoint_names))
        pipeline = None
    else:
        import cv2

        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        pipeline = Pipeline(recipe, keypoint_names=sel.keypoint_names)
        blobio = BlobIO(store.blobs)
    chunk = max(1, min(32, batch // max(1, 2 * workers)))
    in_flight: deque[tuple[int, Future[list[Output]] | _Done]] = deque()
    writer = _Writer(store, version_id, start=start, every=batch)
    train_positions = np.flatnonzero(sel.splits == 0)
    try:
        for lo in range(start, n, batch):
            hi = min(n, lo + batch)
            jobs = _jobs(store, recipe, sel, lo, hi, train_positions)
            for i in range(0, len(jobs), chunk):
                part = jobs[i:i + chunk]
                while len(in_flight) >= max(2, 3 * workers):
                    writer.take(*_pop(in_flight), progress)
                if executor is not None:
                    in_flight.append((part[-1].position, executor.submit(_run_jobs, part)))
                else:
                    assert pipeline is not None
                    done = [o for job in part for o in pipeline.run(job, blobio)]
                    blobio.flush()
                    in_flight.append((part[-1].position, _Done(done)))
            # no drain here: the workers keep going while the next batch's jobs are read, and the window
            # above bounds what is in flight (draining at each batch left a core idle at every boundary)
        while in_flight:
            writer.take(*_pop(in_flight), progress)
        writer.commit(progress)
    except BaseException:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
            executor = None
        raise
    finally:
        if executor is not None:
            executor.shutdown()
        if pipeline is not None:
            cv2.setNumThreads(threads)
        writer.close()


def _pop(in_flight: deque[tuple[int, Future[list[Output]] | _Done]]) -> tuple[int, list[Output]]:
    last, fut = in_flight.popleft()
    return last, fut.result()


class _Writer:
    """Stores outputs in source order and commits every `batch` images, with the resume point."""

    def __init__(self, store: Store, version_id: int, *, start: int, every: int) -> None:
        self.store = store
        self.version_id = version_id
        self.session = store.sessions()
        self.items: list[dict[str, Any]] = []
        self.blobs: dict[str, tuple[int, str]] = {}
        self.done = start
        self.committed = start
        self.images = 0
        self.counts: Counter[str] = Counter()
        self.every = every

    def take(self, last_position: int, outputs: list[Output], progress: Progress | None) -> None:
        for o in outputs:
            self.items.append({
                "version_id": self.version_id, "position": o.position, "out_index": o.out_index, "split": o.split,
                "file_name": o.file_name, "sha256": o.sha256, "width": o.width, "height": o.height,
                "orientation": o.orientation, "media_format": o.media_format or None,
                "source_image_id": o.source_image_id, "n_annotations": o.n_annotations,
                "annotations": o.annotations, "meta": o.meta,
            })
            if not o.reused:
                self.blobs[o.sha256] = (o.size, o.media_format)
            self.counts["outputs"] += 1
            self.counts["reused" if o.reused else "encoded"] += 1
            self.counts["bytes_encoded"] += o.size
            self.counts["annotations_dropped"] += o.dropped
        self.images += last_position + 1 - self.done
        self.done = last_position + 1
        if len(self.items) >= self.every:
            self.commit(progress)

    def commit(self, progress: Progress | None) -> None:
        if self.done == self.committed:
            return
        s = self.session
        with s.begin():
            if self.blobs:
                known = set(s.scalars(select(BlobRow.sha256).where(BlobRow.sha256.in_(list(self.blobs)))))
                new = [{"sha256": k, "size": v[0], "media_format": v[1]} for k, v in self.blobs.items() if k not in known]
                if new:
                    s.execute(insert(BlobRow), new)
            if self.items:
                s.connection().execute(insert(VersionItemRow.__table__), self.items)  # type: ignore[arg-type]
            row = s.get(VersionRow, self.version_id)
            assert row is not None
            counts = dict(row.counts or {})
            gen = Counter(counts.get("generation", {}))
            gen.update(self.counts)
            counts["generation"] = dict(gen)
            s.execute(update(VersionRow).where(VersionRow.id == self.version_id).values(done=self.done, counts=counts))
        n_images = self.images
        self.committed = self.done
        self.items, self.blobs, self.counts, self.images = [], {}, Counter(), 0
        s.expunge_all()
        if progress is not None and n_images:
            progress(n_images)

    def close(self) -> None:
        self.session.close()


def _jobs(store: Store, recipe: Recipe, sel: Selection, lo: int, hi: int, train_positions: np.ndarray) -> list[Job]:
    """Jobs for source positions [lo, hi): one query for the images, one for their annotations."""
    ids = [int(i) for i in sel.ids[lo:hi]]
    aug = recipe.augment
    copies_train = aug.multiplier if aug is not None else 1
    partner_of: dict[tuple[int, int], list[int]] = {}
    with store.session() as s:
        images = _sources(s, sel, ids)
        if aug is not None and aug.mosaic is not None and len(train_positions):
            for pos in range(lo, hi):
                if sel.splits[pos] != 0:
                    continue
                src = images[int(sel.ids[pos])]
                for c in range(copies_train):
                    if aug.keep_original and c == 0:
                        continue
                    rng = output_rng(recipe.seed, src.sha256, c, MOSAIC_STREAM)
                    if rng.random() < aug.mosaic.percent / 100:
                        picks = train_positions[rng.integers(0, len(train_positions), 3)]
                        partner_of[(pos, c)] = [int(sel.ids[p]) for p in picks]
            wanted = sorted({i for v in partner_of.values() for i in v} - set(images))
            if wanted:
                images.update(_sources(s, sel, wanted))
    jobs = []
    for pos in range(lo, hi):
        split = sel.split_of(pos)
        copies = copies_train if split == TRAIN else 1
        job = Job(position=pos, split=split, copies=copies, source=images[int(sel.ids[pos])])
        for c in range(copies):
            if (pos, c) in partner_of:
                job.partners[c] = [images[i] for i in partner_of[(pos, c)]]
        jobs.append(job)
    return jobs


def _sources(s: Session, sel: Selection, ids: Sequence[int]) -> dict[int, SourceImage]:
    out: dict[int, SourceImage] = {}
    anns: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        part = list(ids[start:start + 500])
        for a in s.execute(select(AnnotationRow.image_id, AnnotationRow.class_id, AnnotationRow.kind,
                                  AnnotationRow.x0, AnnotationRow.y0, AnnotationRow.x1, AnnotationRow.y1,
                                  AnnotationRow.data, AnnotationRow.attributes, AnnotationRow.source,
                                  AnnotationRow.confidence, AnnotationRow.track_id, AnnotationRow.crowd,
                                  AnnotationRow.bbox_declared, AnnotationRow.area_declared, AnnotationRow.area)
                           .where(AnnotationRow.image_id.in_(part)).order_by(AnnotationRow.id)):
            label = sel.label_of.get(a.class_id)
            if label is None:
                continue
            d: dict[str, Any] = {"label": label, "kind": a.kind}
            if a.x0 is not None:
                d["box"] = [a.x0, a.y0, a.x1, a.y1]
            if a.data:
                d["data"] = a.data
            if a.attributes:
                d["attributes"] = a.attributes
            if a.source != "imported":
                d["source"] = a.source
            if a.confidence is not None:
                d["confidence"] = a.confidence
            if a.track_id is not None:
                d["track_id"] = a.track_id
            if a.crowd:
                d["crowd"] = True
            if a.bbox_declared:
                d["bbox"] = [a.x0, a.y0, a.x1, a.y1]
            if a.area_declared:
                d["area"] = a.area
            anns[a.image_id].append(d)
        for im in s.execute(select(ImageRow.id, ImageRow.sha256, ImageRow.file_name, ImageRow.width, ImageRow.height,
                                   ImageRow.orientation, ImageRow.format, ImageRow.split)
                            .where(ImageRow.id.in_(part))):
            name = im.file_name
            if stem_key(name) in sel.duplicate_stems:
                # a.jpg and a.png would both become a.jpg; (bytes, name, split) is what is unique
                stem, ext = posixpath.splitext(name)
                name = f"{stem}_{im.sha256[:8]}{ext.replace('.', '_')}{'_' + im.split if im.split else ''}{ext}"
            out[im.id] = SourceImage(image_id=im.id, sha256=im.sha256, name=name, width=im.width, height=im.height,
                                     orientation=im.orientation, media_format=im.format,
                                     annotations=orjson.dumps(anns[im.id]).decode())
    return out


# -- finishing --------------------------------------------------------------------------------
def item_digest_line(split: str, file_name: str, sha256: str, width: int, height: int, orientation: int,
                     annotations: str) -> bytes:
    return f"{split}\0{file_name}\0{sha256}\0{width}\0{height}\0{orientation}\0{annotations}\n".encode()


def _finish(store: Store, version_id: int, sel: Selection, *, parent_id: int | None) -> VersionInfo:
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
        row.counts = counts
        row.content_digest = digest.hexdigest()
        row.status = "ready"
        row.finished_at = datetime.now(UTC)
        code = visionloop.__version__
        child = str(version_id)
        lineage = [LineageRow(child_kind="version", child_id=child, parent_kind="batch", parent_id=str(b),
                              params={}, code_version=code) for b in sel.batches]
        lineage.append(LineageRow(child_kind="version", child_id=child, parent_kind="recipe",
                                  parent_id=row.recipe_hash, params={"recipe": row.recipe,
                                                                     "source_digest": row.source_digest},
                                  code_version=code))
        if parent_id is not None:
            lineage.append(LineageRow(child_kind="version", child_id=child, parent_kind="version",
                                      parent_id=str(parent_id), params={}, code_version=code))
        s.add_all(lineage)
        s.flush()
        parent = s.scalar(select(VersionRow.name).where(VersionRow.id == parent_id)) if parent_id else None
        info = info_from_row(row, parent=parent)
    log.info("version %s ready: %s", info.name, {k: counts[k] for k in ("images", "annotations")})
    return info

