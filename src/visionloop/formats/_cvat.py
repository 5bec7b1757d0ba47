"""CVAT XML 1.1 pieces shared by `formats.cvat` (images) and `formats.cvat_video` (tracks).

Specification: https://docs.cvat.ai/docs/other/xml_format/ (was /docs/manual/advanced/xml_format/).
What each shape becomes, and back, is documented in `formats.cvat`.
"""

from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, Polyline, RotatedBox
from visionloop.core.sample import Annotation, Source
from visionloop.formats._labeltools import ellipse_polygon
from visionloop.formats.base import WriteReport, skip

log = logging.getLogger(__name__)

#: attribute that names the CVAT shape a Keypoints / Polygon came from: "points", "ellipse" (and "polyline" on
#: Keypoints read before visionloop had a Polyline type: still written back as a <polyline>)
SHAPE_ATTR = "cvat_shape"
#: annotation attributes that are CVAT shape fields, not <attribute> children
FIELD_ATTRS = ("occluded", "z_order", "group_id", SHAPE_ATTR)

_SOURCES = {"manual": Source.HUMAN, "semi-auto": Source.HUMAN, "consensus": Source.HUMAN,
            "auto": Source.MODEL, "file": Source.IMPORTED}
_SOURCE_OUT = {Source.HUMAN: "manual", Source.MODEL: "auto", Source.IMPORTED: "file"}


# ---------------------------------------------------------------- streaming the XML


def iter_top(path: Path) -> Iterator[ET.Element]:
    """Each child of <annotations> (<version>, <meta>, <image>, <track>, <tag>) once complete,
    cleared from memory after the caller is done with it."""
    try:
        context = ET.iterparse(path, events=("start", "end"))
        depth = 0
        root: ET.Element | None = None
        for event, elem in context:
            if event == "start":
                depth += 1
                if depth == 1:
                    root = elem
                    if elem.tag != "annotations":
                        raise FormatError(f"the root element is <{elem.tag}>, not <annotations>", path=path,
                                          hint="this is not a CVAT XML file")
                continue
            depth -= 1
            if depth == 1 and root is not None:
                yield elem
                root.clear()
    except ET.ParseError as e:
        line, column = e.position
        reason = re.sub(r": line \d+, column \d+$", "", str(e))
        raise FormatError(f"malformed XML ({reason})", path=path, where=f"line {line}, column {column + 1}") from None
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror or e})", path=path) from None


def sniff(path: Path, limit: int = 1 << 20) -> tuple[str, str | None] | None:
    """(kind, mode) of a CVAT XML from its head: kind is "image", "track" or "empty", mode the
    <mode> text. None when the file is not CVAT XML. Reads at most `limit` bytes."""
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
            if b"<annotations" not in data or b"<version>" not in data:
                return None
            while b"</meta>" not in data and len(data) < limit:
                chunk = f.read(65536)
                if not chunk:
                    break
                data += chunk
            after = data.split(b"</meta>", 1)[1] if b"</meta>" in data else b""
            if len(after) < 64:
                after += f.read(4096)
    except OSError:
        return None
    m = re.search(rb"<mode>\s*(\w+)\s*</mode>", data)
    mode = m.group(1).decode() if m else None
    first = re.search(rb"<(image|track|tag)[\s>/]", after)
    return (first.group(1).decode() if first else "empty"), mode


# ---------------------------------------------------------------- meta


@dataclass
class LabelSpec:
    name: str
    color: str | None = None
    type: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)  # name -> input_type
    parent: str | None = None
    svg: str | None = None


@dataclass
class Meta:
    labels: list[LabelSpec] = field(default_factory=list)
    size: int | None = None
    mode: str | None = None
    original_size: tuple[int, int] | None = None  # (width, height)
    start_frame: int = 0

    def classes(self) -> ClassMap:
        """Top-level labels in order, ids 0..n-1; a skeleton's points become keypoint names."""
        out = ClassMap()
        for spec in self.labels:
            if spec.parent is not None or spec.name in out:
                continue
            names = tuple(s.name for s in self.labels if s.parent == spec.name)
            color = spec.color if spec.color and re.fullmatch(r"#[0-9a-fA-F]{6}", spec.color) else None
            out.add(spec.name, color=color, keypoints=names, skeleton=_svg_edges(spec.svg, names))
        return out

    def elements(self, skeleton: str) -> list[str]:
        return [s.name for s in self.labels if s.parent == skeleton]

    def input_type(self, label: str, attribute: str) -> str | None:
        for spec in self.labels:
            if spec.name == label and attribute in spec.attributes:
                return spec.attributes[attribute]
        for spec in self.labels:
            if attribute in spec.attributes:
                return spec.attributes[attribute]
        return None


def parse_meta(el: ET.Element, path: Path) -> Meta:
    meta = Meta()
    task = el.find("task")
    scope = task if task is not None else el.find("project")
    if scope is None:
        scope = el
    size = scope.findtext("size")
    if size and size.strip().isdigit():
        meta.size = int(size)
    meta.mode = (scope.findtext("mode") or "").strip() or None
    start = scope.findtext("start_frame")
    if start and start.strip().isdigit():
        meta.start_frame = int(start)
    osz = scope.find("original_size")
    if osz is not None:
        w, h = osz.findtext("width"), osz.findtext("height")
        if w and h and w.strip().isdigit() and h.strip().isdigit() and int(w) > 0 and int(h) > 0:
            meta.original_size = (int(w), int(h))
    labels = scope.find("labels")
    if labels is None and task is None:
        labels = el.find(".//labels")
    for i, lab in enumerate(labels.findall("label") if labels is not None else []):
        name = (lab.findtext("name") or "").strip()
        if not name:
            raise FormatError("a label has no <name>", path=path, where=f"<meta> <labels> <label> {i + 1}")
        spec = LabelSpec(name, color=(lab.findtext("color") or "").strip() or None,
                         type=(lab.findtext("type") or "").strip() or None,
                         parent=(lab.findtext("parent") or "").strip() or None,
                         svg=lab.findtext("svg"))
        for attr in lab.iterfind("attributes/attribute"):
            an = (attr.findtext("name") or "").strip()
            if an:
                spec.attributes[an] = (attr.findtext("input_type") or "text").strip()
        meta.labels.append(spec)
    return meta


_SVG_NODE = re.compile(r"<circle\b[^>]*>")
_SVG_EDGE = re.compile(r"<line\b[^>]*>")


def _svg_attr(tag: str, name: str) -> str | None:
    m = re.search(rf'\b{name}="([^"]*)"', tag)
    return m.group(1) if m else None


def _svg_edges(svg: str | None, names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Skeleton edges as 1-based pairs into `names`, from CVAT's skeleton SVG."""
    if not svg or not names:
        return ()
    node_label: dict[str, str] = {}
    for tag in _SVG_NODE.findall(svg):
        node, label = _svg_attr(tag, "data-node-id"), _svg_attr(tag, "data-label-name")
        if node is not None and label is not None:
            node_label[node] = label
    edges = []
    for tag in _SVG_EDGE.findall(svg):
        a, b = _svg_attr(tag, "data-node-from"), _svg_attr(tag, "data-node-to")
        la, lb = node_label.get(a or ""), node_label.get(b or "")
        if la in names and lb in names:
            edges.append((names.index(la) + 1, names.index(lb) + 1))  # type: ignore[arg-type]
    return tuple(edges)


def skeleton_svg(names: tuple[str, ...], edges: tuple[tuple[int, int], ...]) -> str:
    """A CVAT skeleton SVG: the points on a circle, the edges as lines."""
    pos = []
    for i in range(len(names)):
        t = 2 * math.pi * i / max(len(names), 1)
        pos.append((50 + 40 * math.cos(t), 50 + 40 * math.sin(t)))
    parts = []
    for a, b in edges:
        if 1 <= a <= len(names) and 1 <= b <= len(names):
            (x1, y1), (x2, y2) = pos[a - 1], pos[b - 1]
            parts.append(f'<line x1="{x1:.2f}" y1="{y1:.2f}" x2="{x2:.2f}" y2="{y2:.2f}" stroke="black" '
                         f'data-type="edge" data-node-from="{a}" stroke-width="0.5" data-node-to="{b}"></line>')
    for i, name in enumerate(names, start=1):
        x, y = pos[i - 1]
        parts.append(f'<circle r="1.5" stroke="black" fill="#b3b3b3" cx="{x:.2f}" cy="{y:.2f}" stroke-width="0.1" '
                     f'data-type="element node" data-element-id="{i}" data-node-id="{i}" '
                     f'data-label-name={quoteattr(name)}></circle>')
    return "".join(parts)


# ---------------------------------------------------------------- reading shapes


def typed(text: str, input_type: str | None) -> Any:
    """An attribute value typed by its declared input_type (checkbox → bool, number → int/float)."""
    if input_type == "checkbox":
        return text.strip().lower() == "true"
    if input_type == "number":
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text
    return text


def _float(el: ET.Element, name: str, *, path: Path, where: str) -> float:
    raw = el.get(name)
    if raw is None:
        raise FormatError(f"<{el.tag}> has no `{name}`", path=path, where=where)
    try:
        v = float(raw)
    except ValueError:
        raise FormatError(f"`{name}` is {raw!r}, not a number", path=path, where=where) from None
    if not math.isfinite(v):
        raise FormatError(f"`{name}` is {raw!r}, not a finite number", path=path, where=where)
    return v


def _int(el: ET.Element, name: str, *, path: Path, where: str, default: int | None = None) -> int:
    raw = el.get(name)
    if raw is None:
        if default is not None:
            return default
        raise FormatError(f"<{el.tag}> has no `{name}`", path=path, where=where)
    try:
        return int(float(raw))
    except ValueError:
        raise FormatError(f"`{name}` is {raw!r}, not an integer", path=path, where=where) from None


def parse_points(text: str | None, *, path: Path, where: str) -> list[tuple[float, float]]:
    if not text or not text.strip():
        raise FormatError("`points` is empty", path=path, where=where)
    out = []
    for pair in text.strip().split(";"):
        xy = pair.split(",")
        try:
            if len(xy) != 2:
                raise ValueError
            x, y = float(xy[0]), float(xy[1])
        except ValueError:
            raise FormatError(f"`points` has {pair!r}, not an x,y pair", path=path, where=where) from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise FormatError(f"`points` has {pair!r}, not finite numbers", path=path, where=where)
        out.append((x, y))
    return out


def decode_mask(el: ET.Element, size: tuple[int, int] | None, *, path: Path, where: str) -> Mask:
    """CVAT's mask RLE: run lengths alternating from a run of 0s, row by row over the
    `width`×`height` rectangle at (`left`, `top`), into a full-image COCO RLE Mask."""
    if size is None:
        raise FormatError("a <mask> needs the image's width and height", path=path, where=where)
    W, H = size
    left, top = _int(el, "left", path=path, where=where), _int(el, "top", path=path, where=where)
    w, h = _int(el, "width", path=path, where=where), _int(el, "height", path=path, where=where)
    rle = el.get("rle") or ""
    try:
        counts = [int(c) for c in rle.replace(" ", "").split(",") if c != ""]
    except ValueError:
        raise FormatError("`rle` must be comma-separated integers", path=path, where=where) from None
    if w <= 0 or h <= 0 or any(c < 0 for c in counts) or sum(counts) != w * h:
        raise FormatError(f"`rle` covers {sum(counts)} pixels but the mask is {w}×{h} = {w * h}",
                          path=path, where=where)
    if left < 0 or top < 0 or left + w > W or top + h > H:
        raise FormatError(f"the mask rectangle ({left}, {top}, {w}×{h}) is outside the {W}×{H} image",
                          path=path, where=where)
    roi = np.repeat((np.arange(len(counts)) % 2).astype(np.uint8), counts).reshape(h, w)
    full = np.zeros((H, W), dtype=np.uint8)
    full[top:top + h, left:left + w] = roi
    return Mask.from_array(full)


def encode_mask(mask: Mask) -> tuple[list[int], int, int, int, int] | None:
    """(rle, left, top, width, height) of a mask's bounding rectangle, None when empty."""
    arr = mask.to_array()
    ys, xs = np.nonzero(arr)
    if ys.size == 0:
        return None
    top, bottom, left, right = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    roi = np.ascontiguousarray(arr[top:bottom + 1, left:right + 1]).ravel()
    change = np.flatnonzero(np.diff(roi)) + 1
    runs = np.diff(np.concatenate(([0], change, [roi.size]))).tolist()
    if roi[0]:
        runs = [0, *runs]
    return [int(r) for r in runs], left, top, right - left + 1, bottom - top + 1


@dataclass
class Context:
    """Where a shape is (for errors) and what it needs (image size, meta)."""

    path: Path
    where: str
    size: tuple[int, int] | None
    meta: Meta


def parse_shape(el: ET.Element, label: str, ctx: Context, *, source: str | None = None,
                group: str | None = None) -> Annotation | None:
    """One shape element as an Annotation; None for shapes we cannot hold (cuboids)."""
    path, where = ctx.path, ctx.where
    tag = el.tag
    attributes: dict[str, Any] = {}
    for a in el.findall("attribute"):
        name = a.get("name")
        if name:
            attributes[name] = typed(a.text or "", ctx.meta.input_type(label, name))
    if el.get("occluded") == "1":
        attributes["occluded"] = True
    z = _int(el, "z_order", path=path, where=where, default=0)
    if z:
        attributes["z_order"] = z
    g = int(float(group)) if group else _int(el, "group_id", path=path, where=where, default=0)
    if g:
        attributes["group_id"] = g
    src = _SOURCES.get((source or el.get("source") or "").strip(), Source.IMPORTED)
    try:
        geometry: Box | RotatedBox | Polygon | Polyline | Mask | Keypoints | Label
        if tag == "box":
            x0, y0 = _float(el, "xtl", path=path, where=where), _float(el, "ytl", path=path, where=where)
            x1, y1 = _float(el, "xbr", path=path, where=where), _float(el, "ybr", path=path, where=where)
            rotation = float(el.get("rotation") or 0.0)
            if rotation % 360:
                geometry = RotatedBox((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rotation)
            else:
                geometry = Box(x0, y0, x1, y1)
        elif tag == "polygon":
            pts = parse_points(el.get("points"), path=path, where=where)
            if len(pts) < 3:
                raise FormatError(f"a polygon needs at least 3 points, got {len(pts)}", path=path, where=where)
            geometry = Polygon.from_points(pts)
        elif tag == "polyline":
            pts = parse_points(el.get("points"), path=path, where=where)
            if len(pts) < 2:
                raise FormatError(f"a polyline needs at least 2 points, got {len(pts)}", path=path, where=where)
            geometry = Polyline.from_points(pts)
        elif tag == "points":
            pts = parse_points(el.get("points"), path=path, where=where)
            geometry = Keypoints(tuple(v for x, y in pts for v in (x, y, 2.0)))
            attributes[SHAPE_ATTR] = tag
        elif tag == "ellipse":
            cx, cy = _float(el, "cx", path=path, where=where), _float(el, "cy", path=path, where=where)
            rx, ry = _float(el, "rx", path=path, where=where), _float(el, "ry", path=path, where=where)
            geometry = ellipse_polygon(cx, cy, abs(rx), abs(ry), float(el.get("rotation") or 0.0))
            attributes[SHAPE_ATTR] = "ellipse"
        elif tag == "mask":
            geometry = decode_mask(el, ctx.size, path=path, where=where)
        elif tag == "skeleton":
            geometry = _skeleton(el, label, ctx)
        elif tag == "tag":
            geometry = Label()
        else:
            skip(f"<{tag}>", "no such geometry in visionloop", path=path, where=where)
            return None
        return Annotation(label, geometry, attributes=attributes, source=src)
    except ValueError as e:
        raise FormatError(f"impossible shape ({e})", path=path, where=where) from None


def _skeleton(el: ET.Element, label: str, ctx: Context) -> Keypoints:
    names = ctx.meta.elements(label)
    found: dict[str, tuple[float, float, float]] = {}
    extra: list[tuple[float, float, float]] = []
    for i, p in enumerate(el.findall("points")):
        where = f"{ctx.where} <points> {i + 1}"
        pts = parse_points(p.get("points"), path=ctx.path, where=where)
        x, y = pts[0]
        v = 0.0 if p.get("outside") == "1" else (1.0 if p.get("occluded") == "1" else 2.0)
        point = (0.0, 0.0, 0.0) if v == 0 else (x, y, v)
        name = p.get("label") or ""
        if name in names:
            found[name] = point
        else:
            extra.append(point)
    out = [found.get(n, (0.0, 0.0, 0.0)) for n in names] + extra
    return Keypoints(tuple(v for p in out for v in p))


# ---------------------------------------------------------------- writing shapes


def fmt(v: float) -> str:
    """CVAT writes 2 decimals; values that need more keep them all (so they round-trip)."""
    v = float(v)
    two = f"{v:.2f}"
    return two if float(two) == v else repr(v)


def attribute_text(value: Any) -> tuple[str, str]:
    """(text, input_type) of an attribute value."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "checkbox"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value), "number"
    return str(value), "text"


@dataclass
class Shape:
    """One shape element to write: tag, its XML attributes in order, <attribute> children, inner XML."""

    tag: str
    fields: dict[str, str]
    attributes: list[tuple[str, str]]
    inner: list[str] = field(default_factory=list)

    def render(self, indent: str) -> str:
        head = " ".join(f"{k}={quoteattr(v)}" for k, v in self.fields.items())
        lines = [f"{indent}<{self.tag} {head}>"]
        lines.extend(f"{indent}  {x}" for x in self.inner)
        for name, text in self.attributes:
            lines.append(f"{indent}  <attribute name={quoteattr(name)}>{escape(text)}</attribute>")
        lines.append(f"{indent}</{self.tag}>")
        return "\n".join(lines) + "\n"


@dataclass
class LabelBook:
    """Labels, their attribute types and kinds, as written: becomes <meta><labels>."""

    classes: ClassMap
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    skeletons: set[str] = field(default_factory=set)

    def note(self, label: str, attributes: list[tuple[str, str]], types: list[str]) -> None:
        book = self.attributes.setdefault(label, {})
        for (name, _), t in zip(attributes, types, strict=True):
            old = book.get(name)
            book[name] = t if old in (None, t) else "text"

    def xml(self, indent: str) -> str:
        out = [f"{indent}<labels>"]
        for c in self.classes:
            out.append(self._label(c, indent + "  "))
        out.append(f"{indent}</labels>")
        return "\n".join(out)

    def _label(self, c: ClassInfo, ind: str) -> str:
        skeleton = c.name in self.skeletons
        lines = [f"{ind}<label>", f"{ind}  <name>{escape(c.name)}</name>",
                 f"{ind}  <color>{escape(self.classes.color(c.name))}</color>",
                 f"{ind}  <type>{'skeleton' if skeleton else 'any'}</type>", f"{ind}  <attributes>"]
        for name, t in self.attributes.get(c.name, {}).items():
            lines += [f"{ind}    <attribute>", f"{ind}      <name>{escape(name)}</name>",
                      f"{ind}      <mutable>False</mutable>", f"{ind}      <input_type>{t}</input_type>",
                      f"{ind}      <default_value></default_value>", f"{ind}      <values></values>",
                      f"{ind}    </attribute>"]
        lines.append(f"{ind}  </attributes>")
        if skeleton:
            lines.append(f"{ind}  <svg>{escape(skeleton_svg(c.keypoints, c.skeleton))}</svg>")
        lines.append(f"{ind}</label>")
        if skeleton:
            for name in c.keypoints:
                lines += [f"{ind}<label>", f"{ind}  <name>{escape(name)}</name>", f"{ind}  <type>points</type>",
                          f"{ind}  <attributes>", f"{ind}  </attributes>",
                          f"{ind}  <parent>{escape(c.name)}</parent>", f"{ind}</label>"]
        return "\n".join(lines)


def shapes_for(ann: Annotation, lead: dict[str, str], *, book: LabelBook, report: WriteReport,
               video: bool = False) -> list[Shape]:
    """The CVAT shape elements for one annotation (several for a multi-ring polygon), counted
    in `report`. `lead` are the first XML attributes (label/source for images, frame/... for video)."""
    g = ann.geometry
    user = [(k, v) for k, v in ann.attributes.items() if k not in FIELD_ATTRS]
    attributes: list[tuple[str, str]] = []
    types: list[str] = []
    for k, v in user:
        if isinstance(v, list | dict | tuple):
            import orjson

            text, t = orjson.dumps(v).decode(), "text"
            report.converted[f"attribute {type(v).__name__} -> text"] += 1
        else:
            text, t = attribute_text(v)
        attributes.append((str(k), text))
        types.append(t)
    if ann.confidence is not None:
        report.drop("confidence", "CVAT XML has no score field")
    if ann.crowd:
        report.drop("crowd flag", "CVAT XML has no crowd flag")
    if isinstance(g, Label):
        if video:
            report.drop("label", "CVAT for video has no image-level tags")
            return []
        fields = dict(lead)
        group = ann.attributes.get("group_id")
        if group:
            fields["group_id"] = str(group)
        book.note(ann.label, attributes, types)
        report.annotations["label"] += 1
        return [Shape("tag", fields, attributes)]

    common = dict(lead)
    common["occluded"] = "1" if ann.attributes.get("occluded") else "0"
    tail: dict[str, str] = {"z_order": str(int(ann.attributes.get("z_order") or 0))}
    group = ann.attributes.get("group_id")
    if group:
        tail["group_id"] = str(group)
    shapes: list[Shape] = []
    if isinstance(g, Box | RotatedBox):
        if isinstance(g, RotatedBox):
            b = Box(g.cx - g.w / 2, g.cy - g.h / 2, g.cx + g.w / 2, g.cy + g.h / 2)
            extra = {"rotation": fmt(g.angle % 360)}
            report.annotations["rotated_box"] += 1
        else:
            b, extra = g, {}
            report.annotations["box"] += 1
        shapes.append(Shape("box", {**common, "xtl": fmt(b.x0), "ytl": fmt(b.y0), "xbr": fmt(b.x1),
                                    "ybr": fmt(b.y1), **extra, **tail}, attributes))
    elif isinstance(g, Polygon):
        if len(g.rings) > 1:
            report.converted[f"polygon with {len(g.rings)} parts -> {len(g.rings)} polygons"] += 1
        for ring in g.rings:
            ring_text = ";".join(f"{fmt(x)},{fmt(y)}" for x, y in zip(ring[0::2], ring[1::2], strict=True))
            shapes.append(Shape("polygon", {**common, "points": ring_text, **tail}, attributes))
            report.annotations["polygon"] += 1
    elif isinstance(g, Polyline):
        text = ";".join(f"{fmt(x)},{fmt(y)}" for x, y in g.xy())
        shapes.append(Shape("polyline", {**common, "points": text, **tail}, attributes))
        report.annotations["polyline"] += 1
    elif isinstance(g, Mask):
        enc = encode_mask(g)
        if enc is None:
            report.drop("mask", "empty mask")
            return []
        rle, left, top, w, h = enc
        shapes.append(Shape("mask", {**common, "rle": ", ".join(map(str, rle)), "left": str(left), "top": str(top),
                                     "width": str(w), "height": str(h), **tail}, attributes))
        report.annotations["mask"] += 1
    elif isinstance(g, Keypoints):
        info = book.classes.get(ann.label)
        marker = ann.attributes.get(SHAPE_ATTR)
        if marker is None and info is not None and info.keypoints and len(info.keypoints) == g.count:
            book.skeletons.add(ann.label)
            inner = []
            for name, x, y, v in zip(info.keypoints, g.points[0::3], g.points[1::3], g.points[2::3], strict=True):
                fields = {"label": name, "source": lead.get("source", "manual")} if not video else \
                    {"label": name, "keyframe": "1"}
                fields.update(outside="1" if v == 0 else "0", occluded="1" if v == 1 else "0",
                              points=f"{fmt(x)},{fmt(y)}")
                inner.append("<points " + " ".join(f"{k}={quoteattr(t)}" for k, t in fields.items()) + "></points>")
            sk = {k: v for k, v in lead.items()}
            shapes.append(Shape("skeleton", {**sk, **tail}, attributes, inner))
            report.annotations["keypoints"] += 1
        else:
            pts, lossy = _visible(g)
            tag = "polyline" if marker == "polyline" else "points"
            if not pts or (tag == "polyline" and len(pts) < 2):
                report.drop("keypoints", "no labelled points")
                return []
            if lossy:
                report.converted[f"keypoints -> {tag} (visibility lost)"] += 1
            text = ";".join(f"{fmt(x)},{fmt(y)}" for x, y in pts)
            shapes.append(Shape(tag, {**common, "points": text, **tail}, attributes))
            report.annotations["keypoints"] += 1
    else:  # pragma: no cover - every geometry type is handled above
        report.drop(type(g).__name__, "unsupported geometry")
        return []
    book.note(ann.label, attributes, types)
    return shapes


def _visible(kp: Keypoints) -> tuple[list[tuple[float, float]], bool]:
    pts: list[tuple[float, float]] = []
    lossy = False
    for x, y, v in zip(kp.points[0::3], kp.points[1::3], kp.points[2::3], strict=True):
        if v > 0:
            pts.append((x, y))
        if v != 2:
            lossy = True
    return pts, lossy


def source_text(src: Source) -> str:
    return _SOURCE_OUT[src]


def header(meta_xml: str) -> str:
    return f'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n{meta_xml}'
