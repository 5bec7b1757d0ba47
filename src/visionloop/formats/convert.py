"""Any format to any other with no project: read → write, streaming, into a folder written atomically."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from visionloop.core.errors import VisionLoopError
from visionloop.formats import registry
from visionloop.formats.base import ImageMode, WriteReport


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


def convert(src: str | Path, out: str | Path, *, to: str, from_: str | None = None, split: str | None = None,
            images: ImageMode | str = ImageMode.COPY, overwrite: bool = False) -> WriteReport:
    """Any format to any other, streaming, with no project."""
    registry.get(to)
    reader = registry.read(Path(src), format=from_, split=split)
    with atomic_dir(Path(out), overwrite=overwrite) as tmp:
        report = registry.write(reader, tmp, format=to, classes=reader.classes, images=ImageMode(images))
    report.path = str(out)
    return report
