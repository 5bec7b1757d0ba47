"""WIDER FACE: ``wider_face_split/wider_face_<split>_bbx_gt.txt`` + ``WIDER_<split>/images/<event>/<name>.jpg``.

Reference: http://shuoyang1213.me/WIDERFACE/ and the ``readme.txt`` shipped in ``wider_face_split.zip``.
The ground-truth file repeats, per image::

    0--Parade/0_Parade_marchingband_1_849.jpg      path under WIDER_<split>/images/
    1                                              number of faces
    449 330 122 149 0 0 0 0 0 0                    x1 y1 w h blur expression illumination invalid occlusion pose

An image with no face has the count 0 followed by one line of ten zeros (a 0 without that line, and
an image path with no count at all, as datumaro 1.13's exporter writes it, are read too). The flags are integers:
blur 0 clear / 1 normal / 2 heavy; expression 0 typical / 1 exaggerate; illumination 0 normal /
1 extreme; invalid 0 / 1; occlusion 0 no / 1 partial / 2 heavy; pose 0 typical / 1 atypical. They
become the annotation's attributes of those names. ``wider_face_test_filelist.txt`` lists the test
images without boxes: they are MISSING.

Coordinates: x1, y1 is the top-left corner and w, h the size in pixels; they are read as they are
(Box(x1, y1, x1 + w, y1 + h)), as the evaluation code and the common loaders use them. Every box is of
class ``face`` (id 0). The event folder (``0--Parade``) is kept as ``metadata["wider_event"]``.
Image sizes are not declared (None until something reads the headers).

Reading streams the text file line by line; splits are ``train``, ``val``, ``test`` as the files name
them. Writing: ``wider_face_split/wider_face_<split>_bbx_gt.txt`` (split None is written as ``train``)
and images under ``WIDER_<split>/images/<event>/<name>``, where the relative path is the sample's
file_name less a leading ``WIDER_<split>/images/`` or ``images/`` and an image outside any folder goes
to ``0--unknown/`` (the ground truth names images by event folder). Boxes of other classes are written
as faces (counted as converted); polygons, rotated boxes and masks as their bounds (counted); keypoints,
whole-image labels and attributes other than the six flags are dropped (counted). Missing flags are 0.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, bounds, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._jsonstream import UniqueNames
from visionloop.formats.base import Detection, ImageMode, Reader, WriteReport, place_image, safe_name

log = logging.getLogger(__name__)

FORMAT = "wider"
CLASS = "face"
FLAGS = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
SPLIT_DIR = "wider_face_split"
SPLITS = ("train", "val", "test")
_LIST = re.compile(r"^wider_face_(?P<split>[\w.-]+?)_(?P<kind>bbx_gt|filelist)\.txt$")
UNKNOWN_EVENT = "0--unknown"


def _gt_name(split: str) -> str:
    return f"wider_face_{split}_bbx_gt.txt"


def _test_list(split: str) -> str:
    return f"wider_face_{split}_filelist.txt"


def _files(path: Path) -> tuple[Path, list[tuple[Path, str, bool]]]:
    """(dataset root, [(list file, split, has boxes)]) for a path, without reading anything."""
    if path.is_file():
        m = _LIST.match(path.name)
        if m:
            root = path.parent.parent if path.parent.name == SPLIT_DIR else path.parent
            return root, [(path, m["split"], m["kind"] == "bbx_gt")]
        return path.parent, []
    root = path.parent if path.name == SPLIT_DIR else path
    split_dir = root / SPLIT_DIR
    # every split the folder names (train, val, test first; any other, e.g. `valid`, after), not only the three
    # official ones: a list file that is there is never ignored
    names: set[str] = set()
    try:
        names = {m["split"] for f in os.listdir(split_dir) if (m := _LIST.match(f))}
    except OSError:
        pass
    found = []
    for split in sorted(names, key=lambda n: (SPLITS.index(n) if n in SPLITS else len(SPLITS), n)):
        if (split_dir / _gt_name(split)).is_file():
            found.append((split_dir / _gt_name(split), split, True))
        elif (split_dir / _test_list(split)).is_file():
            found.append((split_dir / _test_list(split), split, False))
    return root, found


def detect(path: Path) -> Detection:
    _, files = _files(Path(path))
    if not files:
        return Detection.no("no wider_face_split/wider_face_<split>_bbx_gt.txt")
    f, _, boxes = files[0]
    try:
        with open(f, encoding="utf-8-sig") as handle:
            first = handle.readline().strip()
            second = handle.readline().strip()
    except OSError:
        return Detection.no(f"cannot read {f.name}")
    if boxes and not (first.lower().endswith((".jpg", ".jpeg", ".png")) and second.isdigit()):
        return Detection(0.2, f"{f.name} does not start with an image path and a face count")
    return Detection(0.95, f"{f.name} is a WIDER FACE list")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    root, files = _files(path)
    if not files:
        raise FormatError("no WIDER FACE ground truth here", path=path,
                          hint="expected wider_face_split/wider_face_<split>_bbx_gt.txt")
    classes = ClassMap.from_names([CLASS])

    def samples() -> Iterator[Sample]:
        for f, file_split, has_boxes in files:
            images = root / f"WIDER_{file_split}" / "images"
            parse = _parse_gt if has_boxes else _parse_list
            for rel, lineno, anns in parse(f):
                yield _sample(root, images, rel, anns, split or file_split, f, lineno)

    return Reader(classes, samples, source=path)


def _sample(root: Path, images: Path, rel: str, anns: tuple[Annotation, ...] | None, split: str,
            list_file: Path, lineno: int) -> Sample:
    safe = PurePosixPath(rel.replace("\\", "/"))
    if safe.is_absolute() or ".." in safe.parts:
        raise FormatError(f"image path {rel!r} must be relative to the images folder", path=list_file,
                          where=f"line {lineno}")
    absolute = images / safe
    file_name = PurePosixPath(images.relative_to(root).as_posix(), safe).as_posix()
    metadata: dict[str, Any] = {"wider_event": safe.parts[0]} if len(safe.parts) > 1 else {}
    ref = ImageRef(file_name, path=str(absolute.absolute()), metadata=metadata)
    if anns is None:
        return Sample(ref, (), split=split, state=LabelState.MISSING)
    return Sample(ref, anns, split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


def _parse_list(path: Path) -> Iterator[tuple[str, int, tuple[Annotation, ...] | None]]:
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield line.strip(), lineno, None


def _parse_gt(path: Path) -> Iterator[tuple[str, int, tuple[Annotation, ...] | None]]:
    with open(path, encoding="utf-8-sig") as f:
        lines = ((n, text.strip()) for n, text in enumerate(f, start=1) if text.strip())
        pushed: list[tuple[int, str]] = []

        def take() -> tuple[int, str] | None:
            return pushed.pop() if pushed else next(lines, None)

        last = 0
        while (item := take()) is not None:
            lineno, rel = item
            if rel.split()[0].lstrip("-").isdigit() and not rel.lower().endswith((".jpg", ".jpeg", ".png")):
                raise FormatError(f"expected an image path, got {rel!r}", path=path, where=f"line {lineno}")
            counted = take()
            if counted is None or _is_path(counted[1]):  # datumaro writes no count for an image without faces
                if counted is not None:
                    pushed.append(counted)
                yield rel, lineno, ()
                continue
            if not counted[1].isdigit():
                raise FormatError(f"expected the number of faces of {rel}, got {counted[1]!r}", path=path,
                                  where=f"line {counted[0]}")
            last, count = counted[0], int(counted[1])
            anns: list[Annotation] = []
            if count == 0:
                # the official files follow a 0 with a line of ten zeros; tolerate its absence
                peek = take()
                if peek is not None:
                    if len(peek[1].split()) == 10 and all(_is_number(v) for v in peek[1].split()):
                        if any(_box_values(peek[1], path, peek[0])):
                            raise FormatError("an image with 0 faces must be followed by a line of zeros",
                                              path=path, where=f"line {peek[0]}")
                    else:
                        pushed.append(peek)
            for _ in range(count):
                box = take()
                if box is None:
                    raise FormatError(f"the file ends inside the faces of {rel}", path=path, where=f"line {last + 1}")
                anns.append(_face(_box_values(box[1], path, box[0]), path, box[0]))
                last = box[0]
            yield rel, lineno, tuple(anns)


def _is_path(text: str) -> bool:
    return text.lower().endswith((".jpg", ".jpeg", ".png", ".bmp")) and len(text.split()) == 1


def _box_values(line: str, path: Path, lineno: int) -> list[float]:
    fields = line.split()
    if len(fields) != 10:
        raise FormatError(f"expected 10 values (x1 y1 w h blur expression illumination invalid occlusion pose), "
                          f"got {len(fields)}", path=path, where=f"line {lineno}")
    try:
        values = [float(v) for v in fields]
    except ValueError:
        bad = next(v for v in fields if not _is_number(v))
        raise FormatError(f"{bad!r} is not a number", path=path, where=f"line {lineno}") from None
    if not all(math.isfinite(v) for v in values):
        raise FormatError("values must be finite numbers", path=path, where=f"line {lineno}")
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _face(values: list[float], path: Path, lineno: int) -> Annotation:
    x, y, w, h = values[:4]
    if w < 0 or h < 0:
        raise FormatError(f"face width and height must not be negative, got {w:g} {h:g}", path=path,
                          where=f"line {lineno}")
    flags = values[4:]
    if not all(v.is_integer() for v in flags):
        raise FormatError("the six flags must be integers", path=path, where=f"line {lineno}")
    attrs = {name: int(v) for name, v in zip(FLAGS, flags, strict=True)}
    return Annotation(CLASS, Box.from_xywh(x, y, w, h), attributes=attrs)


# ---------------------------------------------------------------- write


@dataclass
class _SplitFile:
    path: Path
    handle: IO[str]
    names: UniqueNames = field(default_factory=UniqueNames)


def _relative(file_name: str, split: str) -> str:
    name = safe_name(file_name)
    for prefix in (f"WIDER_{split}/images/", "images/"):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix):]
            break
    if "/" not in name:
        name = f"{UNKNOWN_EVENT}/{name}"
    return name


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    files: dict[str, _SplitFile] = {}
    try:
        for sample in samples:
            split = sample.split or "train"
            sf = files.get(split)
            if sf is None:
                p = out / SPLIT_DIR / _gt_name(split)
                p.parent.mkdir(parents=True, exist_ok=True)
                partial = p.with_name(p.name + ".partial")
                sf = files[split] = _SplitFile(p, open(partial, "w", encoding="utf-8", newline="\n"))
            rel = sf.names.claim(_relative(sample.image.file_name, split))
            if place_image(sample.image, out / f"WIDER_{split}" / "images" / rel, images):
                report.files += 1
            lines = [_face_line(ann, report) for ann in sample.annotations]
            kept = [line for line in lines if line is not None]
            if sample.state is LabelState.MISSING:
                report.converted["missing -> null (the ground truth lists every image)"] += 1
            sf.handle.write(f"{rel}\n{len(kept)}\n")
            sf.handle.write("".join(f"{line}\n" for line in kept) if kept else "0 0 0 0 0 0 0 0 0 0\n")
            report.images += 1
    except BaseException:
        for sf in files.values():
            sf.handle.close()
            sf.path.with_name(sf.path.name + ".partial").unlink(missing_ok=True)
        raise
    for sf in files.values():
        sf.handle.close()
        sf.path.with_name(sf.path.name + ".partial").replace(sf.path)
        report.files += 1
    return report


def _face_line(ann: Annotation, report: WriteReport) -> str | None:
    g = ann.geometry
    if isinstance(g, Keypoints | Label):
        report.drop(kind(g), "WIDER FACE holds boxes only")
        return None
    box = bounds(g)
    if box is None:  # pragma: no cover - Label and empty keypoints only
        report.drop(kind(g), "no bounds")
        return None
    if not isinstance(g, Box):
        report.converted[f"{kind(g)} -> box (bounds)"] += 1
    if ann.label != CLASS:
        report.converted[f"class {ann.label!r} -> face"] += 1
    flags = []
    for name in FLAGS:
        v = ann.attributes.get(name, 0)
        flags.append(int(v) if isinstance(v, int | float) and float(v).is_integer() else 0)
    for k in ann.attributes:
        if k not in FLAGS:
            report.drop("attribute", f"{k!r}: WIDER FACE holds its six flags only")
    report.annotations["box"] += 1
    x, y, w, h = box.xywh()
    return " ".join([_num(x), _num(y), _num(w), _num(h), *(str(v) for v in flags)])
