"""Reading versions: list, show, stream their samples, export them through the format registry."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from visionloop import formats
from visionloop.core.classes import ClassMap
from visionloop.core.errors import VisionLoopError
from visionloop.core.sample import ImageRef, Sample
from visionloop.formats.base import ImageMode, WriteReport
from visionloop.formats.output import atomic_output
from visionloop.store import itemcodec
from visionloop.store.blobs import fetched_ahead
from visionloop.store.lookup import find_version_id
from visionloop.store.project import Store
from visionloop.store.schema import VersionItemRow, VersionRow
from visionloop.versions import redact
from visionloop.versions.info import VersionInfo, info_from_row
from visionloop.versions.selection import classes_from_json

log = logging.getLogger(__name__)


def list_versions(store: Store) -> list[VersionInfo]:
    with store.session() as s:
        rows = s.scalars(select(VersionRow).order_by(VersionRow.id)).all()
        names = {r.id: r.name for r in rows}
        return [info_from_row(r, parent=names.get(r.parent_id) if r.parent_id else None) for r in rows]


def show_version(store: Store, version: str | int) -> VersionInfo:
    """One version by name, id or `latest`."""
    with store.session() as s:
        row = s.get(VersionRow, find_version_id(s, version))
        assert row is not None
        parent = s.scalar(select(VersionRow.name).where(VersionRow.id == row.parent_id)) if row.parent_id else None
        return info_from_row(row, parent=parent)


def _ready(store: Store, version: str | int) -> VersionInfo:
    info = show_version(store, version)
    if info.status != "ready":
        raise VisionLoopError(f"version {info.name} is not finished ({info.done} of {info.total} images generated)",
                              hint="run `version create` with the same recipe again to finish it")
    return info


def version_classes(store: Store, version: str | int) -> ClassMap:
    return classes_from_json(show_version(store, version).classes)


def version_samples(store: Store, version: str | int, *, split: str | None = None,
                    chunk: int = 1000) -> Iterator[Sample]:
    """The version's images as Samples (ImageRef.path is the blob), streamed in version order."""
    info = _ready(store, version)
    with store.session() as s:
        q = (select(VersionItemRow.split, VersionItemRow.file_name, VersionItemRow.sha256, VersionItemRow.width,
                    VersionItemRow.height, VersionItemRow.orientation, VersionItemRow.media_format,
                    VersionItemRow.annotations)
             .where(VersionItemRow.version_id == info.id)
             .order_by(VersionItemRow.position, VersionItemRow.out_index).execution_options(yield_per=chunk))
        if split is not None:
            q = q.where(VersionItemRow.split == split)
        for sp, name, sha, w, h, o, fmt, anns in s.execute(q):
            ref = ImageRef(file_name=name, width=w, height=h, path=store.blobs.location(sha), sha256=sha,
                           format=fmt, orientation=o)
            yield Sample(ref, itemcodec.loads(anns), split=sp)


def check_blur_current(store: Store, info: VersionInfo) -> None:
    """Refuse a version whose source images' blur regions changed since it was generated (a face added or a
    region rejected later): its images would not match what the project says must be blurred."""
    with store.session() as s:
        ids = s.scalars(select(VersionItemRow.source_image_id).distinct()
                        .where(VersionItemRow.version_id == info.id)).all()
    now = redact.boxes_digest(redact.boxes_for(store, ids, baked=True))
    if now != (info.counts or {}).get("blur_regions", ""):
        raise VisionLoopError(f"the blur regions of version {info.name}'s images changed after it was generated; "
                              "its images are not blurred as the project now says", path=store.root,
                              hint="create a new version with the same recipe (`visionloop version create`)")


def export_version(store: Store, version: str | int, out: str | Path, *, format: str, zip: bool = False,
                   split: str | None = None, images: ImageMode = ImageMode.COPY,
                   overwrite: bool = False) -> WriteReport:
    """Write a version in any registered format, into a new folder or (zip) one .zip file."""
    formats.get(format)
    info = _ready(store, version)
    check_blur_current(store, info)
    classes = classes_from_json(info.classes)
    out = Path(out)
    if zip and out.suffix.lower() != ".zip":
        out = out.with_name(out.name + ".zip")
    with atomic_output(out, format=format, overwrite=overwrite, protect=[store.root, store.blobs.url],
                       zip=zip) as tmp, \
            fetched_ahead(store.blobs, version_samples(store, info.id, split=split)) as samples:
        report = formats.write(samples, tmp, format=format, classes=classes, images=images)
    report.path = str(out)
    return report


