"""Check a sample's annotations against its real image, fixing what is unambiguous.

Fixed and counted (with `fix=True`): a box or polygon partly outside the image
is clipped to it; a zero-area box or polygon is dropped. Refused with an error
naming the file and the annotation: a box entirely outside the image, a mask
whose size is not the image's, a rotated box whose centre is outside.
With `fix=False` nothing is changed and the problems are only counted, so a
health check can show them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Mask, Polygon, RotatedBox
from visionloop.core.sample import Annotation, LabelState, Sample


def check_sample(sample: Sample, *, fix: bool, counts: Counter[str], source: str) -> Sample:
    W, H = sample.image.width, sample.image.height
    assert W is not None and H is not None
    out: list[Annotation] = []
    changed = False
    for i, ann in enumerate(sample.annotations):
        where = f"{sample.image.file_name}, annotation {i + 1} ({ann.label})"
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
