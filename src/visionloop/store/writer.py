"""BatchWriter: one transactional, idempotent batch of samples into the store.

    with BatchWriter(store, kind="import", source=str(path), format="voc") as batch:
        for sample, data in prepared:
            batch.add(sample, data)
    batch.counts  # images added / updated / unchanged, annotations, blobs

Everything lands at exit or nothing does: rows go through one SQL transaction,
new blobs are staged and published just before the commit. Samples arrive
already checked (sha256, upright width/height set); the writer trusts them.

Idempotence: an image is identified by (sha256, file_name). Re-adding it with
the same annotations, split and state changes nothing; with different ones it
replaces its annotations (an update, as when relabelled images come back).

An image blurred in place (`visionloop blur` where the project keeps no originals) is its blurred PNG, and its
meta says which bytes it was first imported as (`blurred_from`). Those bytes coming back (the same source file
imported again) are that image: the sample is mapped onto its blurred blob and `.png` name, so it counts as
unchanged (or relabels it), and the unblurred original is never stored again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from visionloop.core.classes import ClassMap
from visionloop.core.sample import LabelState, Sample
from visionloop.store import batches, blur_regions, bulk, codec
from visionloop.store.batches import BatchKind, Op, RowChange
from visionloop.store.blobs import Staging
from visionloop.store.project import Store
from visionloop.store.schema import AnnotationRow, Base, BlobRow, ClassRow, ImageRow

log = logging.getLogger(__name__)


def _key64(key: tuple[str, str, str | None]) -> int:
    """A 64-bit digest of an image key: ~70 bytes of memory per image instead of the whole tuple."""
    h = hashlib.blake2b(f"{key[0]}\x00{key[1]}\x00{key[2]}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little")


class BatchWriter:
    def __init__(
        self,
        store: Store,
        *,
        kind: str,
        source: str,
        format: str | None = None,
        split: str | None = None,
        classes: ClassMap | None = None,
        chunk: int = 1000,
        replace_labelled: bool = True,
    ) -> None:
        self.store = store
        #: False for pre-labels: an image already labelled (annotated, or labelled as empty) keeps its labels
        self.replace_labelled = replace_labelled
        self.kind = kind
        self.source = source
        self.format = format
        self.split = split
        self.source_classes = classes
        self.chunk = chunk
        self.counts: Counter[str] = Counter()
        self.summary: dict[str, Any] = {}
        self.batch_id: int | None = None
        self._pending: list[tuple[Sample, bytes | None, str | None]] = []
        self._session: Session | None = None
        self._staging: Staging | None = None
        self._class_ids: dict[str, int] = {}
        self._seen: set[int] = set()  # 64-bit digests of the (sha256, name, split) keys this batch has had
        self._new_classes: list[int] = []  # class rows this batch inserted (logged, for undo)
        self.keep = False  # record the batch even when it changed no row (its summary says something new)
        #: bytes first imported → (blob, name, split) of the images blurred in place from them
        self._blurred: dict[str, list[tuple[str, str, str | None]]] = {}

    # -- context ----------------------------------------------------------------------------
    def __enter__(self) -> BatchWriter:
        self._session = self.store.sessions()
        self._session.begin()
        self.batch_id = batches.open_batch(self._session.connection(), BatchKind(self.kind), source=self.source,
                                           format=self.format, split=self.split)
        self._staging = Staging(self.store.blobs)
        self._blurred = blur_regions.blurred_originals(self._session.connection())
        for cid, name in self._session.execute(select(ClassRow.id, ClassRow.name)):
            self._class_ids[name] = cid
        for info in list(self.source_classes or ()):  # keep the source's class order
            self._class_id(info.name)
        return self

    @property
    def changed(self) -> bool:
        c = self.counts
        return bool(c["images_added"] or c["images_updated"] or c["classes_added"] or self.keep)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._session is not None and self._staging is not None
        try:
            if exc_type is None:
                self._flush()
                if not self.changed:  # nothing new: leave no trace, not even an empty batch
                    self._session.rollback()
                    self._staging.discard()
                    self.batch_id = None
                    return
                assert self.batch_id is not None
                conn = self._session.connection()
                if self._new_classes:  # logged last: an undo deletes them after the annotations that use them
                    batches.log(conn, self.batch_id, [
                        RowChange("class", cid, Op.INSERT, None, row)
                        for cid, row in batches.rows(conn, "class", self._new_classes).items()])
                batches.set_summary(conn, self.batch_id, {**self.summary, **dict(self.counts)})
                self._staging.publish()
                self._session.commit()
            else:
                self._session.rollback()
                self._staging.discard()
        except BaseException:
            self._session.rollback()
            self._staging.discard()
            raise
        finally:
            self._session.close()

    # -- adding -----------------------------------------------------------------------------
    def add(self, sample: Sample, data: bytes | None, media_format: str | None = None) -> None:
        """Queue one checked sample; `data` are its image bytes (None if the blob is known)."""
        if sample.image.sha256 is None or sample.image.width is None or sample.image.height is None:
            raise ValueError(f"{sample.image.file_name}: sample not prepared (sha256 and size are required)")
        self._pending.append((sample, data, media_format))
        if len(self._pending) >= self.chunk:
            self._flush()

    def _class_id(self, name: str) -> int:
        cid = self._class_ids.get(name)
        if cid is not None:
            return cid
        s = self._session
        assert s is not None
        used = set(s.scalars(select(ClassRow.external_id)))
        info = self.source_classes.get(name) if self.source_classes is not None else None
        external = info.id if info is not None and info.id not in used else max(used, default=-1) + 1
        position = len(self._class_ids)
        row = ClassRow(
            name=name, external_id=external, position=position,
            color=info.color if info else None, supercategory=info.supercategory if info else None,
            keypoints=list(info.keypoints) if info else [], skeleton=[list(p) for p in info.skeleton] if info else [],
        )
        s.add(row)
        s.flush()
        self._class_ids[name] = row.id
        self._new_classes.append(row.id)
        self.counts["classes_added"] += 1
        return row.id

    def _flush(self) -> None:
        if not self._pending:
            return
        s, staging = self._session, self._staging
        assert s is not None and staging is not None
        pending, self._pending = self._pending, []
        targets = {t[0] for p in pending for t in self._blurred.get(p[0].image.sha256 or "", ())}
        shas = list({p[0].image.sha256 for p in pending} | targets)
        existing: dict[tuple[str, str, str | None], tuple[int, str, int]] = {}
        labelled: set[int] = set()
        labelled_shas: set[str] = set()  # bytes some image of the project has labels for
        known_shas: set[str] = set()  # bytes some image of the project has
        for row in s.execute(
                select(ImageRow.id, ImageRow.sha256, ImageRow.file_name, ImageRow.split, ImageRow.ann_digest,
                       ImageRow.batch_id, ImageRow.state).where(ImageRow.sha256.in_(shas))):
            existing[(row.sha256, row.file_name, row.split)] = (row.id, row.ann_digest, row.batch_id)
            if row.state != "missing":
                labelled.add(row.id)
                labelled_shas.add(row.sha256)
            known_shas.add(row.sha256)
        known_blobs = set(s.scalars(select(BlobRow.sha256).where(BlobRow.sha256.in_(shas))))
        if targets:
            pending = [self._unblurred(p, existing) for p in pending]

        new_blobs: dict[str, tuple[int, str | None]] = {}
        new_images: list[dict[str, Any]] = []
        new_image_anns: list[Sample] = []
        replaced: list[tuple[int, Sample, str]] = []
        for sample, data, media_format in pending:
            ref = sample.image
            sha = ref.sha256
            assert sha is not None
            if sha not in known_blobs:
                known_blobs.add(sha)
                if data is not None and staging.add(data, sha):
                    self.counts["blobs_added"] += 1
                    self.counts["bytes_added"] += len(data)
                new_blobs[sha] = (len(data) if data is not None else 0, media_format)
            digest = codec.annotations_digest(sample.annotations, sample.state.value)  # type: ignore[union-attr]
            key = (sha, ref.file_name, sample.split)
            seen = _key64(key)
            if seen in self._seen:  # the same entry twice in this very import: keep the first, every time
                self.counts["duplicate_entries_skipped"] += 1
                log.warning("%s: %s (split %s) is listed twice; keeping the first", self.source,
                            ref.file_name, sample.split)
                continue
            self._seen.add(seen)
            if key in existing:
                iid, old_digest, _batch = existing[key]
                if old_digest == digest:
                    self.counts["images_unchanged"] += 1
                elif iid in labelled and (not self.replace_labelled or sample.state is LabelState.MISSING):
                    # pre-labels, or an image nobody labelled (an `unlabelled` import), never replace labels
                    self.counts["images_kept_labelled"] += 1
                else:
                    replaced.append((iid, sample, digest))
                continue
            if sample.state is LabelState.MISSING and sha in known_shas:
                # an image nobody labelled whose bytes the project already holds (under another name or split):
                # not a second copy, and never in place of its labels
                self.counts["images_kept_labelled" if sha in labelled_shas else "images_already_present"] += 1
                continue
            existing[key] = (-1, digest, self.batch_id or -1)
            new_images.append(self._image_row(sample, digest))
            new_image_anns.append(sample)

        if new_blobs:
            bulk.insert_blobs(s.connection(), new_blobs)
        if new_images:
            ids = s.scalars(
                insert(ImageRow).returning(ImageRow.id, sort_by_parameter_order=True), new_images
            ).all()
            self.counts["images_added"] += len(ids)
            self._insert_annotations(zip(ids, new_image_anns, strict=True))
        if replaced:
            self._replace(replaced)
        if replaced:
            self._insert_annotations((iid, sample) for iid, sample, _ in replaced)

    def _unblurred(self, item: tuple[Sample, bytes | None, str | None],
                   existing: dict[tuple[str, str, str | None], Any]) -> tuple[Sample, bytes | None, str | None]:
        """A sample whose bytes are the discarded original of an image blurred in place, as that image: its
        blurred blob under its `.png` name (upright, PNG), no bytes to store. An image of the project that still
        has those very bytes under that name keeps them (it was not blurred)."""
        sample = item[0]
        ref = sample.image
        hits = self._blurred.get(ref.sha256 or "")
        if not hits or (ref.sha256, ref.file_name, sample.split) in existing:
            return item
        name = blur_regions.png_name(ref.file_name)
        sha = next((t[0] for t in hits if t[1:] == (name, sample.split)),
                   next((t[0] for t in hits if t[2] == sample.split), hits[0][0]))
        self.counts["originals_blurred_in_project"] += 1
        image = replace(ref, sha256=sha, file_name=name, format="png", orientation=1)
        return replace(sample, image=image), None, "png"

    def _replace(self, replaced: list[tuple[int, Sample, str]]) -> None:
        """New annotations for images already in the project (relabelled): the image rows and the annotations
        they had go to the change log, so that undoing this batch restores them exactly."""
        s = self._session
        assert s is not None and self.batch_id is not None
        conn = s.connection()
        ids = [iid for iid, _, _ in replaced]
        before = batches.rows(conn, "image", ids)
        old_anns = batches.rows_where(conn, "annotation", "image_id", ids)
        result = s.execute(delete(AnnotationRow).where(AnnotationRow.image_id.in_(ids)))
        self.counts["annotations_removed"] += getattr(result, "rowcount", 0) or 0
        for iid, sample, digest in replaced:
            row = self._image_row(sample, digest)
            for identity in ("sha256", "file_name", "split"):
                row.pop(identity)
            s.execute(update(ImageRow).where(ImageRow.id == iid).values(**row))
            self.counts["images_updated"] += 1
        after = batches.rows(conn, "image", ids)
        batches.log(conn, self.batch_id,
                    [RowChange("annotation", aid, Op.DELETE, row, None) for aid, row in old_anns.items()]
                    + [RowChange("image", iid, Op.UPDATE, before[iid], after[iid]) for iid in ids])

    def _image_row(self, sample: Sample, digest: str) -> dict[str, Any]:
        ref = sample.image
        return {
            "sha256": ref.sha256, "file_name": ref.file_name, "split": sample.split,
            "state": sample.state.value,  # type: ignore[union-attr]
            "width": ref.width, "height": ref.height, "orientation": ref.orientation, "format": ref.format,
            "gps_lat": ref.gps.latitude if ref.gps else None, "gps_lon": ref.gps.longitude if ref.gps else None,
            "gps_alt": ref.gps.altitude if ref.gps else None, "heading": ref.heading, "taken_at": ref.timestamp,
            "meta": dict(ref.metadata), "tags": list(ref.tags), "ann_digest": digest, "batch_id": self.batch_id,
        }

    def _insert_annotations(self, pairs: Any) -> None:
        s = self._session
        assert s is not None
        rows = []
        for iid, sample in pairs:
            for ann in sample.annotations:
                row = codec.annotation_row(ann)
                row.update(image_id=iid, class_id=None if ann.is_caption else self._class_id(ann.label),
                           batch_id=self.batch_id)
                rows.append(row)
        if rows:  # Core executemany on the session's connection: no ORM bookkeeping per row
            s.connection().execute(insert(Base.metadata.tables["annotation"]), rows)
            self.counts["annotations_added"] += len(rows)
