"""Helpers shared by the labelling-tool formats (CVAT, Label Studio, VoTT, VIA, SageMaker,
Supervisely, Labelbox): streamed JSON in and out, image look-up, unique names, numbers.

Private to `visionloop.formats`; nothing here knows any one format.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlparse

import ijson
import orjson

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Keypoints, Polygon
from visionloop.formats.base import IMAGE_EXTENSIONS, open_text_bytes, strip_bom

# ---------------------------------------------------------------- reading JSON


def head(path: Path, n: int = 4096) -> bytes:
    """The first `n` bytes of a file (b"" when it cannot be read)."""
    try:
        with open_text_bytes(path) as f:
            return f.read(n)
    except OSError:
        return b""


def json_error(path: Path, e: Exception) -> FormatError:
    """Locate a JSON syntax error by line and column (re-parsing, on the error path only)."""
    try:
        json.loads(path.read_bytes())
    except json.JSONDecodeError as je:
        return FormatError(f"malformed JSON: {je.msg}", path=path, where=f"line {je.lineno}, column {je.colno}")
    except UnicodeDecodeError as ue:
        return FormatError(f"not UTF-8 text ({ue.reason})", path=path, where=f"byte {ue.start}")
    except OSError as oe:
        return FormatError(f"cannot read the file ({oe.strerror or oe})", path=path)
    return FormatError(f"malformed JSON: {e}", path=path)


def load_json(path: Path) -> Any:
    """A whole (small) JSON document, with errors located by line and column."""
    try:
        return orjson.loads(strip_bom(path.read_bytes()))
    except orjson.JSONDecodeError as e:
        raise json_error(path, e) from None
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror or e})", path=path) from None


def iter_json(path: Path, prefix: str) -> Iterator[Any]:
    """Items under `prefix` (ijson syntax: "item" for a top-level list), streamed."""
    try:
        with open_text_bytes(path) as f:
            yield from ijson.items(f, prefix, use_float=True)
    except ijson.JSONError as e:
        raise json_error(path, e) from None
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror or e})", path=path) from None


def iter_json_object(path: Path, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(key, value) pairs of the object at `prefix`, streamed."""
    try:
        with open_text_bytes(path) as f:
            yield from ijson.kvitems(f, prefix, use_float=True)
    except ijson.JSONError as e:
        raise json_error(path, e) from None
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror or e})", path=path) from None


def iter_json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, object) of a JSON-lines file, blank lines skipped."""
    try:
        handle = open_text_bytes(path)
    except OSError as e:
        raise FormatError(f"cannot read the file ({e.strerror or e})", path=path) from None
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise FormatError(f"malformed JSON ({e})", path=path, where=f"line {lineno}") from None


# ---------------------------------------------------------------- writing JSON


class JsonArrayWriter:
    """A JSON list written item by item into `<final>.partial`, renamed when complete."""

    def __init__(self, final: Path, *, indent: bool = False) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        self.final = final
        self.partial = final.with_name(final.name + ".partial")
        self.out: IO[bytes] = open(self.partial, "wb")
        self.out.write(b"[")
        self.count = 0
        self.indent = indent

    def add(self, item: Any) -> None:
        option = orjson.OPT_INDENT_2 if self.indent else 0
        self.out.write((b",\n" if self.count else b"\n") + orjson.dumps(item, option=option))
        self.count += 1

    def close(self) -> None:
        self.out.write(b"\n]\n")
        self.out.close()
        self.partial.replace(self.final)

    def abort(self) -> None:
        self.out.close()
        self.partial.unlink(missing_ok=True)


def jsonable(value: Any) -> Any:
    """`value` if orjson can write it, else its text (tuples become lists)."""
    try:
        orjson.dumps(value)
        return value
    except TypeError:
        if isinstance(value, tuple):
            return [jsonable(v) for v in value]
        return str(value)


# ---------------------------------------------------------------- names and files


class UniqueNames:
    """Output file names that never collide: `a.jpg`, then `a_1.jpg`, `a_2.jpg`..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, name: str) -> str:
        if name not in self.used:
            self.used.add(name)
            return name
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        k = 1
        while (new := f"{stem}_{k}{dot}{ext}") in self.used:
            k += 1
        self.used.add(new)
        return new


def url_path(ref: str) -> str:
    """The file path a tool's image reference points at, as POSIX text.

    Handles plain paths, `file:` URIs (VoTT writes `file:C:/x/y.jpg`), `s3://bucket/key`,
    `http(s)://host/path` and Label Studio's `/data/local-files/?d=dir/x.jpg`.
    """
    ref = ref.strip()
    if "?d=" in ref:
        query = urlparse(ref).query
        d = parse_qs(query).get("d")
        if d:
            return d[0].replace("\\", "/")
    if ref.lower().startswith("file:"):
        ref = ref[5:]
        while ref.startswith("//"):
            ref = ref[1:]
        return unquote(ref).replace("\\", "/")
    parsed = urlparse(ref)
    if parsed.scheme and len(parsed.scheme) > 1:  # not a Windows drive letter
        return unquote(parsed.path).replace("\\", "/")
    return ref.replace("\\", "/")


def basename(ref: str) -> str:
    return PurePosixPath(url_path(ref)).name


def find_local(root: Path, ref: str, *, folders: Iterable[str] = ("", "images", "img", "data")) -> Path | None:
    """The local file an image reference names, looked up under `root` (and its `folders`):
    first by the full relative path, then by each shorter suffix of it, then by base name."""
    rel = url_path(ref).lstrip("/")
    parts = [p for p in PurePosixPath(rel).parts if p not in ("", ".", "..")]
    if not parts:
        return None
    for k in range(len(parts)):
        tail = Path(*parts[k:])
        for folder in folders:
            candidate = root / folder / tail if folder else root / tail
            if candidate.is_file():
                return candidate
    return None


def relative_or_name(path: Path | None, root: Path, fallback: str) -> str:
    """The dataset file name of an image found at `path`: its POSIX path under `root` without a
    leading `images/` (the folder our writers put images in), or `fallback` when there is no file."""
    if path is not None:
        try:
            rel = PurePosixPath(path.resolve().relative_to(root.resolve()))
        except ValueError:
            return path.name
        if len(rel.parts) > 1 and rel.parts[0] == "images":
            rel = PurePosixPath(*rel.parts[1:])
        return rel.as_posix()
    return fallback


def image_files(folder: Path) -> Iterator[Path]:
    """Image files in a folder tree, sorted."""
    if not folder.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                yield Path(dirpath) / name


# ---------------------------------------------------------------- numbers and geometry


def snap(value: float) -> float:
    """Round away the float noise of a percent/normalised round trip (9 decimals of a pixel)."""
    r = round(value, 9)
    return r + 0.0  # no negative zero


def number(value: Any, *, path: Path, where: str, what: str) -> float:
    """A finite number from a JSON value, or a FormatError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise FormatError(f"{what} must be a number, got {value!r}", path=path, where=where) from None
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise FormatError(f"{what} must be a finite number, got {value!r}", path=path, where=where)
    return v


def polygon_or_error(points: list[tuple[float, float]], *, path: Path, where: str) -> Polygon:
    if len(points) < 3:
        raise FormatError(f"a polygon needs at least 3 points, got {len(points)}", path=path, where=where)
    return Polygon.from_points(points)


def visible_points(points: Iterable[tuple[float, float]]) -> Keypoints:
    """Keypoints (x, y, 2) for a list of plain points."""
    return Keypoints(tuple(v for x, y in points for v in (float(x), float(y), 2.0)))


def keypoint_pairs(kp: Keypoints) -> tuple[list[tuple[float, float]], bool]:
    """The labelled points of a Keypoints geometry, and whether some visibility was lost
    (a point labelled but not visible, or an unlabelled one left out)."""
    pts: list[tuple[float, float]] = []
    lossy = False
    for x, y, v in zip(kp.points[0::3], kp.points[1::3], kp.points[2::3], strict=True):
        if v > 0:
            pts.append((x, y))
            if v != 2:
                lossy = True
        else:
            lossy = True
    return pts, lossy


#: points of the polygon an ellipse or circle is read as
ELLIPSE_POINTS = 64


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> Polygon:
    """An ellipse (radii rx, ry, rotated `angle` degrees clockwise on screen) as a 64-point polygon."""
    t = math.radians(angle)
    c, s = math.cos(t), math.sin(t)
    pts = []
    for i in range(ELLIPSE_POINTS):
        a = 2 * math.pi * i / ELLIPSE_POINTS
        dx, dy = rx * math.cos(a), ry * math.sin(a)
        pts.append((cx + dx * c - dy * s, cy + dx * s + dy * c))
    return Polygon.from_points(pts)


def hex_color(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    t = text.strip().lstrip("#")
    if len(t) == 3:
        t = "".join(c * 2 for c in t)
    if len(t) != 6:
        return None
    try:
        return (int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16))
    except ValueError:
        return None
