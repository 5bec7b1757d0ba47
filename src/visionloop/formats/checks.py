"""Check a sample against its real image, fixing what is unambiguous: one home for import and convert.

`check_image_sample` is the whole check of one entry: its image file (missing, empty, not an
image, truncated: see `formats.images.probe`), its declared size (EXIF orientation applied), then
`check_sample`, its geometry. Import and convert both call it, so what one refuses the other does too.

Geometry (`check_sample`):

Fixed and counted (with `fix=True`): a box or polygon partly outside the image
is clipped to it; a zero-area box or polygon is dropped. A polyline partly
outside is cut at the image's edges (`Polyline.clip`): a line that leaves the
image and comes back becomes one polyline per part inside (counted as
`polyline_split`); a polyline of zero length is dropped. Refused with an error
naming the file and the annotation: a box, polygon or polyline entirely outside
the image, a mask whose size is not the image's, a rotated box whose centre is outside.
With `fix=False` nothing is changed and the problems are only counted, so a
health check can show them.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path

from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import Box, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, LabelState, Sample
from visionloop.formats.images import ImageInfo, TruncatedImage, probe, read_bytes, repair_truncated
from visionloop.formats.orient import reorient_annotation

log = logging.getLogger(__name__)

#: image metadata key of an image that was cut short but decodes (a `truncated_image` health finding)
TRUNCATED = "truncated_image"


def check_image_sample(sample: Sample, *, fix: bool, counts: Counter[str], source: str | Path,
                       allow_truncated: bool, read_image: bool = True) -> tuple[Sample, bytes | None, ImageInfo | None]:
    """The sample checked against its image, with hash, upright size and orientation set; its bytes; the probe.

    Raises ImageError / FormatError naming the file and element for what cannot be repaired. A truncated
    image that can be repaired passes when `allow_truncated`: its bytes are the repaired ones
    (`formats.images.repair_truncated`), counted as `truncated_image` in `counts` and marked in the image's
    metadata. With `read_image=False` (convert without images) the image file is
    not read: geometry is checked against the declared size, when there is one.
    """
    found: Counter[str] = Counter()  # counted only when the whole sample passes
    data: bytes | None = None
    info: ImageInfo | None = None
    if read_image:
        if sample.image.path is None:
            raise ImageError("the format gave no image file for this entry", path=source,
                             where=sample.image.file_name)
        data = read_bytes(sample.image.path, listed_in=source)
        try:
            info = probe(data, path=sample.image.path)
        except TruncatedImage as e:
            fixed = repair_truncated(data) if allow_truncated and data else None
            if fixed is None:
                if allow_truncated:
                    e.message += " and no decoder can read it"
                raise
            data, info = fixed, replace(probe(fixed, path=sample.image.path), truncated=True)
        sample = prepare(sample, info, found, source=str(source), fix=fix)
    if sample.image.width is not None and sample.image.height is not None:
        sample = check_sample(sample, fix=fix, counts=found, source=str(source))
    counts.update(found)
    return sample, data, info


def prepare(sample: Sample, info: ImageInfo, fixes: Counter[str], *, source: str, fix: bool = True) -> Sample:
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
                path=ref.path or source, where=None if ref.path else ref.file_name,
                hint="fix the size in the annotation file or use the right image")
    if info.truncated:
        fixes[TRUNCATED] += 1
        metadata = {**metadata, TRUNCATED: True}
        log.info("%s: cut short but decodable; kept with a `%s` note", ref.path or ref.file_name, TRUNCATED)
    new_ref = replace(ref, sha256=info.sha256, width=info.width, height=info.height, format=info.format,
                      orientation=info.orientation, gps=ref.gps or info.gps,
                      heading=ref.heading if ref.heading is not None else info.heading,
                      timestamp=ref.timestamp or info.timestamp, metadata=metadata)
    return replace(sample, image=new_ref, annotations=anns)


def check_sample(sample: Sample, *, fix: bool, counts: Counter[str], source: str) -> Sample:
    """The sample with its fixable problems fixed (see the module); errors name the image file (its path, else
    `source` and the file name) and the annotation."""
    W, H = sample.image.width, sample.image.height
    if sample.image.path is not None:
        source = sample.image.path
    assert W is not None and H is not None
    out: list[Annotation] = []
    changed = False
    for i, ann in enumerate(sample.annotations):
        where = f"annotation {i + 1} ({ann.label})" if sample.image.path is not None \
            else f"{sample.image.file_name}, annotation {i + 1} ({ann.label})"
        g = ann.geometry
        if isinstance(g, Box):
            if g.x0 >= W or g.y0 >= H or g.x1 <= 0 or g.y1 <= 0:
                if g.area > 0 or not fix:
                    raise FormatError(
                        f"box ({g.x0:g}, {g.y0:g})–({g.x1:g}, {g.y1:g}) lies outside the {W}×{H} image",
                        path=source, where=where, hint="fix or delete this annotation")
            if g.area == 0:
                counts["zero_area"] += 1
                if fix:
                    changed = True
                    continue
            elif not g.inside(W, H):
                counts["out_of_bounds"] += 1
                if fix:
                    counts["clipped"] += 1
                    ann = replace(ann, geometry=g.clip(W, H),
                                  bbox=ann.bbox.clip(W, H) if ann.bbox is not None else None, area=None)
                    changed = True
        elif isinstance(g, Polygon):
            b = g.bounds()
            if b.x1 <= 0 or b.y1 <= 0 or b.x0 >= W or b.y0 >= H:
                raise FormatError("polygon lies outside the image", path=source, where=where)
            if not b.inside(W, H):
                counts["out_of_bounds"] += 1
                if fix:
                    counts["clipped"] += 1
                    rings = tuple(
                        tuple(min(max(v, 0.0), W if k % 2 == 0 else H) for k, v in enumerate(r)) for r in g.rings)
                    g = Polygon(rings)
                    ann = replace(ann, geometry=g, bbox=ann.bbox.clip(W, H) if ann.bbox else None, area=None)
                    changed = True
            if g.area == 0:
                counts["zero_area"] += 1
                if fix:
                    changed = True
                    continue
        elif isinstance(g, Polyline):
            b = g.bounds()
            parts = g.clip(W, H) if not b.inside(W, H) else (g,)
            if not parts:
                raise FormatError(f"polyline ({b.x0:g}, {b.y0:g})–({b.x1:g}, {b.y1:g}) lies outside the {W}×{H} "
                                  "image", path=source, where=where, hint="fix or delete this annotation")
            if g.length == 0:
                counts["zero_length"] += 1
                if fix:
                    changed = True
                    continue
            if parts != (g,):
                counts["out_of_bounds"] += 1
                if fix:
                    counts["clipped"] += 1
                    if len(parts) > 1:
                        counts["polyline_split"] += len(parts) - 1
                    out.extend(replace(ann, geometry=p, bbox=None, area=None) for p in parts)
                    changed = True
                    continue
        elif isinstance(g, Mask):
            if (g.width, g.height) != (W, H):
                raise FormatError(f"mask is {g.width}×{g.height} but the image is {W}×{H}", path=source, where=where)
        elif isinstance(g, RotatedBox):
            if not (0 <= g.cx <= W and 0 <= g.cy <= H):
                raise FormatError("rotated box centre lies outside the image", path=source, where=where)
        out.append(ann)
    if not changed:
        return sample
    state = sample.state if out else (LabelState.NULL if sample.state is LabelState.ANNOTATED else sample.state)
    return replace(sample, annotations=tuple(out), state=state)
