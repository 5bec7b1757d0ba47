"""Export the project in any format, into a folder written atomically."""

from __future__ import annotations

import tempfile
from pathlib import Path

from visionloop import formats
from visionloop.formats.base import ImageMode, WriteReport
from visionloop.formats.output import atomic_output
from visionloop.store.blobs import fetched_ahead
from visionloop.store.project import Store
from visionloop.versions.redact import redact_samples


def export_dataset(store: Store, out: str | Path, *, format: str, split: str | None = None,
                   images: ImageMode = ImageMode.COPY, overwrite: bool = False) -> WriteReport:
    """Write the project's images and annotations in `format`. An image with blur regions (`visionloop blur`)
    is written blurred, as `<stem>.png` (lossless, so every other pixel is the original's); the rest are their
    stored bytes."""
    formats.get(format)
    with atomic_output(Path(out), overwrite=overwrite, format=format,
                       protect=[store.root, store.blobs.url]) as tmp, \
            tempfile.TemporaryDirectory(prefix="visionloop-blur-") as blurred, \
            fetched_ahead(store.blobs, store.samples(split=split)) as samples:
        report = formats.write(redact_samples(store, samples, Path(blurred)), tmp,
                               format=format, classes=store.classes(), images=images)
    report.path = str(out)
    return report
