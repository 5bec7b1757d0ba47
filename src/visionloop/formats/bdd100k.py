"""BDD100K / Scalabel JSON: ``labels/det_20/det_<split>.json`` + ``images/100k/<split>/<name>``.

Reference: https://doc.bdd100k.com/format.html and the Scalabel format it is written in,
https://doc.scalabel.ai/format.html . A file is a list of frames (or ``{"frames": [...]}``)::

    [{"name": "b1c66a42-6f7d68ca.jpg", "attributes": {"weather": "overcast", "scene": "city street",
      "timeofday": "daytime"}, "timestamp": 10000,
      "labels": [{"id": "0", "category": "traffic sign",
                  "attributes": {"occluded": false, "truncated": false, "trafficLightColor": "NA"},
                  "box2d": {"x1": 1000.69, "y1": 281.99, "x2": 1040.42, "y2": 326.91}},
                 {"id": "1", "category": "area/drivable", "poly2d": [{"vertices": [[x, y], ...],
                  "types": "LLLC CC...", "closed": true}]}]}]

Pixel convention of ``box2d``: x1, y1, x2, y2 are *inclusive* pixel indices, 0-based: the official
toolkit converts to COCO as ``[x1, y1, x2 - x1 + 1, y2 - y1 + 1]`` (scalabel/label/transforms.py,
``box2d_to_bbox``) and back with ``mask_to_box2d`` (x2 = the last pixel column). So

    read:   Box(x1, y1, x2 + 1, y2 + 1)        write:  x2 = x1' - 1,  y2 = y1' - 1

``poly2d`` vertices are continuous coordinates. ``types`` marks each vertex ``L`` (a polygon vertex) or
``C`` (a control point of a cubic Bezier curve). The data model has no curves: the vertices, control
points included, are kept in order as the polygon's points (the curve is approximated by its control
polygon, which encloses it), and when any ``C`` is present the types are kept in
``attributes["bdd100k_types"]`` (one string per ring) so that the writer restores them exactly.
Several closed poly2d of one label are the rings of one Polygon. One open poly2d (``closed: false``: a
lane marking, a drivable-area edge) is a Polyline, its ``C`` vertices kept the same way (the line runs
through the curve's control points). ``rle`` (Scalabel's COCO compressed RLE, used by the segmentation
labels) becomes a Mask.

What has no canonical geometry — a label with several open poly2d or open and closed ones mixed, ``box3d``,
``graph``, labels with nothing drawable — is kept verbatim in ``ImageRef.metadata["bdd100k_unsupported"]``,
counted as skipped, and written back by this writer.

Other mappings: a label's ``attributes`` are the annotation's attributes (``crowd: true`` becomes
``Annotation.crowd``), ``score`` the confidence, an integer ``id`` the ``track_id`` (BDD's instance id,
the track id in the tracking sets; a non-integer id is kept as ``attributes["bdd100k_id"]``), and
``manualShape`` / ``manualAttributes`` / ``index`` attributes of those names. The frame's
``attributes`` (weather, scene, timeofday) and ``url``, ``videoName``, ``frameIndex``, ``timestamp``,
``intrinsics``, ``extrinsics`` go to ``ImageRef.metadata`` under their own names. Classes: for
``det_*.json`` files the ten detection classes with the toolkit's ids (det.toml: pedestrian 1 ...
traffic sign 10); other names get the next free id as they appear. A frame without ``labels`` is
NULL; images are looked up in ``images/100k/<split>/`` (``images/track/<split>/<videoName>/`` for
tracking frames), ``images/10k/<split>/``, then beside the JSON. Split = the ``<split>`` in
``<task>_<split>.json``. Streaming: ijson, one frame at a time.

Writing: ``labels/det_20/det_<split>.json`` (split None → ``default``) and images under
``images/100k/<split>/`` (base names, made unique). ``x2``/``y2`` are rounded to 9 decimals so that
the ``+ 1`` / ``- 1`` of the convention does not add float noise. Whole-image labels and keypoints are dropped
(counted); rotated boxes become closed 4-vertex poly2d (counted); every other metadata key is written
as a frame attribute.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

import orjson

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, Polyline, RotatedBox, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._jsonstream import UniqueNames, head, iter_items, jsonable
from visionloop.formats.base import Detection, ImageMode, Reader, WriteReport, place_image, safe_name

log = logging.getLogger(__name__)

FORMAT = "bdd100k"
DET_CLASSES: tuple[str, ...] = (
    "pedestrian", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle", "traffic light",
    "traffic sign",
)
UNSUPPORTED_KEY = "bdd100k_unsupported"
TYPES_KEY = "bdd100k_types"
ID_KEY = "bdd100k_id"
DEFAULT_SPLIT = "default"
_FRAME_FIELDS = ("url", "videoName", "frameIndex", "timestamp", "intrinsics", "extrinsics")
_LABEL_FIELDS = ("manualShape", "manualAttributes", "index")
_TASK_FILE = re.compile(r"^(?P<task>.+?)_(?P<split>train|val|test|[^_]+)$")


# ---------------------------------------------------------------- detect


def _looks_bdd(data: bytes) -> bool:
    s = data.lstrip()
    if s.startswith(b"["):
        return b'"name"' in s and (b'"labels"' in s or b'"attributes"' in s)
    return s.startswith(b"{") and b'"frames"' in s and b'"name"' in s


def _json_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix.lower() == ".json" else []
    for folder in (path / "labels" / "det_20", path / "labels", path):
        if folder.is_dir():
            found = [p for p in sorted(folder.glob("*.json")) if p.is_file() and _looks_bdd(head(p))]
            if found:
                return found
    return []


def detect(path: Path) -> Detection:
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".json" or not _looks_bdd(head(path)):
            return Detection.no("not a BDD100K / Scalabel JSON list of frames")
        return Detection(0.9, f"{path.name} is a list of frames with labels")
    files = _json_files(path)
    if not files:
        return Detection.no("no BDD100K JSON (labels/det_20/det_<split>.json)")
    return Detection(0.9, f"{files[0].name} is a list of frames with labels")


# ---------------------------------------------------------------- read


def _task_split(f: Path) -> tuple[str, str | None]:
    m = _TASK_FILE.match(f.stem)
    if not m:
        return f.stem, None
    split = m.group("split")
    return m.group("task"), (None if split == DEFAULT_SPLIT else split)


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _json_files(path)
    if not files:
        raise FormatError("no BDD100K label file here", path=path, hint="expected labels/det_20/det_<split>.json")
    classes = ClassMap()
    if any(_task_split(f)[0].startswith("det") for f in files):
        for i, name in enumerate(DET_CLASSES, start=1):
            classes._insert(ClassInfo(name, i))

    def samples() -> Iterator[Sample]:
        for f in files:
            yield from _read_file(f, split or _task_split(f)[1], classes)

    return Reader(classes, samples, source=path)


def _root_of(f: Path) -> Path:
    parts = f.parent.parts
    if "labels" in parts:
        i = len(parts) - 1 - parts[::-1].index("labels")
        return Path(*parts[:i]) if i else Path(".")
    return f.parent


class _Images:
    def __init__(self, json_path: Path, split: str | None) -> None:
        self.root = _root_of(json_path)
        self.json_dir = json_path.parent
        self.split = _task_split(json_path)[1] or DEFAULT_SPLIT
        self.known: Path | None = None

    def resolve(self, name: str, video: str | None) -> Path:
        if video:
            p = self.root / "images" / "track" / self.split / video / name
            if p.is_file():
                return p
        if self.known is not None and (self.known / name).is_file():
            return self.known / name
        images = self.root / "images"
        for folder in (images / "100k" / self.split, images / "10k" / self.split, images / self.split, images,
                       self.json_dir / self.split, self.json_dir):
            if (folder / name).is_file():
                self.known = folder
                return folder / name
        return (self.known or images / "100k" / self.split) / name


def _read_file(path: Path, split: str | None, classes: ClassMap) -> Iterator[Sample]:
    prefix = "frames.item" if head(path).lstrip().startswith(b"{") else "item"
    images = _Images(path, split)
    skipped: Counter[str] = Counter()
    for i, frame in enumerate(iter_items(path, prefix)):
        yield _sample(frame, i, path, split, images, classes, skipped)
    if skipped:
        log.warning("%s: kept in ImageRef.metadata[%r] (no canonical geometry): %s", path, UNSUPPORTED_KEY,
                    ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())))


def _sample(frame: Any, i: int, path: Path, split: str | None, images: _Images, classes: ClassMap,
            skipped: Counter[str]) -> Sample:
    where = f"[{i}]"
    if not isinstance(frame, dict) or not isinstance(frame.get("name"), str) or not frame["name"]:
        raise FormatError("a frame needs a non-empty `name`", path=path, where=where)
    name = frame["name"]
    where = f"[{i}] (name {name!r})"
    attrs = frame.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise FormatError("frame `attributes` must be an object", path=path, where=where)
    metadata: dict[str, Any] = dict(attrs)
    for k in _FRAME_FIELDS:
        if frame.get(k) is not None:
            metadata[k] = frame[k]
    raw_labels = frame.get("labels") or []
    if not isinstance(raw_labels, list):
        raise FormatError("`labels` must be a list", path=path, where=where)
    anns: list[Annotation] = []
    unsupported: list[dict[str, Any]] = []
    for j, label in enumerate(raw_labels):
        lwhere = f"{where}.labels[{j}]"
        if not isinstance(label, dict) or not isinstance(label.get("category"), str) or not label["category"]:
            raise FormatError("a label needs a `category`", path=path, where=lwhere)
        try:
            ann = _annotation(label)
        except (TypeError, ValueError, KeyError) as e:
            raise FormatError(f"bad label: {e}", path=path, where=lwhere) from None
        if ann is None:
            unsupported.append(label)
            skipped["several open poly2d in one label" if label.get("poly2d")
                    else "label without box2d, poly2d or rle"] += 1
            continue
        classes.add(ann.label)
        anns.append(ann)
    if unsupported:
        metadata[UNSUPPORTED_KEY] = unsupported
    video = frame.get("videoName") if isinstance(frame.get("videoName"), str) else None
    image = images.resolve(name, video)
    ref = ImageRef(PurePosixPath(name).as_posix(), path=str(image.absolute()), metadata=metadata)
    return Sample(ref, tuple(anns), split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)


def _number(v: Any, what: str) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise ValueError(f"{what} must be a number, got {v!r}")
    return float(v)


def _annotation(label: dict[str, Any]) -> Annotation | None:
    attrs = dict(label.get("attributes") or {})
    crowd = attrs.get("crowd") is True
    if crowd:
        del attrs["crowd"]
    for k in _LABEL_FIELDS:
        if label.get(k) is not None:  # scalabel's io.save writes every unset field as null
            attrs[k] = label[k]
    track_id = None
    raw_id = label.get("id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        track_id = raw_id
    elif isinstance(raw_id, str) and re.fullmatch(r"-?\d+", raw_id) and str(int(raw_id)) == raw_id:
        track_id = int(raw_id)
    elif raw_id is not None:
        attrs[ID_KEY] = raw_id
    score = label.get("score")
    confidence = _number(score, "score") if score is not None else None
    declared = None
    box = label.get("box2d")
    if box is not None:
        if not isinstance(box, dict):
            raise ValueError("box2d must be {x1, y1, x2, y2}")
        x1, y1, x2, y2 = (_number(box.get(k), f"box2d.{k}") for k in ("x1", "y1", "x2", "y2"))
        declared = Box(x1, y1, x2 + 1, y2 + 1)
    geometry: Box | Polygon | Polyline | Mask | None = None
    polys = label.get("poly2d")
    if polys:
        if not isinstance(polys, list) or not all(isinstance(p, dict) for p in polys):
            raise ValueError("poly2d must be a list of {vertices, types, closed}")
        opened = sum(1 for p in polys if p.get("closed", True) is False)
        if opened and len(polys) > 1:
            return None  # several lines, or lines and areas, in one label: no one canonical geometry
        rings, types = [], []
        for p in polys:
            vertices = p.get("vertices")
            if not isinstance(vertices, list) or not all(isinstance(v, list) and len(v) == 2 for v in vertices):
                raise ValueError("poly2d vertices must be a list of [x, y]")
            t = p.get("types") or "L" * len(vertices)
            if not isinstance(t, str) or len(t) != len(vertices) or set(t) - {"L", "C"}:
                raise ValueError(f"poly2d types {t!r} must be one L or C per vertex ({len(vertices)})")
            rings.append(tuple(_number(c, "vertex") for v in vertices for c in v))
            types.append(t)
        if opened:
            geometry = Polyline(rings[0])
        else:
            geometry = Polygon(tuple(rings))
        if any("C" in t for t in types):
            attrs[TYPES_KEY] = types
    elif label.get("rle") is not None:
        rle = label["rle"]
        if not isinstance(rle, dict) or not isinstance(rle.get("counts"), str):
            raise ValueError("rle must be {counts: compressed RLE string, size: [h, w]}")
        h, w = (int(v) for v in rle["size"])
        geometry = Mask(rle["counts"].encode("ascii"), h, w)
    if geometry is None:
        if declared is None:
            return None
        geometry, declared = declared, None
    return Annotation(label["category"], geometry, attributes=attrs, confidence=confidence, track_id=track_id,
                      crowd=crowd, bbox=declared)


# ---------------------------------------------------------------- write


class _SplitFile:
    def __init__(self, out: Path, split: str) -> None:
        self.final = out / "labels" / "det_20" / f"det_{split}.json"
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.handle: IO[bytes] = open(self.partial, "wb")
        self.handle.write(b"[")
        self.image_dir = out / "images" / "100k" / split
        self.count = 0
        self.names = UniqueNames()

    def add(self, frame: dict[str, Any]) -> None:
        self.handle.write((b",\n" if self.count else b"") + orjson.dumps(frame))
        self.count += 1

    def close(self) -> None:
        self.handle.write(b"]\n")
        self.handle.close()
        self.partial.replace(self.final)

    def abort(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


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
            split = sample.split or DEFAULT_SPLIT
            sf = files.get(split)
            if sf is None:
                sf = files[split] = _SplitFile(out, split)
            ref = sample.image
            name = sf.names.claim(PurePosixPath(safe_name(ref.file_name)).name)
            if place_image(ref, sf.image_dir / name, images):
                report.files += 1
            frame: dict[str, Any] = {"name": name}
            meta = {k: v for k, v in ref.metadata.items() if k != UNSUPPORTED_KEY}
            frame["attributes"] = jsonable({k: v for k, v in meta.items() if k not in _FRAME_FIELDS})
            for k in _FRAME_FIELDS:
                if k in meta:
                    frame[k] = meta[k]
            labels = []
            used = {a.track_id for a in sample.annotations if a.track_id is not None}
            next_id = 0
            for ann in sample.annotations:
                label = _label(ann, report)
                if label is None:
                    continue
                if ann.track_id is not None:
                    label_id: Any = str(ann.track_id)
                elif isinstance(ann.attributes.get(ID_KEY), str):
                    label_id = ann.attributes[ID_KEY]
                else:
                    while next_id in used:
                        next_id += 1
                    used.add(next_id)
                    label_id = str(next_id)
                labels.append({"id": label_id, **label})
            for raw in ref.metadata.get(UNSUPPORTED_KEY) or ():
                if isinstance(raw, dict):
                    labels.append(jsonable(raw))
                    report.annotations["bdd100k raw label"] += 1
            if sample.state is LabelState.MISSING:
                report.converted["missing -> null (every frame is listed)"] += 1
            frame["labels"] = labels
            sf.add(frame)
            report.images += 1
        for sf in files.values():
            sf.close()
            report.files += 1
    except BaseException:
        for sf in files.values():
            sf.abort()
        raise
    return report


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def _label(ann: Annotation, report: WriteReport) -> dict[str, Any] | None:
    g = ann.geometry
    if isinstance(g, Keypoints | Label):
        report.drop(kind(g), "BDD100K holds boxes, polygons, lines and masks only")
        return None
    attrs = {k: v for k, v in ann.attributes.items() if k not in (TYPES_KEY, ID_KEY, *_LABEL_FIELDS)}
    if ann.crowd:
        attrs["crowd"] = True
    label: dict[str, Any] = {"category": ann.label, "attributes": jsonable(attrs)}
    for k in _LABEL_FIELDS:
        if k in ann.attributes:
            label[k] = ann.attributes[k]
    if ann.confidence is not None:
        label["score"] = ann.confidence
    box = g if isinstance(g, Box) else ann.bbox
    if box is not None:
        label["box2d"] = {"x1": _num(box.x0), "y1": _num(box.y0), "x2": _num(round(box.x1 - 1, 9)),
                          "y2": _num(round(box.y1 - 1, 9))}
    if isinstance(g, Polygon | RotatedBox):
        poly = Polygon.from_points(list(g.corners())) if isinstance(g, RotatedBox) else g
        if isinstance(g, RotatedBox):
            report.converted["rotated_box -> polygon"] += 1
        types = ann.attributes.get(TYPES_KEY)
        label["poly2d"] = []
        for r, ring in enumerate(poly.rings):
            n = len(ring) // 2
            t = types[r] if isinstance(types, list) and r < len(types) and isinstance(types[r], str) \
                and len(types[r]) == n else "L" * n
            label["poly2d"].append({"vertices": [[_num(x), _num(y)] for x, y in zip(ring[0::2], ring[1::2],
                                                                                    strict=True)],
                                    "types": t, "closed": True})
    elif isinstance(g, Polyline):
        types = ann.attributes.get(TYPES_KEY)
        t = types[0] if isinstance(types, list) and types and isinstance(types[0], str) \
            and len(types[0]) == g.count else "L" * g.count
        label["poly2d"] = [{"vertices": [[_num(x), _num(y)] for x, y in g.xy()], "types": t, "closed": False}]
    elif isinstance(g, Mask):
        label["rle"] = {"counts": g.counts.decode("ascii"), "size": [g.height, g.width]}
    report.annotations["polygon" if isinstance(g, RotatedBox) else kind(g)] += 1
    return label
