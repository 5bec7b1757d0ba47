"""Export the project, or convert between formats without one, into a folder written atomically."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from visionloop import formats
from visionloop.core.errors import VisionLoopError
from visionloop.formats.base import ImageMode, WriteReport
from visionloop.store.project import Store


@contextmanager
def atomic_dir(out: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary sibling folder that becomes `out` only if the block succeeds."""
    out = Path(out)
    occupied = out.is_file() or (out.is_dir() and any(out.iterdir()))
    if occupied and not overwrite:
        raise VisionLoopError("output exists and is not empty", path=out,
                                  hint="pick a new folder or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    tmp.rename(out)


def export_dataset(store: Store, out: str | Path, *, format: str, split: str | None = None,
                   images: ImageMode = ImageMode.COPY, overwrite: bool = False) -> WriteReport:
    formats.get(format)
    with atomic_dir(Path(out), overwrite=overwrite) as tmp:
        report = formats.write(store.samples(split=split), tmp, format=format, classes=store.classes(),
                               images=images)
    report.path = str(out)
    return report


def convert(src: str | Path, out: str | Path, *, to: str, from_: str | None = None, split: str | None = None,
            images: ImageMode = ImageMode.COPY, overwrite: bool = False) -> WriteReport:
    """Any format to any other, streaming, with no project."""
    formats.get(to)
    reader = formats.read(Path(src), format=from_, split=split)
    with atomic_dir(Path(out), overwrite=overwrite) as tmp:
        report = formats.write(reader, tmp, format=to, classes=reader.classes, images=images)
    report.path = str(out)
    return report
