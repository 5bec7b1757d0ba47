"""Amazon SageMaker Ground Truth output manifest (JSON lines).

Reference: https://docs.aws.amazon.com/sagemaker/latest/dg/sms-data-output.html (bounding box,
semantic segmentation, image classification single- and multi-label job outputs).

Each line is one image: ``source-ref`` (an S3 URI) plus, per labelling job, the label attribute
``<name>`` and ``<name>-metadata`` whose ``type`` says the job kind:

groundtruth/object-detection        ``{"image_size": [{"width","height","depth"}], "annotations":
                                    [{"class_id","left","top","width","height"}]}`` in pixels
                                    (continuous, top-left origin: kept as they are); metadata
                                    ``class-map`` {"0": "dog"} and ``objects`` [{"confidence"}]
                                    → Box per annotation, confidence from ``objects``
groundtruth/semantic-segmentation   ``<name>`` ends with ``-ref`` and is the S3 URI of a PNG whose
                                    pixels take the ``hex-color`` of their class in metadata
                                    ``internal-color-map`` {"0": {"class-name": "BACKGROUND", ...}}
                                    → one Mask per class present (background skipped), attribute
                                    ``semantic: True`` (as VOC's class masks)
groundtruth/image-classification    ``<name>`` = class id, metadata ``class-name`` → Label
…-multi-label                       ``<name>`` = [class ids], metadata ``class-map`` → Labels
``human-annotated: "yes"`` → Source.HUMAN, ``"no"`` (automated labelling) → Source.MODEL.
Class ids: the job's ids are kept in the ClassMap when free; a name seen with another id keeps
its first id (chained jobs number their classes independently).

Files: S3 URIs are mapped to local files next to the manifest by path: the key, then each
shorter suffix of it, then the base name, in the manifest's folder and its `images/`
(`masks/` too for label masks). The URI is kept in ``ImageRef.metadata["source-ref"]``. A line
with no labelling job is MISSING (an input manifest line); one whose jobs found nothing NULL.
A folder's `*.manifest` files are read in name order, each a split named by its stem (except
`output`).

Writing: `out/output.manifest` (or `out/<split>.manifest` per split), images in `out/images/`,
label masks in `out/masks/`. ``source-ref`` is the sample's original URI when it names the same
file, else the relative path `images/<name>` (prefix your bucket before starting a job on it).
Jobs written: boxes → ``bounding-box`` (object detection; rotated boxes and polygons as their
bounds, counted); masks → ``semantic-segmentation-ref`` (one colour per class, later masks
painted over earlier ones; instance masks are merged into their class, counted; class indices in
the colour map are 1.. in class order, 0 = BACKGROUND); Labels → ``classification`` (one) or
``classification-multi-label`` (several). A line's ``human-annotated`` is "no" when any of its
annotations came from a model. Keypoints, attributes, crowd flags and track ids cannot be held
(dropped, counted).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from visionloop.core.classes import ClassMap, default_color
from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, RotatedBox, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample, Source
from visionloop.formats._labeltools import (
    UniqueNames,
    basename,
    find_local,
    head,
    hex_color,
    iter_json_lines,
    number,
    relative_or_name,
)
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    place_image,
    safe_name,
    skip,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "sagemaker"
MANIFEST = "output.manifest"
OD, SEG, CLS, MULTI = ("groundtruth/object-detection", "groundtruth/semantic-segmentation",
                       "groundtruth/image-classification", "groundtruth/image-classification-multi-label")
BACKGROUND = "BACKGROUND"


def _manifests(path: Path) -> list[tuple[Path, str | None]]:
    if path.is_file():
        return [(path, None)]
    if not path.is_dir():
        return []
    files = sorted(path.glob("*.manifest")) or sorted(path.glob("*.jsonl"))
    return [(f, None if f.stem == "output" or len(files) == 1 else f.stem) for f in files]


def detect(path: Path) -> Detection:
    files = _manifests(Path(path))
    if not files:
        return Detection.no("no .manifest file")
    first = head(files[0][0], 1 << 16).split(b"\n", 1)[0]
    if not first.lstrip().startswith(b"{") or b'"source-ref"' not in first:
        return Detection.no(f"{files[0][0].name} does not start with a JSON line with source-ref")
    if b'"groundtruth/' in first:
        return Detection(0.95, f"{files[0][0].name} is a Ground Truth output manifest")
    return Detection(0.5, f"{files[0][0].name} is a manifest of source-ref lines (no labels)")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _manifests(path)
    if not files:
        raise FormatError("no SageMaker manifest here", path=path, hint="expected output.manifest (JSON lines)")
    classes = ClassMap()

    def samples() -> Iterator[Sample]:
        for f, file_split in files:
            for lineno, line in iter_json_lines(f):
                yield _line(line, f, lineno, classes, split or file_split)

    return Reader(classes, samples, source=path)


def _class(classes: ClassMap, name: str, class_id: Any) -> str:
    if name not in classes:
        try:
            cid: int | None = int(class_id)
        except (TypeError, ValueError):
            cid = None
        classes.add(name, id=cid if cid is not None and classes.by_id(cid) is None else None)
    return name


def _line(line: Any, path: Path, lineno: int, classes: ClassMap, split: str | None) -> Sample:
    where = f"line {lineno}"
    if not isinstance(line, dict) or not isinstance(line.get("source-ref"), str):
        raise FormatError("a line needs a `source-ref` string", path=path, where=where)
    uri = line["source-ref"]
    root = path.parent
    local = find_local(root, uri)
    file_name = relative_or_name(local, root, basename(uri) or f"line_{lineno}")
    anns: list[Annotation] = []
    size: tuple[int, int] | None = None
    jobs = 0
    for key, value in line.items():
        meta = line.get(f"{key}-metadata")
        if key == "source-ref" or key.endswith("-metadata") or not isinstance(meta, dict):
            continue
        jobs += 1
        jwhere = f"{where} `{key}`"
        job_type = str(meta.get("type", ""))
        source = Source.HUMAN if str(meta.get("human-annotated", "yes")).lower() == "yes" else Source.MODEL
        if job_type == OD:
            found, size = _boxes(value, meta, classes, source, path=path, where=jwhere)
            anns.extend(found)
        elif job_type == SEG:
            found, mask_size = _segmentation(value, meta, classes, source, root, path=path, where=jwhere)
            anns.extend(found)
            size = size or mask_size
        elif job_type == CLS:
            name = meta.get("class-name")
            if not name:
                raise FormatError("a classification job needs `class-name` in its metadata", path=path, where=jwhere)
            anns.append(Annotation(_class(classes, str(name), value), Label(), source=source,
                                   confidence=_confidence(meta.get("confidence"))))
        elif job_type == MULTI:
            cmap = meta.get("class-map") or {}
            conf = meta.get("confidence-map") or {}
            for cid in value if isinstance(value, list) else []:
                name = cmap.get(str(cid))
                if name is None:
                    raise FormatError(f"class id {cid} is not in the class-map", path=path, where=jwhere)
                anns.append(Annotation(_class(classes, str(name), cid), Label(), source=source,
                                       confidence=_confidence(conf.get(str(cid)))))
        else:
            jobs -= 1
            skip(f"job type {job_type!r}", "not supported", path=path, where=jwhere)
    state = LabelState.ANNOTATED if anns else (LabelState.NULL if jobs else LabelState.MISSING)
    ref = ImageRef(file_name, width=size[0] if size else None, height=size[1] if size else None,
                   path=str(local or root / file_name), metadata={"source-ref": uri})
    return Sample(ref, tuple(anns), split=split, state=state)


def _confidence(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1 else None


def _boxes(value: Any, meta: dict[str, Any], classes: ClassMap, source: Source, *, path: Path,
           where: str) -> tuple[list[Annotation], tuple[int, int] | None]:
    if not isinstance(value, dict):
        raise FormatError("an object-detection label must be an object", path=path, where=where)
    size = None
    sizes = value.get("image_size")
    if isinstance(sizes, list) and sizes and isinstance(sizes[0], dict) and sizes[0].get("width"):
        size = (int(sizes[0]["width"]), int(sizes[0]["height"]))
    cmap = meta.get("class-map") or {}
    objects = meta.get("objects") or []
    out = []
    for i, a in enumerate(value.get("annotations") or []):
        awhere = f"{where} annotations[{i}]"
        if not isinstance(a, dict):
            raise FormatError("an annotation must be an object", path=path, where=awhere)
        cid = a.get("class_id")
        name = cmap.get(str(cid))
        if name is None:
            raise FormatError(f"class_id {cid!r} is not in the class-map", path=path, where=awhere)
        x, y, w, h = (number(a.get(k), path=path, where=awhere, what=f"`{k}`") for k in ("left", "top", "width", "height"))
        if w < 0 or h < 0:
            raise FormatError(f"negative box size {w}×{h}", path=path, where=awhere)
        obj = objects[i] if i < len(objects) and isinstance(objects[i], dict) else {}
        out.append(Annotation(_class(classes, str(name), cid), Box.from_xywh(x, y, w, h), source=source,
                              confidence=_confidence(obj.get("confidence"))))
    return out, size


def _segmentation(value: Any, meta: dict[str, Any], classes: ClassMap, source: Source, root: Path, *,
                  path: Path, where: str) -> tuple[list[Annotation], tuple[int, int] | None]:
    from PIL import Image, UnidentifiedImageError

    if not isinstance(value, str):
        raise FormatError("a semantic-segmentation label must be the URI of the mask PNG", path=path, where=where)
    mask_file = find_local(root, value, folders=("", "masks", "annotations", "images"))
    if mask_file is None:
        raise ImageError(f"label mask {value!r} not found next to the manifest", path=path, hint=where)
    try:
        with Image.open(mask_file) as im:
            rgb = np.array(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"not a readable PNG ({e})", path=mask_file) from None
    cmap = meta.get("internal-color-map") or {}
    out = []
    for cid, entry in sorted(cmap.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0):
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("class-name", ""))
        color = hex_color(entry.get("hex-color"))
        if not name or color is None:
            raise FormatError(f"internal-color-map entry {cid!r} needs class-name and hex-color", path=path,
                              where=where)
        if name.upper() == BACKGROUND:
            continue
        hit = np.all(rgb == np.array(color, dtype=np.uint8), axis=2)
        if not hit.any():
            _class(classes, name, cid)
            continue
        out.append(Annotation(_class(classes, name, cid), Mask.from_array(hit.astype(np.uint8)),
                              attributes={"semantic": True}, source=source,
                              confidence=_confidence(entry.get("confidence"))))
    return out, (int(rgb.shape[1]), int(rgb.shape[0]))


# ---------------------------------------------------------------- write


class _Manifest:
    def __init__(self, final: Path) -> None:
        self.final = final
        self.partial = final.with_name(final.name + ".partial")
        self.out: IO[bytes] = open(self.partial, "wb")

    def close(self) -> None:
        self.out.close()
        self.partial.replace(self.final)

    def abort(self) -> None:
        self.out.close()
        self.partial.unlink(missing_ok=True)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = WriteReport(FORMAT, str(out))
    book = ClassMap(list(classes)) if classes is not None else ClassMap()
    names = UniqueNames()
    manifests: dict[str | None, _Manifest] = {}
    date = datetime.datetime.now(datetime.UTC).replace(tzinfo=None).isoformat()
    try:
        for sample in samples:
            m = manifests.get(sample.split)
            if m is None:
                m = manifests[sample.split] = _Manifest(out / (f"{sample.split}.manifest" if sample.split else MANIFEST))
            ref = with_size(sample.image)
            name = names(safe_name(ref.file_name))
            if place_image(ref, out / "images" / name, images):
                report.files += 1
            line = _line_out(sample, ref, name, book, report, out, date)
            m.out.write(orjson.dumps(line) + b"\n")
            report.images += 1
        if not manifests:
            manifests[None] = _Manifest(out / MANIFEST)
        for m in manifests.values():
            m.close()
    except BaseException:
        for m in manifests.values():
            m.abort()
        raise
    return report


def _id(book: ClassMap, name: str) -> int:
    if name not in book:
        book.add(name)
    return book[name].id


def _line_out(sample: Sample, ref: ImageRef, name: str, book: ClassMap, report: WriteReport, out: Path,
              date: str) -> dict[str, Any]:
    uri = ref.metadata.get("source-ref")
    line: dict[str, Any] = {"source-ref": uri if isinstance(uri, str) and basename(uri) == Path(name).name
                            else f"images/{name}"}
    human = "no" if any(a.source is Source.MODEL for a in sample.annotations) else "yes"
    common = {"human-annotated": human, "creation-date": date}
    boxes: list[tuple[Annotation, Box]] = []
    masks: list[Annotation] = []
    labels: list[Annotation] = []
    for ann in sample.annotations:
        g = ann.geometry
        if ann.crowd:
            report.drop("crowd flag", "Ground Truth manifests have no crowd flag")
        if ann.track_id is not None:
            report.drop("track id", "Ground Truth image jobs have no tracks")
        if any(k != "semantic" for k in ann.attributes):
            report.drop("attributes", "Ground Truth job outputs hold no attributes")
        if isinstance(g, Label):
            labels.append(ann)
        elif isinstance(g, Mask):
            masks.append(ann)
        elif isinstance(g, Keypoints):
            report.drop("keypoints", "Ground Truth has no keypoint job output")
        elif isinstance(g, Box):
            boxes.append((ann, g))
        elif isinstance(g, RotatedBox | Polygon):
            report.converted[f"{kind(g)} -> box"] += 1
            boxes.append((ann, g.bounds()))
    if boxes or not (masks or labels):
        cmap: dict[str, str] = {}
        entries, objects = [], []
        for ann, b in boxes:
            cid = _id(book, ann.label)
            cmap[str(cid)] = ann.label
            entries.append({"class_id": cid, "left": b.x0, "top": b.y0, "width": b.width, "height": b.height})
            objects.append({"confidence": ann.confidence} if ann.confidence is not None else {})
            report.annotations["box"] += 1
        if boxes or sample.state is not LabelState.MISSING:
            line["bounding-box"] = {"image_size": [{"width": ref.width, "height": ref.height, "depth": 3}],
                                    "annotations": entries}
            line["bounding-box-metadata"] = {"objects": objects, "class-map": cmap, "type": OD, **common,
                                             "job-name": "labeling-job/bounding-box"}
    if masks:
        line.update(_semantic(masks, ref, name, book, report, out, common))
    if len(labels) == 1:
        ann = labels[0]
        line["classification"] = _id(book, ann.label)
        line["classification-metadata"] = {"class-name": ann.label, "type": CLS, **common,
                                           "job-name": "labeling-job/classification",
                                           **({"confidence": ann.confidence} if ann.confidence is not None else {})}
        report.annotations["label"] += 1
    elif labels:
        ids = [_id(book, a.label) for a in labels]
        line["classification-multi-label"] = ids
        line["classification-multi-label-metadata"] = {
            "class-map": {str(i): a.label for i, a in zip(ids, labels, strict=True)},
            "confidence-map": {str(i): a.confidence for i, a in zip(ids, labels, strict=True)
                               if a.confidence is not None},
            "type": MULTI, **common, "job-name": "labeling-job/classification-multi-label"}
        report.annotations["label"] += len(labels)
    return line


def _semantic(masks: list[Annotation], ref: ImageRef, name: str, book: ClassMap, report: WriteReport, out: Path,
              common: dict[str, str]) -> dict[str, Any]:
    from PIL import Image

    W, H = int(ref.width or 0), int(ref.height or 0)
    order: list[str] = []
    for a in masks:
        _id(book, a.label)
        if a.label not in order:
            order.append(a.label)
    order.sort(key=lambda n: book.index(n))
    colors: dict[str, tuple[int, int, int]] = {}
    used = {(255, 255, 255)}
    for n in order:
        rgb = hex_color(book.color(n)) or (0, 0, 0)
        k = 0
        while rgb in used:
            k += 1
            rgb = hex_color(default_color(book.index(n) + 97 * k)) or (0, 0, 0)
        used.add(rgb)
        colors[n] = rgb
    canvas = np.full((H, W, 3), 255, dtype=np.uint8)
    per_class: dict[str, int] = {}
    for a in masks:
        g = a.geometry
        assert isinstance(g, Mask)
        if (g.width, g.height) != (W, H):
            report.drop("mask", f"mask size {g.width}×{g.height} is not the image's {W}×{H}")
            continue
        canvas[g.to_array() > 0] = colors[a.label]
        per_class[a.label] = per_class.get(a.label, 0) + 1
        report.annotations["mask"] += 1
    for label, count in per_class.items():
        semantic = [a for a in masks if a.label == label]
        if count > 1 or not all(a.attributes.get("semantic") for a in semantic):
            report.converted["mask -> semantic class mask (instances merged)"] += count
    mask_name = f"masks/{Path(name).with_suffix('.png').as_posix()}"
    (out / mask_name).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas, "RGB").save(out / mask_name)
    cmap: dict[str, Any] = {"0": {"class-name": BACKGROUND, "hex-color": "#ffffff"}}
    for i, n in enumerate(order, start=1):
        conf = [a.confidence for a in masks if a.label == n and a.confidence is not None]
        cmap[str(i)] = {"class-name": n, "hex-color": "#{:02x}{:02x}{:02x}".format(*colors[n]),
                        **({"confidence": min(conf)} if conf else {})}
    return {"semantic-segmentation-ref": mask_name,
            "semantic-segmentation-ref-metadata": {"internal-color-map": cmap, "type": SEG, **common,
                                                   "job-name": "labeling-job/semantic-segmentation"}}
