"""Import a dataset in any registered format into the project, as one batch, all or nothing."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from visionloop import formats
from visionloop.core.errors import ImageError
from visionloop.core.sample import Sample
from visionloop.formats.base import allow_outside_root as allow_outside_root_
from visionloop.ingest.checks import check_sample
from visionloop.ingest.images import ImageInfo, probe, read_bytes
from visionloop.ingest.orient import reorient_annotation
from visionloop.store.project import Store
from visionloop.store.writer import BatchWriter

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass
class ImportReport:
    batch_id: int | None  # None when the import changed nothing
    source: str
    format: str
    images_seen: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # images_added, annotations_added, blobs_added, ...
    fixes: dict[str, int] = field(default_factory=dict)  # clipped, zero_area, exif_reoriented, ...
    classes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch_id, "source": self.source, "format": self.format,
                "images_seen": self.images_seen, **self.counts, "fixes": self.fixes, "classes": self.classes}


def import_dataset(
    store: Store,
    path: str | Path,
    *,
    format: str | None = None,
    split: str | None = None,
    fix: bool = True,
    progress: Progress | None = None,
    allow_outside_root: bool = False,
) -> ImportReport:
    """Read `path`, check every image and annotation, and add them to the store as one batch.

    Any error (a malformed file, a missing or broken image, an impossible
    annotation) raises and leaves the store exactly as it was. An image the
    annotations place outside the dataset's folder (`../x.jpg`, an absolute path)
    is an error unless `allow_outside_root`.
    """
    with allow_outside_root_(allow_outside_root):
        return _import(store, Path(path), format=format, split=split, fix=fix, progress=progress)


def _import(store: Store, path: Path, *, format: str | None, split: str | None, fix: bool,
            progress: Progress | None) -> ImportReport:
    path = Path(path)
    name = format or formats.detect(path)
    reader = formats.read(path, format=name, split=split)
    fixes: Counter[str] = Counter()
    seen = 0
    with BatchWriter(store, kind="import", source=str(path.resolve()), format=name, split=split,
                     classes=reader.classes) as batch:
        for sample in reader:
            if sample.image.path is None:
                raise ImageError("the format gave no image file for this entry", path=path,
                                 where=sample.image.file_name)
            data = read_bytes(sample.image.path, listed_in=path)
            info = probe(data, path=sample.image.path)
            prepared = check_sample(_prepare(sample, info, fixes, source=str(path), fix=fix), fix=fix,
                                    counts=fixes, source=str(path))
            batch.add(prepared, data, info.format)
            seen += 1
            if progress:
                progress(1)
        batch.summary["fixes"] = dict(fixes)
    report = ImportReport(batch.batch_id, str(path), name, seen, dict(batch.counts), dict(fixes),
                          reader.classes.names)
    log.info("imported %s: %s", path, report.to_json())
    return report


def _prepare(sample: Sample, info: ImageInfo, fixes: Counter[str], *, source: str, fix: bool = True) -> Sample:
    """Set hash and upright size; move annotations drawn on the raw grid into the upright image.

    A declared size that disagrees with the pixels (and is not explained by EXIF
    orientation) is an error; with `fix=False` it is kept for the health check
    instead: the image row gets the real pixel size and `meta["declared_size"]`
    = [w, h] as the annotation file said, counted as `size_mismatch`.
    """
    ref = sample.image
    declared = ref.size
    anns = sample.annotations
    metadata = ref.metadata
    if declared is not None and declared != (info.width, info.height):
        if info.orientation in (5, 6, 7, 8) and declared == (info.raw_width, info.raw_height):
            anns = tuple(reorient_annotation(a, info.orientation, info.raw_width, info.raw_height) for a in anns)
            fixes["exif_reoriented"] += len(anns)
        elif not fix:
            fixes["size_mismatch"] += 1
            metadata = {**metadata, "declared_size": [declared[0], declared[1]]}
            log.warning("%s: %s declares %d×%d but the image is %d×%d; kept (no fix)", source, ref.file_name,
                        declared[0], declared[1], info.width, info.height)
        else:
            raise ImageError(
                f"declared size {declared[0]}×{declared[1]} disagrees with the image, which is "
                f"{info.width}×{info.height}" + (" upright" if info.orientation != 1 else ""),
                path=source, where=ref.file_name, hint="fix the size in the annotation file or use the right image")
    new_ref = replace(ref, sha256=info.sha256, width=info.width, height=info.height, format=info.format,
                      orientation=info.orientation, gps=ref.gps or info.gps,
                      heading=ref.heading if ref.heading is not None else info.heading,
                      timestamp=ref.timestamp or info.timestamp, metadata=metadata)
    return replace(sample, image=new_ref, annotations=anns)
