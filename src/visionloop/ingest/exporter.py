"""Export the project in any format, into a folder written atomically."""

from __future__ import annotations

from pathlib import Path

from visionloop import formats
from visionloop.formats.base import ImageMode, WriteReport
from visionloop.formats.output import atomic_output
from visionloop.store.project import Store


def export_dataset(store: Store, out: str | Path, *, format: str, split: str | None = None,
                   images: ImageMode = ImageMode.COPY, overwrite: bool = False) -> WriteReport:
    formats.get(format)
    with atomic_output(Path(out), overwrite=overwrite, format=format,
                       protect=[store.root, store.blobs.url]) as tmp:
        report = formats.write(store.samples(split=split), tmp, format=format, classes=store.classes(),
                               images=images)
    report.path = str(out)
    return report

