"""Apple Create ML object detection JSON.

Reference: https://developer.apple.com/documentation/createml/building-an-object-detector-data-source
and Roboflow's "CreateML JSON" export (https://roboflow.com/formats/createml-json), which writes
``_annotations.createml.json`` per split folder with the images beside it::

    [{"image": "a.jpg",
      "annotations": [{"label": "dog", "coordinates": {"x": 160, "y": 120, "width": 100, "height": 80}}]}]

Convention: ``x``, ``y`` are the box CENTRE and ``width``, ``height`` its size, in pixels of the
image as displayed (continuous; our canonical space): x0 = x - width / 2, x1 = x + width / 2. The
conversion is float arithmetic, so fractional boxes round-trip to about 1e-12 px, integer (and
binary-fraction) boxes exactly. The file declares no image size (``ImageRef.width/height`` stay
None). An entry with an empty ``annotations`` list is an image labelled empty (NULL).

Layouts read: one JSON file (an array of such entries); a folder with ``_annotations.createml.json``
or exactly one such ``.json``; split folders each holding one (the split is the folder name).
Images are looked up beside the JSON, then in ``images/``. The JSON is streamed with ijson.

Writing: ``out/[<split>/]_annotations.createml.json``, images beside it, entries streamed. Create ML
holds boxes only: polygons, masks and rotated boxes become their bounds, keypoints their declared
bbox; whole-image labels and box-less keypoints are dropped (all counted). A MISSING image is
written as an entry with no annotations (NULL), counted as a conversion.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import ijson
import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._tabular import ImageRoot, UniqueNames, as_box, split_folder
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    open_text_bytes,
    place_image,
    safe_name,
)

log = logging.getLogger(__name__)

FORMAT = "createml"
ROBOFLOW_NAME = "_annotations.createml.json"
_HEAD = 2048


def _looks_like(path: Path) -> bool:
    """The file is a JSON array whose first entry is {image, annotations} (reads that entry only)."""
    try:
        with open_text_bytes(path) as f:
            start = f.tell()
            head = f.read(_HEAD).lstrip(b" \t\r\n")
            if not head.startswith(b"["):
                return False
            if head[1:].lstrip().startswith(b"]"):
                return path.name == ROBOFLOW_NAME
            f.seek(start)
            first = next(iter(ijson.items(f, "item", use_float=True)), None)
    except (OSError, ijson.JSONError):
        return False
    if not isinstance(first, dict) or not isinstance(first.get("image"), str):
        return False
    if not set(first) <= {"image", "annotations"}:
        return False
    anns = first.get("annotations", [])
    return isinstance(anns, list) and all(isinstance(a, dict) and "coordinates" in a for a in anns[:3])


def _files(path: Path) -> list[tuple[Path, str | None]]:
    if path.is_file():
        return [(path, None)] if path.suffix.lower() == ".json" else []
    if not path.is_dir():
        return []
    if (path / ROBOFLOW_NAME).is_file():
        return [(path / ROBOFLOW_NAME, None)]
    jsons = [f for f in sorted(path.glob("*.json")) if _looks_like(f)]
    if len(jsons) == 1:
        return [(jsons[0], None)]
    found: list[tuple[Path, str | None]] = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        if (sub / ROBOFLOW_NAME).is_file():
            found.append((sub / ROBOFLOW_NAME, sub.name))
    return found


def detect(path: Path) -> Detection:
    """A JSON array whose first entry has `image` and `annotations` (reads 2 KB)."""
    path = Path(path)
    files = _files(path)
    if not files:
        return Detection.no("no Create ML JSON (_annotations.createml.json or a JSON array of images)")
    f = files[0][0]
    if not _looks_like(f):
        return Detection.no(f"{f.name} is not a JSON array of {{image, annotations}} entries")
    if f.name == ROBOFLOW_NAME:
        return Detection(0.95, f"{f.name} in Roboflow's Create ML layout")
    return Detection(0.85, f"{f.name} is a JSON array of {{image, annotations}} entries")


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _files(path)
    if not files:
        raise FormatError("no Create ML JSON here", path=path,
                          hint="expected _annotations.createml.json, a .json array, or split folders holding one")
    classes = ClassMap()

    def samples() -> Iterator[Sample]:
        for f, file_split in files:
            yield from _read_file(f, split or file_split, classes)

    return Reader(classes, samples, source=path)


def _read_file(path: Path, split: str | None, classes: ClassMap) -> Iterator[Sample]:
    roots = ImageRoot([path.parent, path.parent / "images"])
    try:
        with open_text_bytes(path) as f:
            for i, entry in enumerate(ijson.items(f, "item", use_float=True)):
                yield _sample(entry, path, i, split, classes, roots)
    except ijson.JSONError as e:
        raise FormatError(f"malformed JSON ({e})", path=path) from None


def _sample(entry: Any, path: Path, i: int, split: str | None, classes: ClassMap, roots: ImageRoot) -> Sample:
    where = f"[{i}]"
    if not isinstance(entry, dict):
        raise FormatError("expected an object {image, annotations}", path=path, where=where)
    image = entry.get("image")
    if not isinstance(image, str) or not image:
        raise FormatError("`image` must be a non-empty file name", path=path, where=where)
    raw = entry.get("annotations", [])
    if not isinstance(raw, list):
        raise FormatError("`annotations` must be a list", path=path, where=where)
    anns = []
    for j, a in enumerate(raw):
        w = f"{where} ({image}) annotations[{j}]"
        try:
            label = a["label"]
            c = a["coordinates"]
            x, y, bw, bh = (float(c[k]) for k in ("x", "y", "width", "height"))
            if not isinstance(label, str) or not label:
                raise ValueError("`label` must be a non-empty string")
            if bw < 0 or bh < 0:
                raise ValueError(f"negative size {bw}x{bh}")
            box = Box(x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2)
        except (KeyError, TypeError) as e:
            raise FormatError(f"an annotation needs `label` and `coordinates` {{x, y, width, height}} ({e})",
                              path=path, where=w) from None
        except ValueError as e:
            raise FormatError(str(e), path=path, where=w) from None
        anns.append(Annotation(classes.add(label).name, box))
    name = image.replace("\\", "/")
    ref = ImageRef(name, path=str(roots.resolve(name)))
    return Sample(ref, tuple(anns), split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """`out/[<split>/]_annotations.createml.json` with the images beside it."""
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    names = UniqueNames()
    files: dict[str | None, IO[bytes]] = {}
    count: dict[str | None, int] = {}
    try:
        for sample in samples:
            folder = out / split_folder(sample.split) if sample.split else out
            f = files.get(sample.split)
            if f is None:
                f = files[sample.split] = _open(folder)
                count[sample.split] = 0
                report.files += 1
            name = names.claim(str(folder), safe_name(sample.image.file_name), report)
            if place_image(sample.image, folder / name, images):
                report.files += 1
            anns = []
            for ann in sample.annotations:
                box = as_box(ann, report, "Create ML")
                if box is not None:
                    cx, cy, w, h = box.cxcywh()
                    anns.append({"label": ann.label, "coordinates": {
                        "x": _num(cx), "y": _num(cy), "width": _num(w), "height": _num(h)}})
            if sample.state is LabelState.MISSING:
                report.converted["image missing labels -> null (an entry without annotations)"] += 1
            f.write((b",\n" if count[sample.split] else b"") + orjson.dumps({"image": name, "annotations": anns}))
            count[sample.split] += 1
            report.images += 1
        if not files:
            files[None] = _open(out)
            report.files += 1
    finally:
        for f in files.values():
            f.write(b"\n]\n")
            f.close()
    return report


def _open(folder: Path) -> IO[bytes]:
    target = folder / ROBOFLOW_NAME
    if target.exists():
        raise FormatError("the JSON already exists; refusing to overwrite it", path=target)
    folder.mkdir(parents=True, exist_ok=True)
    f = open(target, "xb")
    f.write(b"[\n")
    return f
