"""Import a dataset in any registered format into the project, as one batch.

Policy (README "Import policy"): by default everything usable lands and what cannot be used is
quarantined; `strict=True` refuses the whole import on the first problem and writes nothing.

- Fixed (counted in `fixes`): boxes and polygons partly outside the image are clipped, zero-area ones
  dropped; polylines are cut at the image's edges (one polyline per part inside, `polyline_split`). With `fix=False` they are kept as they are for `visionloop health` (counted as found).
- Noted: a JPEG or PNG cut short that still decodes lands with `meta["truncated_image"]` (a health finding).
- Quarantined: an entry whose image is missing, empty or undecodable, or whose annotations cannot be read
  or repaired (an impossible or inverted box, a box entirely outside the image, an unknown class, a
  declared size the pixels contradict). The entry is left out whole (the image with all its annotations:
  an image missing one of its objects would teach a model that the object is background) and recorded in
  the batch's summary as {"file", "element", "reason"}; `visionloop batch show` and `health` list them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from visionloop import formats
from visionloop.core.errors import VisionLoopError
from visionloop.core.sample import LabelState, Sample, Source
from visionloop.formats.base import (
    Skips,
    count_skips,
    dataset_root,
    quarantine,
    quarantine_reads,
    quarantine_record,
)
from visionloop.formats.base import allow_outside_root as allow_outside_root_
from visionloop.formats.base import csv_columns as csv_columns_
from visionloop.formats.checks import TRUNCATED, check_image_sample
from visionloop.store import quarantine as store_quarantine
from visionloop.store.project import Store
from visionloop.store.writer import BatchWriter

log = logging.getLogger(__name__)

Progress = Callable[[int], None]

#: exit code of `visionloop import` (and `convert`) when everything else landed but some entries were quarantined
EXIT_QUARANTINED = 3


@dataclass
class ImportReport:
    batch_id: int | None  # None when the import changed nothing
    source: str
    format: str
    images_seen: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # images_added, annotations_added, blobs_added, ...
    fixes: dict[str, int] = field(default_factory=dict)  # clipped, zero_area, exif_reoriented, ... (found with no fix)
    classes: list[str] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)  # {"file", "element", "reason"}
    fixed: bool = True  # False with --no-fix: `fixes` are defects found and kept, not repairs
    notes: dict[str, int] = field(default_factory=dict)  # truncated_image: landed, noted for health
    skipped: dict[str, int] = field(default_factory=dict)  # "element: reason" the reader saw and did not keep
    assumed: dict[str, int] = field(default_factory=dict)  # "element: reading" read by a rule of the layout

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch_id, "source": self.source, "format": self.format,
                "images_seen": self.images_seen, **self.counts, "fixes" if self.fixed else "found": self.fixes,
                "notes": self.notes, "classes": self.classes, "quarantined": self.quarantined,
                "skipped": self.skipped, "assumed": self.assumed}


def import_dataset(
    store: Store,
    path: str | Path,
    *,
    format: str | None = None,
    split: str | None = None,
    fix: bool = True,
    strict: bool = False,
    progress: Progress | None = None,
    allow_outside_root: bool = False,
    annotation_source: Source | str | None = None,
    csv_columns: dict[str, str] | None = None,
) -> ImportReport:
    """Read `path`, check every image and annotation, and add them to the store as one batch.

    `annotation_source` (e.g. `model`, for predictions imported as pre-labels) becomes every annotation's
    `source` (their confidences, COCO's `score`, are kept); an image with none is then MISSING (nobody
    labelled it), not NULL.

    What cannot be used is quarantined (see the module); with `strict` the first problem raises and
    leaves the store exactly as it was. A malformed dataset as a whole (an unreadable COCO file, a
    data.yaml naming no images) is always an error. An image the annotations place outside the
    dataset's folder (`../x.jpg`, an absolute path) is an error unless `allow_outside_root`. `csv_columns`: how
    a box CSV's columns map (`image=`, `class=`, `coords=normalised`...; see formats/tfcsv.py).
    """
    with allow_outside_root_(allow_outside_root), csv_columns_(csv_columns):
        path = Path(path)
        name = format or formats.detect(path)
        with count_skips(strict) as skips:  # what the reader sees and does not keep: counted, strict refuses
            reader = formats.read(path, format=name, split=split)
            return _import(store, reader, path, name=name, split=split, fix=fix, strict=strict, progress=progress,
                           annotation_source=annotation_source, skips=skips)


def import_samples(store: Store, reader: formats.Reader, root: str | Path, *, format: str, split: str | None = None,
                   fix: bool = True, strict: bool = False, progress: Progress | None = None,
                   annotation_source: Source | str | None = None) -> ImportReport:
    """`import_dataset` for samples made in memory (predictions as pre-labels): the same checks, one batch,
    undoable. `root`: the folder their images are named relative to (the batch's source)."""
    with allow_outside_root_(True), count_skips(strict) as skips:
        return _import(store, reader, Path(root), name=format, split=split, fix=fix, strict=strict,
                       progress=progress, annotation_source=annotation_source, skips=skips)


def _with_source(sample: Sample, source: Source) -> Sample:
    anns = tuple(replace(a, source=source) for a in sample.annotations)
    state = sample.state if anns or sample.state is not LabelState.NULL else LabelState.MISSING
    return replace(sample, annotations=anns, state=state)


def _import(store: Store, reader: formats.Reader, path: Path, *, name: str, split: str | None, fix: bool,
            strict: bool, progress: Progress | None, annotation_source: Source | str | None = None,
            skips: Skips | None = None) -> ImportReport:
    forced = Source(annotation_source) if annotation_source is not None else None
    fixes: Counter[str] = Counter()
    quarantined: list[dict[str, Any]] = []
    root = dataset_root(path)

    def sink(error: VisionLoopError) -> None:
        quarantined.append(quarantine_record(error, root))
        log.info("quarantined: %s", error)

    seen = 0
    # read before the batch opens its transaction: no second connection while it is open (an in-memory
    # database has one connection, which a second one returning to the pool would roll back)
    open_records = store_quarantine.has_open_records(store, str(path.resolve()))
    # pre-labels fill images nobody has labelled; they never replace a person's (or an import's) labels
    with BatchWriter(store, kind="import", source=str(path.resolve()), format=name, split=split,
                     classes=reader.classes, replace_labelled=forced != Source.MODEL) as batch, \
            (nullcontext() if strict else quarantine_reads(sink)):
        for sample in reader:
            if forced is not None:
                sample = _with_source(sample, forced)
            try:
                prepared, data, info = check_image_sample(sample, fix=fix, counts=fixes, source=path,
                                                          allow_truncated=not strict)
            except VisionLoopError as e:
                quarantine(e)  # raises when strict
                continue
            assert info is not None
            batch.add(prepared, data, info.format)
            seen += 1
            if progress:
                progress(1)
        notes = {TRUNCATED: fixes.pop(TRUNCATED)} if fixes.get(TRUNCATED) else {}
        batch.summary["fixes" if fix else "found"] = dict(fixes)
        if notes:
            batch.summary["notes"] = notes
        if skips:
            batch.summary["skipped"] = dict(skips)
        assumed = dict(skips.assumed) if skips is not None else {}
        if assumed:
            batch.summary["assumed"] = assumed
        batch.summary["quarantined"] = quarantined
        batch.summary["images_quarantined"] = len(quarantined)
        # kept even when nothing else changed, so health sees this import's list (and an earlier list ends)
        batch.keep = bool(quarantined) or open_records
    report = ImportReport(batch.batch_id, str(path), name, seen, dict(batch.counts), dict(fixes),
                          reader.classes.names, quarantined, fix, notes, dict(skips or {}),
                          assumed)
    log.info("imported %s: %s", path, report.to_json())
    return report

