"""VoTT (Microsoft Visual Object Tagging Tool 2.x) JSON export.

Reference: https://github.com/microsoft/VoTT (README "Export Labels", and the project model in
`src/models/applicationState.ts`: IAssetMetadata {asset, regions}, IRegion {id, type, tags,
boundingBox {height, width, left, top}, points [{x, y}]}, AssetState 0 NotVisited, 1 Visited,
2 Tagged). The JSON exporter (`src/providers/export/vottJson.ts` @ 1c20bfe3) writes
`vott-json-export/<project>-export.json` (the project name's first space as `-`): the project, less its
connections and export format, with an ``assets`` object keyed by asset id (each {asset, regions, version};
video roots left out, their frames kept), 4-space indented, ``assets`` last; with includeImages it copies the
images beside it as ``asset.name``.

Coordinates are image pixels (continuous, top-left origin), kept as they are.

    RECTANGLE / SQUARE          Box from ``boundingBox``
    POLYGON                     Polygon from ``points``
    POINT                       Keypoints, one visible point
    POLYLINE                    Polyline (at least 2 points)
A region with several tags is one annotation per tag (as VoTT's CSV exporter writes one row per tag),
sharing the attribute ``vott_region`` (the region id); a region without a tag is skipped (counted in the
report's ``skipped``; ``--strict`` refuses it). Classes are the
project's ``tags`` in order (ids 0..n-1, colours kept), plus any tag only found on regions.
State: Tagged with regions → ANNOTATED; Visited (or Tagged without regions) → NULL; NotVisited →
MISSING. Images are looked up beside the JSON by asset name, then by the asset's `file:` path.
Video frames (type 3, VideoFrame: `<video>#t=<seconds>` with a `parent` and a `timestamp`) are read as the
images VoTT writes for them with "Include images" (htmlFileReader.ts `getAssetFrameImage` @ 008c7f51 appends
``.jpg`` to the asset's name before the exporter writes ``vott-json-export/<name>`` and the JSON:
``video.mp4#t=2.5.jpg``), never the video its `path` names; their timestamp is kept in
``ImageRef.metadata["vott_timestamp"]``. A frame whose image is not beside the export (exported without
"Include images") is refused naming the asset (quarantined on import; with ``--images none`` it is read
without a file: the JSON gives its size).

Writing: `out/vott-json-export/visionloop-export.json` (assets streamed, tags written last) with
the images beside it. Rotated boxes and masks become polygons (masks: outer contours, tolerance
0), multi-part polygons one region per part, multi-point keypoints one POINT per labelled point:
counted as converted. VoTT regions hold tags only: whole-image labels, other attributes,
confidence, crowd flags and track ids are dropped (counted), as are splits.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import (
    Box,
    Keypoints,
    Label,
    Mask,
    Polygon,
    Polyline,
    RotatedBox,
    mask_to_polygon,
)
from visionloop.core.geometry import kind as kind_of
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._labeltools import (
    UniqueNames,
    find_local,
    hex_color,
    iter_json,
    iter_json_object,
    number,
    relative_or_name,
)
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    images_are_optional,
    open_text_bytes,
    place_image,
    quarantine,
    safe_name,
    skip,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "vott"
EXPORT_DIR = "vott-json-export"
SHAPE_ATTR = "vott_shape"
EXTRA = "extra_labels"  # older reads: a region's tags after the first (still written back as tags)
REGION_ATTR = "vott_region"  # the region id shared by the annotations of one region with several tags
_STATES = {0: LabelState.MISSING, 1: LabelState.NULL, 2: LabelState.ANNOTATED}


def _json_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() == ".json" else None
    if not path.is_dir():
        return None
    for folder in (path, path / EXPORT_DIR):
        found = sorted(folder.glob("*-export.json")) if folder.is_dir() else []
        if found:
            return found[0]
    return None


# keys of VoTT's IProject that come before `tags` in every export (vottJson.ts spreads the project, so its key
# order is the project's: name, securityToken, [connections,] videoSettings, tags, ..., assets last)
_PROJECT_KEYS = (b'"securityToken"', b'"videoSettings"')


def _looks_like_vott(data: bytes) -> bool:
    """The head of a VoTT export. `assets` comes last, after every tag (4-space indented: ~75 bytes a tag), so a
    project with a hundred tags or more has none in the head: the project keys before the tags decide then."""
    if not data.lstrip().startswith(b"{"):
        return False
    if b'"name"' in data and any(k in data for k in _PROJECT_KEYS):
        return True
    return b'"assets"' in data and (b'"boundingBox"' in data or b'"regions"' in data
                                    or b'"activeLearningSettings"' in data)


def detect(path: Path) -> Detection:
    f = _json_file(Path(path))
    if f is None:
        return Detection.no("no <project>-export.json (or vott-json-export/)")
    with open_text_bytes(f) as handle:
        data = handle.read(8192)
    if not _looks_like_vott(data):
        return Detection.no(f"{f.name} is not a VoTT project export (no assets/regions)")
    return Detection(0.9, f"{f.name} is a VoTT JSON export")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    f = _json_file(path)
    if f is None:
        raise FormatError("no VoTT JSON export here", path=path, hint="expected vott-json-export/<project>-export.json")
    classes = ClassMap()
    for i, tag in enumerate(iter_json(f, "tags.item")):
        if not isinstance(tag, dict) or not tag.get("name"):
            raise FormatError("a tag needs a `name`", path=f, where=f"tags[{i}]")
        color = tag.get("color")
        rgb = hex_color(color) if isinstance(color, str) else None
        classes.add(str(tag["name"]), color="#{:02x}{:02x}{:02x}".format(*rgb) if rgb else None)

    def samples() -> Iterator[Sample]:
        for key, entry in iter_json_object(f, "assets"):
            sample = _asset(key, entry, f, split)
            if sample is None:  # a video frame whose image is not in the export (quarantined)
                continue
            for a in sample.annotations:
                if a.label not in classes:
                    classes.add(a.label)
            yield sample

    return Reader(classes, samples, source=path)


def parse_region(r: Any, *, path: Path, where: str) -> list[Annotation]:
    """One annotation per tag of the region (VoTT's CSV exporter writes one row per tag too); several share
    the attribute `vott_region` (the region's id) so the writer puts them back in one region. A region without
    a tag has no class: skipped (counted)."""
    if not isinstance(r, dict):
        raise FormatError("a region must be an object", path=path, where=where)
    tags = list(dict.fromkeys(str(t) for t in r.get("tags") or []))
    if not tags:
        skip("region", "no tag (no class)", path=path, where=where)
        return []
    one = _parse_shape(r, tags[0], path=path, where=where)
    if len(tags) == 1:
        return [one]
    region = str(r.get("id") or where)
    attributes = {**one.attributes, REGION_ATTR: region}
    return [replace(one, label=t, attributes=attributes) for t in tags]


def _parse_shape(r: dict[str, Any], tag: str, *, path: Path, where: str) -> Annotation:
    tags = [tag]
    kind = str(r.get("type", "RECTANGLE")).upper()
    attributes: dict[str, Any] = {}

    def pts() -> list[tuple[float, float]]:
        raw = r.get("points")
        if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
            raise FormatError("`points` must be a list of {x, y}", path=path, where=where)
        return [(number(p.get("x"), path=path, where=where, what="point x"),
                 number(p.get("y"), path=path, where=where, what="point y")) for p in raw]

    try:
        if kind in ("RECTANGLE", "SQUARE"):
            bb = r.get("boundingBox")
            if not isinstance(bb, dict):
                raise FormatError("a rectangle needs a `boundingBox`", path=path, where=where)
            box = Box.from_xywh(*(number(bb.get(k), path=path, where=where, what=f"boundingBox.{k}")
                                  for k in ("left", "top", "width", "height")))
            return Annotation(tags[0], box, attributes=attributes)
        if kind == "POLYGON":
            p = pts()
            if len(p) < 3:
                raise FormatError(f"a polygon needs at least 3 points, got {len(p)}", path=path, where=where)
            return Annotation(tags[0], Polygon.from_points(p), attributes=attributes)
        if kind == "POLYLINE":
            p = pts()
            if len(p) < 2:
                raise FormatError(f"a polyline needs at least 2 points, got {len(p)}", path=path, where=where)
            return Annotation(tags[0], Polyline.from_points(p), attributes=attributes)
        if kind == "POINT":
            p = pts()
            if not p:
                raise FormatError("no points", path=path, where=where)
            return Annotation(tags[0], Keypoints(tuple(v for x, y in p for v in (x, y, 2.0))), attributes=attributes)
    except ValueError as e:
        raise FormatError(f"impossible region ({e})", path=path, where=where) from None
    raise FormatError(f"unknown region type {r.get('type')!r}", path=path, where=where)


def _asset(key: str, entry: Any, path: Path, split: str | None) -> Sample | None:
    where = f"assets[{key!r}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("asset"), dict):
        raise FormatError("an asset entry needs an `asset` object", path=path, where=where)
    asset = entry["asset"]
    name = str(asset.get("name") or "")
    if not name:
        raise FormatError("the asset has no `name`", path=path, where=where)
    regions = entry.get("regions") or []
    if not isinstance(regions, list):
        raise FormatError("`regions` must be a list", path=path, where=where)
    anns = [a for i, r in enumerate(regions) for a in parse_region(r, path=path, where=f"{where} regions[{i}]")]
    root = path.parent
    size = asset.get("size") if isinstance(asset.get("size"), dict) else {}
    w, h = size.get("width"), size.get("height")
    if is_video_frame(asset, name):
        local = find_local(root, frame_image_name(name))
        if local is None:
            if not (images_are_optional() and w and h):
                quarantine(frame_not_exported(name, asset, path=path, where=where))
                return None
            ref = ImageRef(frame_image_name(name), width=int(w), height=int(h), path=None,
                           metadata=_asset_meta(asset, key))
            return Sample(ref, tuple(anns), split=split, state=_state(asset, anns))
    else:
        local = find_local(root, name) or (find_local(root, str(asset["path"])) if asset.get("path") else None)
    file_name = relative_or_name(local, root, name)
    ref = ImageRef(file_name, width=int(w) if w else None, height=int(h) if h else None,
                   path=str(local or root / file_name), metadata=_asset_meta(asset, key))
    return Sample(ref, tuple(anns), split=split, state=_state(asset, anns))


def _asset_meta(asset: dict[str, Any], key: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"vott_id": asset.get("id", key)}
    if asset.get("path"):
        meta["vott_path"] = asset["path"]
    if asset.get("timestamp") is not None:
        meta["vott_timestamp"] = asset["timestamp"]
    return meta


def _state(asset: dict[str, Any], anns: list[Annotation]) -> LabelState:
    state = _STATES.get(asset.get("state", 2), LabelState.NULL)
    if anns:
        return LabelState.ANNOTATED
    return LabelState.NULL if state is LabelState.ANNOTATED else state


# VoTT's video frames (applicationState.ts AssetType.VideoFrame = 3): an asset named `<video>#t=<seconds>` (its
# path the video's with that fragment, `parent` the video asset, `timestamp` the seconds). The exporters write its
# image only with "Include images": HtmlFileReader.getAssetFrameImage draws the frame and appends ".jpg" to the
# asset's name first (unless it ends with .jpg already), so the image beside the export and the name in the JSON /
# the CSV's `image` are `<video>#t=<seconds>.jpg`; without it the name stays `<video>#t=<seconds>` and no file.
VIDEO_FRAME = 3
_FRAME = re.compile(r"#t=[0-9.]+(?:\.jpg)?$", re.IGNORECASE)


def is_video_frame(asset: dict[str, Any] | None, name: str) -> bool:
    """Whether an asset (a JSON export's; None for a CSV row, which gives its name only) is a video frame."""
    if asset is not None and "type" in asset:
        return asset.get("type") == VIDEO_FRAME or isinstance(asset.get("parent"), dict)
    return _FRAME.search(name) is not None


def frame_image_name(name: str) -> str:
    """The file VoTT writes a video frame's image to (getAssetFrameImage: the name + ".jpg")."""
    return name if name.lower().endswith(".jpg") else name + ".jpg"


def frame_not_exported(name: str, asset: dict[str, Any] | None, *, path: Path, where: str) -> FormatError:
    """The error for a video frame whose image is not beside the export (exported without "Include images")."""
    parent = asset.get("parent") if asset else None
    video = parent.get("name") if isinstance(parent, dict) and parent.get("name") else name.split("#t=")[0]
    at = asset.get("timestamp") if asset and asset.get("timestamp") is not None else name.split("#t=")[-1]
    at = str(at).removesuffix(".jpg")
    hint = ('export again from VoTT with "Include images" on: it writes each frame beside the export as '
            "<video>#t=<seconds>.jpg")
    if asset is not None:
        hint += "; or pass --images none to convert the annotations alone"
    return FormatError(f"video frame {name!r} ({video} at {at} s): its image {frame_image_name(name)!r} is not "
                       "beside the export", path=path, where=where, hint=hint)


# ---------------------------------------------------------------- write


def shape_regions(ann: Annotation, report: WriteReport) -> list[tuple[str, Box, list[tuple[float, float]]]]:
    """(VoTT type, bounding box, points) for one annotation; Labels give none (dropped)."""
    g = ann.geometry
    if isinstance(g, Label):
        report.drop("label", "VoTT has no whole-image tags")
        return []
    if isinstance(g, Box):
        report.annotations["box"] += 1
        return [("RECTANGLE", g, [(g.x0, g.y0), (g.x1, g.y0), (g.x1, g.y1), (g.x0, g.y1)])]
    if isinstance(g, RotatedBox):
        report.converted["rotated_box -> polygon"] += 1
        g = Polygon.from_points(list(g.corners()))
    if isinstance(g, Mask):
        p = mask_to_polygon(g)
        if p is None:
            report.drop("mask", "empty mask")
            return []
        report.converted["mask -> polygon (tolerance 0)"] += 1
        g = p
    if isinstance(g, Polygon):
        if len(g.rings) > 1:
            report.converted[f"polygon with {len(g.rings)} parts -> {len(g.rings)} polygons"] += 1
        out = []
        for ring in g.rings:
            points = list(zip(ring[0::2], ring[1::2], strict=True))
            out.append(("POLYGON", Polygon((ring,)).bounds(), points))
            report.annotations["polygon"] += 1
        return out
    if isinstance(g, Polyline):
        report.annotations["polyline"] += 1
        return [("POLYLINE", g.bounds(), g.xy())]
    if isinstance(g, Keypoints):
        pts = [(x, y) for x, y, v in zip(g.points[0::3], g.points[1::3], g.points[2::3], strict=True) if v > 0]
        if len(pts) != g.count or any(v != 2 for v in g.points[2::3] if v > 0):
            report.converted["keypoints visibility -> visible points"] += 1
        if not pts:
            report.drop("keypoints", "no labelled points")
            return []
        report.annotations["keypoints"] += 1
        if ann.attributes.get(SHAPE_ATTR) == "polyline" and len(pts) >= 2:
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            return [("POLYLINE", Box(min(xs), min(ys), max(xs), max(ys)), pts)]
        if len(pts) > 1:
            report.converted[f"keypoints ({len(pts)} points) -> {len(pts)} points"] += 1
        return [("POINT", Box(x, y, x, y), [(x, y)]) for x, y in pts]
    report.drop(type(g).__name__, "unsupported geometry")  # pragma: no cover
    return []  # pragma: no cover


def note_losses(ann: Annotation, report: WriteReport, what: str) -> None:
    if any(k not in (EXTRA, SHAPE_ATTR, REGION_ATTR) for k in ann.attributes):
        report.drop("attributes", f"{what} holds tags only")
    if ann.confidence is not None:
        report.drop("confidence", f"{what} has no score field")
    if ann.crowd:
        report.drop("crowd flag", f"{what} has no crowd flag")
    if ann.track_id is not None:
        report.drop("track id", f"{what} has no tracks")


def tags_of(ann: Annotation) -> list[str]:
    extra = ann.attributes.get(EXTRA)
    return [ann.label] + ([str(x) for x in extra] if isinstance(extra, list) else [])


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    folder = out / EXPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    report = WriteReport(FORMAT, str(out))
    book = ClassMap(list(classes)) if classes is not None else ClassMap()
    names = UniqueNames()
    final, partial = folder / "visionloop-export.json", folder / "visionloop-export.json.partial"
    handle: IO[bytes] = open(partial, "wb")
    try:
        handle.write(b'{"name":"visionloop","securityToken":"visionloop","videoSettings":{"frameExtractionRate":15},'
                     b'"version":"2.2.0","assets":{')
        region_no = 0
        for n, sample in enumerate(samples):
            ref = with_size(sample.image)
            name = names(safe_name(ref.file_name))
            if place_image(ref, folder / name, images):
                report.files += 1
            if sample.split:
                report.drop("split", "VoTT has no splits")
            regions: list[dict[str, Any]] = []
            shared: dict[Any, tuple[Any, dict[str, Any]]] = {}  # vott_region -> (geometry, its region)
            for ann in sample.annotations:
                note_losses(ann, report, "VoTT")
                for t in tags_of(ann):
                    if t not in book:
                        book.add(t)
                rid = ann.attributes.get(REGION_ATTR)
                if rid is not None and rid in shared and shared[rid][0] == ann.geometry:
                    # another tag of one region with several (read as one annotation per tag): one region again
                    region = shared[rid][1]
                    region["tags"] += [t for t in tags_of(ann) if t not in region["tags"]]
                    report.annotations[kind_of(ann.geometry)] += 1
                    continue
                for kind, bb, pts in shape_regions(ann, report):
                    region_no += 1
                    # a region read with several tags keeps its id (unique in the asset), so a round trip is stable
                    keep = rid is not None and rid not in shared and not any(r["id"] == str(rid) for r in regions)
                    region = {"id": str(rid) if keep else f"r{region_no}", "type": kind, "tags": tags_of(ann),
                              "boundingBox": {"height": bb.height, "width": bb.width, "left": bb.x0, "top": bb.y0},
                              "points": [{"x": x, "y": y} for x, y in pts]}
                    regions.append(region)
                    if rid is not None:
                        shared[rid] = (ann.geometry, region)
            asset_id = hashlib.md5(f"file:{name}".encode()).hexdigest()
            state = 2 if regions else (0 if sample.state is LabelState.MISSING else 1)
            asset = {"format": Path(name).suffix.lstrip(".").lower(), "id": asset_id, "name": name,
                     "path": f"file:{name}", "size": {"width": ref.width, "height": ref.height}, "state": state,
                     "type": 1}
            entry = {"asset": asset, "regions": regions, "version": "2.2.0"}
            handle.write((b"," if n else b"") + orjson.dumps(asset_id) + b":" + orjson.dumps(entry))
            report.images += 1
        tags = [{"name": c.name, "color": book.color(c.name)} for c in book]
        handle.write(b'},"tags":' + orjson.dumps(tags) + b"}\n")
        handle.close()
        partial.replace(final)
    except BaseException:
        handle.close()
        partial.unlink(missing_ok=True)
        raise
    return report
