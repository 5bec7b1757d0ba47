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


def _centre(geometry: Any, box: Any) -> tuple[float, float]:
    """The point a map feature's ray goes through: a mask's or polygon's centroid (pixel centres, area
    weighted), a rotated box's centre, else the box's centre."""
    import numpy as np

    from visionloop.core.geometry import Mask, Polygon, RotatedBox

    if isinstance(geometry, Mask):
        ys, xs = np.nonzero(geometry.to_array())
        if len(xs):
            return float(xs.mean() + 0.5), float(ys.mean() + 0.5)
    elif isinstance(geometry, Polygon):
        ax = ay = area = 0.0
        for r in geometry.rings:
            xs, ys = np.asarray(r[0::2]), np.asarray(r[1::2])
            x2, y2 = np.roll(xs, -1), np.roll(ys, -1)
            cross = xs * y2 - x2 * ys
            a = cross.sum() / 2
            if abs(a) > 1e-12:
                ax += float(((xs + x2) * cross).sum() / 6)
                ay += float(((ys + y2) * cross).sum() / 6)
                area += float(a)
        if abs(area) > 1e-12:
            return ax / area, ay / area
    elif isinstance(geometry, RotatedBox):
        return geometry.cx, geometry.cy
    return (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2


def _names_by_sha(store: Any) -> dict[str, str]:
    from sqlalchemy import select

    from visionloop.store.schema import ImageRow

    out: dict[str, str] = {}
    with store.session() as s:
        for sha, name in s.execute(select(ImageRow.sha256, ImageRow.file_name).order_by(ImageRow.id)):
            out.setdefault(sha, name)
    return out


def annotation_detections(store: Any, classes: list[str], *, source: str | None = None) -> list[Any]:
    """The project's annotations of these classes (of one source: human, model, imported; None: any) as
    map-feature detections, keyed by the image's file name (the name the reconstruction knows it by)."""
    from visionloop.geo.mapfeatures import Detection

    want = set(classes)
    known = {c.name for c in store.classes()}
    missing = sorted(want - known)
    if missing:
        raise VisionLoopError(f"the project has no class {', '.join(missing)}", path=store.root,
                              hint=f"classes: {', '.join(sorted(known)) or 'none'}")
    out = []
    seen: dict[str, str] = {}
    for sample in store.samples():
        im = sample.image
        anns = [a for a in sample.annotations
                if a.label in want and (source is None or a.source.value == source) and a.box is not None]
        if not anns:
            continue
        if seen.setdefault(im.file_name, im.sha256 or "") != (im.sha256 or ""):
            raise VisionLoopError("two different images of the project share this file name, so the "
                                  "reconstruction's camera for it is ambiguous", where=im.file_name,
                                  hint="rename one (or keep one split) and run `visionloop sfm` again")
        for k, a in enumerate(anns):
            b = a.box
            out.append(Detection(im.file_name, a.label, _centre(a.geometry, b), (b.x0, b.y0, b.x1, b.y1),
                                 a.confidence, f"{im.file_name}#{k}",
                                 (im.width, im.height) if im.width and im.height else None))
    return out


def logged_detections(store: Any, model: str, classes: list[str]) -> list[Any]:
    """A model's predictions from the prediction log (`visionloop serve --log-predictions`) of these classes,
    on the project's images (matched by content, the sha256 of the logged image); the newest log row of an
    image wins."""
    import numpy as np
    from pycocotools import mask as mask_utils

    from visionloop.geo.mapfeatures import Detection
    from visionloop.store import prediction_log as plog

    names = _names_by_sha(store)
    newest: dict[str, Any] = {}
    for row in plog.query(store, model=model):
        if row.image_sha256 in names:
            newest[row.image_sha256] = row  # oldest first: the last one is the newest
    if not newest and not plog.count(store, model=model):
        raise VisionLoopError(f"the prediction log has nothing from model {model!r}", path=store.root,
                              hint="serve it with --log-predictions, or use the project's annotations")
    want = set(classes)
    out = []
    for sha, row in newest.items():
        for k, p in enumerate(row.predictions):
            if p.get("class") not in want or "box" not in p:
                continue
            b = p["box"]
            x0, y0, x1, y1 = (float(b[c]) for c in ("x0", "y0", "x1", "y1")) if isinstance(b, dict) \
                else (float(v) for v in b)
            xy = ((x0 + x1) / 2, (y0 + y1) / 2)
            if isinstance(p.get("mask"), dict):
                m = mask_utils.decode({"size": p["mask"]["size"], "counts": p["mask"]["counts"].encode("ascii")})
                ys, xs = np.nonzero(m)
                if len(xs):
                    xy = (float(xs.mean() + 0.5), float(ys.mean() + 0.5))
            conf = p.get("confidence", p.get("score"))
            out.append(Detection(names[sha], str(p["class"]), xy, (x0, y0, x1, y1),
                                 None if conf is None else float(conf), f"log {row.id}#{k}", (row.width, row.height)))
    return out


def pixels(store: Any) -> Any:
    """image file name -> its upright RGB pixels (for the appearance cue), None when unknown."""
    import io

    import numpy as np
    from PIL import Image, ImageOps
    from sqlalchemy import select

    from visionloop.store.schema import ImageRow

    with store.session() as s:
        sha = dict(s.execute(select(ImageRow.file_name, ImageRow.sha256).order_by(ImageRow.id.desc())).all())

    def read(name: str) -> Any:
        if name not in sha:
            return None
        with Image.open(io.BytesIO(store.blobs.get(sha[name]))) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))

    return read
