"""The project's images as GPS points, staged as files for pycolmap; reconstructions kept under <project>/geo/."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionLoopError
from visionloop.geo.track import GeoPoint, _dop


def store_points(store: Any, *, split: str | None = None) -> list[GeoPoint]:
    """Every image of the project (id order) with the GPS, heading and time recorded at import; the DOP is read
    from the image's own EXIF (the store has no column for it)."""
    from sqlalchemy import select

    from visionloop.store.schema import ImageRow

    with store.session() as s:
        q = select(ImageRow).order_by(ImageRow.id)
        if split is not None:
            q = q.where(ImageRow.split == split)
        rows = [(r.file_name, r.sha256, r.gps_lat, r.gps_lon, r.gps_alt, r.heading, r.taken_at)
                for r in s.scalars(q)]
    if not rows:
        raise VisionLoopError("the project has no images", path=store.root, hint="visionloop import FOLDER first")
    out = []
    for name, sha, lat, lon, alt, heading, taken in rows:
        located = lat is not None and lon is not None
        dop = _dop(store.blobs.get(sha)) if located else None
        out.append(GeoPoint(name, lat, lon, alt, heading, taken, dop, "exif" if located else "none"))
    return out


def stage_images(store: Any, names: list[str], folder: Path) -> Path:
    """A folder with each named image linked (or copied) under its file name, for tools that read files."""
    from sqlalchemy import select

    from visionloop.store.models import blob_file
    from visionloop.store.schema import ImageRow

    folder.mkdir(parents=True, exist_ok=True)
    with store.session() as s:
        sha = {r.file_name: r.sha256 for r in s.scalars(select(ImageRow).where(ImageRow.file_name.in_(names)))}
    for n in names:
        dst = folder / n
        if dst.exists() or dst.is_symlink():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        src = blob_file(store, sha[n])
        try:
            os.symlink(os.path.abspath(src), dst)
        except OSError:
            dst.write_bytes(Path(src).read_bytes())
    return folder
