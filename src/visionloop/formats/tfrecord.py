"""TFRecord for the TensorFlow Object Detection API, read and written without TensorFlow.

References:
- framing: https://www.tensorflow.org/tutorials/load_data/tfrecord#tfrecords_format_details
- tf.train.Example: https://github.com/tensorflow/tensorflow/blob/master/tensorflow/core/example/example.proto
  and feature.proto beside it
- keys: https://github.com/tensorflow/models/blob/master/research/object_detection/g3doc/using_your_own_dataset.md
  and object_detection/core/standard_fields.py (TfExampleFields)
- label map: https://github.com/tensorflow/models/blob/master/research/object_detection/protos/string_int_label_map.proto

Framing
    Each record is ``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``,
    little-endian, with ``mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)``. Both
    CRCs are verified on read; a mismatch or a truncated record is a FormatError naming the file and
    the record index. GZIP-compressed files (TF's ``compression_type="GZIP"``) are read too.
    CRC32C comes from the ``google-crc32c`` wheel (C, Apache-2.0); without it a pure-Python table
    implementation is used (correct, about 100x slower).

tf.train.Example
    Decoded and encoded here by a tiny protobuf wire-format codec: ``Example{1: Features}``,
    ``Features{1: map<string, Feature>}``, ``Feature{1: BytesList | 2: FloatList | 3: Int64List}``.
    Repeated floats and int64s are read packed or unpacked and written packed (as TF does).

Keys (read and written)
    ``image/encoded`` (the image bytes), ``image/format``, ``image/filename``, ``image/source_id``,
    ``image/key/sha256``, ``image/height``, ``image/width``; per object
    ``image/object/bbox/{xmin,ymin,xmax,ymax}`` normalised to [0, 1] by the image size,
    ``image/object/class/text`` and ``image/object/class/label`` (the label map's id, 1-based; 0 is
    the background), ``image/object/difficult``, ``image/object/truncated``, ``image/object/view``
    (VOC's pose), ``image/object/is_crowd``, ``image/object/area`` (declared area, pixels), and
    ``image/object/mask``: one PNG per object, full image size, pixels > 0 inside (what
    ``create_coco_tf_record.py`` writes). Read only: the older numerical masks (a float list of
    objects x height x width). Whole-image labels live in ``image/class/{text,label}``.

Coordinates
    Normalised and continuous, as the TF OD API uses them: pixel x = xmin * width, with (0, 0) the
    top-left corner of the first pixel -- our canonical space, so no offset. Values are float32; a
    pixel coordinate within float32 precision of an integer is snapped to it, so integer boxes
    round-trip exactly and fractional ones to float32 precision. Boxes are in the space of the
    encoded image as TensorFlow decodes it, which ignores EXIF orientation; the writer therefore
    re-encodes an image whose EXIF orientation is not 1 upright (counted in the report).

Images
    They live inside the records. The reader streams one record at a time and writes each image's
    bytes to a cache folder (``tempfile.mkdtemp``, removed at interpreter exit; or ``cache_dir=``,
    kept), one file per record, and points ``ImageRef.path`` at it. ``ImageRef.file_name`` is
    ``image/filename`` (else ``image/source_id``, else ``<record index>.<format>``); ``sha256`` is
    the hash of the embedded bytes. The writer always embeds the image bytes: ``ImageMode`` does not
    apply because the format cannot refer to outside files.

Layouts read
    a ``.record`` / ``.tfrecord`` / ``.tfrecords`` file (or shards ``x.record-00000-of-00004``); a
    folder of them (the raccoon dataset's ``data/test.record``; the split is the file's stem); a
    folder of split folders each with a record and ``*label_map.pbtxt`` (Roboflow's export; the
    split is the folder name). Class names and ids come from ``label_map.pbtxt`` (or a
    ``*label_map.pbtxt`` / the only ``.pbtxt``) beside the record or one folder up, else from the
    records' ``class/text`` + ``class/label`` pairs as they are met (the ClassMap grows while
    reading). A text that contradicts its label's id is a FormatError.

Writing
    ``out/<split>.record`` per split (``out/data.record`` for samples without a split) and
    ``out/label_map.pbtxt``. Class ids are kept when they are all >= 1 (the TF OD API reserves 0),
    else renumbered 1..n in class order. Polygons are rasterised to PNG masks and rotated boxes
    become their bounds (both counted as conversions); keypoints are dropped with a reason. In an
    image where some objects have masks, box-only objects get an empty mask (the API needs one per
    object), and the reader turns an empty mask back into no mask.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import logging
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import Box, Keypoints, Label, Mask, Polygon, RotatedBox, polygon_to_mask
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
    extraction_folder,
    safe_name,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "tfrecord"
LABEL_MAP = "label_map.pbtxt"
_RECORD = re.compile(r"^(?P<base>.+?)\.(?:record|tfrecords?)(?:-\d{5}-of-\d{5})?$", re.IGNORECASE)
_SPLIT_WORDS = frozenset({"train", "val", "valid", "validation", "test", "eval", "trainval"})
_NO_SPLIT = "data"
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


# ------------------------------------------------------------------------------------- crc32c


@functools.cache
def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


def _crc32c_python(data: bytes) -> int:
    table = _crc32c_table()
    crc = _U32
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32


crc32c: Callable[[bytes], int]
try:
    from google_crc32c import value as _google_value

    def crc32c(data: bytes) -> int:
        return int(_google_value(data))
except ImportError:  # pragma: no cover - the wheel is a dependency; this keeps reading possible
    crc32c = _crc32c_python


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C of `data`."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


# ---------------------------------------------------------------------------- record framing


def iter_records(path: Path) -> Iterator[tuple[int, bytes]]:
    """(index, data) of each record of a TFRecord file, CRCs verified, one record in memory at a time."""
    with open(path, "rb") as raw:
        magic = raw.read(2)
        raw.seek(0)
        f: IO[bytes] = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw  # type: ignore[assignment]
        index, offset = 0, 0
        while True:
            try:
                header = f.read(12)
            except (OSError, EOFError) as e:
                raise FormatError(f"corrupt compressed data ({e})", path=path, where=f"record {index}") from None
            if not header:
                return
            where = f"record {index} (byte {offset})"
            if len(header) < 12:
                raise FormatError("truncated record header", path=path, where=where)
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc(header[:8]) != length_crc:
                raise FormatError("length CRC mismatch: the file is corrupt or not a TFRecord file",
                                  path=path, where=where)
            body = f.read(length + 4)
            if len(body) < length + 4:
                raise FormatError(f"truncated record: {length + 4} bytes announced, {len(body)} left",
                                  path=path, where=where)
            data = body[:length]
            (data_crc,) = struct.unpack("<I", body[length:])
            if masked_crc(data) != data_crc:
                raise FormatError("data CRC mismatch: the record is corrupt", path=path, where=where)
            yield index, data
            index += 1
            offset += 12 + length + 4


def frame(data: bytes) -> bytes:
    """One TFRecord record around `data`."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


# ------------------------------------------------------------------------- protobuf wire codec

FeatureValue = list[bytes] | list[float] | list[int]


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message; length-delimited values are memoryviews."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise ValueError("truncated 64-bit field")
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ValueError(f"field {number} announces {n} bytes, {end - pos} left")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            if pos + 4 > end:
                raise ValueError("truncated 32-bit field")
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _decode_list(kind: int, buf: memoryview) -> FeatureValue:
    if kind == 1:
        return [bytes(v) for n, w, v in _fields(buf) if n == 1 and w == 2]
    if kind == 2:
        floats: list[float] = []
        for n, w, v in _fields(buf):
            if n != 1:
                continue
            if w == 2:  # packed
                if len(v) % 4:
                    raise ValueError("packed float list is not a multiple of 4 bytes")
                floats.extend(struct.unpack(f"<{len(v) // 4}f", v))
            elif w == 5:
                floats.append(struct.unpack("<f", v)[0])
        return floats
    ints: list[int] = []
    for n, w, v in _fields(buf):
        if n != 1:
            continue
        if w == 2:  # packed
            pos = 0
            while pos < len(v):
                x, pos = _varint(v, pos)
                ints.append(_signed64(x))
        elif w == 0:
            ints.append(_signed64(v))
    return ints


def decode_example(data: bytes) -> dict[str, FeatureValue]:
    """A serialised tf.train.Example as {key: list of bytes | floats | ints}. ValueError when malformed."""
    out: dict[str, FeatureValue] = {}
    for n, w, features in _fields(memoryview(data)):
        if n != 1 or w != 2:
            continue
        for fn, fw, entry in _fields(features):
            if fn != 1 or fw != 2:
                continue
            key, value = "", None
            for en, ew, ev in _fields(entry):
                if en == 1 and ew == 2:
                    key = bytes(ev).decode("utf-8")
                elif en == 2 and ew == 2:
                    value = ev
            if value is None:
                out[key] = []
                continue
            decoded: FeatureValue = []
            for kn, kw, kv in _fields(value):
                if kn in (1, 2, 3) and kw == 2:
                    decoded = _decode_list(kn, kv)
            out[key] = decoded
    return out


def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_field(number: int, payload: bytes) -> bytes:
    return _enc_varint(number << 3 | 2) + _enc_varint(len(payload)) + payload


def encode_example(features: dict[str, tuple[str, Iterable[Any]]]) -> bytes:
    """Serialise {key: ("bytes" | "float" | "int64", values)} as a tf.train.Example."""
    entries = []
    for key, (kind, values) in features.items():
        if kind == "bytes":
            inner = b"".join(_enc_field(1, v) for v in values)
            feature = _enc_field(1, inner)
        elif kind == "float":
            vals = list(values)
            inner = _enc_field(1, struct.pack(f"<{len(vals)}f", *vals)) if vals else b""
            feature = _enc_field(2, inner)
        elif kind == "int64":
            inner_ints = b"".join(_enc_varint(int(v)) for v in values)
            inner = _enc_field(1, inner_ints) if inner_ints else b""
            feature = _enc_field(3, inner)
        else:  # pragma: no cover - programming error
            raise ValueError(f"unknown feature kind {kind!r}")
        entries.append(_enc_field(1, _enc_field(1, key.encode("utf-8")) + _enc_field(2, feature)))
    return _enc_field(1, b"".join(entries))


# ---------------------------------------------------------------------------------- label map

_PBTXT_TOKEN = re.compile(r"""\s*(?:(#[^\n]*)|([{}:])|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|([^\s{}:"'#]+))""")


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def parse_label_map(path: Path) -> ClassMap:
    """`item { id: 1 name: 'raccoon' display_name: 'Raccoon' }` blocks as a ClassMap (ids kept)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FormatError("not a UTF-8 text file", path=path) from None
    classes = ClassMap()
    pos, depth, item = 0, 0, 0
    current: dict[str, str] = {}
    key: str | None = None
    while pos < len(text):
        m = _PBTXT_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise FormatError(f"cannot parse {text[pos:pos + 20]!r}", path=path,
                              where=f"line {text.count(chr(10), 0, pos) + 1}")
        line = text.count("\n", 0, m.start()) + 1
        pos = m.end()
        comment, punct, quoted, word = m.groups()
        if comment:
            continue
        if punct == "{":
            depth += 1
            if depth == 1:
                if key not in ("item", None):
                    raise FormatError(f"unexpected block {key!r}", path=path, where=f"line {line}")
                item += 1
                current = {}
            key = None
        elif punct == "}":
            if depth == 0:
                raise FormatError("unbalanced `}`", path=path, where=f"line {line}")
            depth -= 1
            if depth == 0:
                _add_item(classes, current, path, item)
        elif punct == ":":
            continue
        else:
            token = _unquote(quoted) if quoted else word
            if key is None:
                key = token
            else:
                if depth == 1:
                    current[key] = token
                key = None
    if depth:
        raise FormatError("unclosed `item {` block", path=path, where=f"item {item}")
    return classes


def _add_item(classes: ClassMap, item: dict[str, str], path: Path, n: int) -> None:
    where = f"item {n}"
    name = item.get("name") or item.get("display_name")
    if not name or "id" not in item:
        raise FormatError("a label map item needs `id` and `name`", path=path, where=where)
    try:
        ident = int(item["id"])
    except ValueError:
        raise FormatError(f"id {item['id']!r} is not an integer", path=path, where=where) from None
    try:
        classes.add(name, id=ident)
    except ValueError as e:
        raise FormatError(str(e), path=path, where=where) from None
    if classes[name].id != ident:
        raise FormatError(f"class {name!r} appears twice (ids {classes[name].id} and {ident})", path=path,
                          where=where)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def write_label_map(classes: ClassMap, path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for c in classes:
            f.write(f"item {{\n  id: {c.id}\n  name: {_quote(c.name)}\n}}\n")


# -------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Source:
    split: str | None
    files: tuple[Path, ...]  # shards in order


def _record_base(name: str) -> str | None:
    m = _RECORD.match(name)
    return m.group("base") if m else None


def _group(folder: Path) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for f in sorted(folder.iterdir()):
        base = _record_base(f.name) if f.is_file() else None
        if base is not None:
            groups.setdefault(base, []).append(f)
    return groups


def _sources(path: Path) -> list[_Source]:
    if path.is_file():
        base = _record_base(path.name)
        if base is None:
            raise FormatError("not a TFRecord file (expected .record, .tfrecord or .tfrecords)", path=path)
        return [_Source(base if base.lower() in _SPLIT_WORDS else None, (path,))]
    if not path.is_dir():
        raise FormatError("no such file or folder", path=path)
    groups = _group(path)
    if groups:
        only_one = len(groups) == 1
        return [_Source(_split_of(base, only_one), tuple(files)) for base, files in groups.items()]
    sources = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        for files in _group(sub).values():
            sources.append(_Source(sub.name, tuple(files)))
    if not sources:
        raise FormatError("no TFRecord file here (.record, .tfrecord or .tfrecords, or in split folders)",
                          path=path)
    return sources


def _split_of(base: str, only_one: bool) -> str | None:
    if base == _NO_SPLIT or (only_one and base.lower() not in _SPLIT_WORDS):
        return None
    return base


def _find_label_map(folder: Path) -> Path | None:
    for d in (folder, folder.parent):
        if (d / LABEL_MAP).is_file():
            return d / LABEL_MAP
        maps = sorted(d.glob("*label_map.pbtxt"))
        if len(maps) == 1:
            return maps[0]
        pbtxt = sorted(d.glob("*.pbtxt"))
        if len(pbtxt) == 1:
            return pbtxt[0]
    return None


# ---------------------------------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    """TFRecord when a file (or a folder, or its split folders) has a record name; reads 12 bytes."""
    path = Path(path)
    if path.is_file():
        if _record_base(path.name) is None:
            return Detection.no("not a .record / .tfrecord file")
        return _sniff(path, 0.95)
    if not path.is_dir():
        return Detection.no("no such folder")
    groups = _group(path)
    if groups:
        return _sniff(next(iter(groups.values()))[0], 0.9)
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        sub_groups = _group(sub)
        if sub_groups:
            return _sniff(next(iter(sub_groups.values()))[0], 0.85)
    return Detection.no("no .record / .tfrecord file here or in split folders")


def _sniff(path: Path, score: float) -> Detection:
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:2] == b"\x1f\x8b":
        return Detection(score * 0.9, f"{path.name} is a GZIP-compressed record file")
    if len(head) == 0:
        return Detection(score * 0.5, f"{path.name} is an empty record file")
    if len(head) == 12 and masked_crc(head[:8]) == struct.unpack("<I", head[8:])[0]:
        return Detection(score, f"{path.name} starts with a valid TFRecord header")
    return Detection(0.1, f"{path.name} has a record name but no valid TFRecord header")


# ------------------------------------------------------------------------------------------ read


def read(path: Path, *, split: str | None = None, cache_dir: Path | None = None) -> Reader:
    """Stream a TFRecord dataset. Image bytes go to `cache_dir` (default: a temporary folder)."""
    path = Path(path)
    sources = _sources(path)
    first = sources[0].files[0].parent
    label_map = _find_label_map(first)
    classes = parse_label_map(label_map) if label_map is not None else ClassMap()
    cache: list[Path] = [Path(cache_dir)] if cache_dir is not None else []

    def samples() -> Iterator[Sample]:
        if not cache:
            cache.append(extraction_folder("visionloop-tfrecord-"))
        for n, source in enumerate(sources):
            folder = cache[0] / f"{n:03d}-{source.split or _NO_SPLIT}"
            folder.mkdir(parents=True, exist_ok=True)
            index = 0
            for f in source.files:
                for i, data in iter_records(f):
                    yield _sample(data, f, i, index, folder, split or source.split, classes)
                    index += 1

    return Reader(classes, samples, source=path)


def _first(values: FeatureValue | None) -> Any:
    return values[0] if values else None


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _snap(v: float, size: int) -> float:
    """Normalised float32 -> pixels, snapped to an integer within float32 precision."""
    px = float(v) * size
    r = round(px)
    if abs(px - r) <= max(size, 1) * 2.0**-23:
        return float(r)
    return px


def _sample(data: bytes, path: Path, record: int, index: int, cache: Path, split: str | None,
            classes: ClassMap) -> Sample:
    where = f"record {record}"
    try:
        ex = decode_example(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"not a tf.train.Example ({e})", path=path, where=where) from None
    encoded = _first(ex.get("image/encoded"))
    if not isinstance(encoded, bytes) or not encoded:
        raise FormatError("no image/encoded bytes", path=path, where=where)
    fmt = _text(_first(ex.get("image/format")) or b"").lower() or _sniff_format(encoded)
    filename = _text(_first(ex.get("image/filename")) or b"")
    source_id = _text(_first(ex.get("image/source_id")) or b"")
    ext = {"jpeg": "jpg"}.get(fmt, fmt) or "bin"
    file_name = filename or source_id or f"{index:06d}.{ext}"
    if not PurePosixPath(file_name).suffix:
        file_name = f"{file_name}.{ext}"
    try:
        file_name = safe_name(file_name.replace("\\", "/"))
    except FormatError:
        file_name = f"{index:06d}.{ext}"
    width = _int(ex, "image/width", path, where)
    height = _int(ex, "image/height", path, where)
    if width is None or height is None:
        from PIL import Image

        with Image.open(io.BytesIO(encoded)) as im:
            width, height = im.size
    cached = cache / f"{index:06d}-{PurePosixPath(file_name).name}"
    cached.write_bytes(encoded)
    meta: dict[str, Any] = {}
    if source_id and source_id != filename:
        meta["source_id"] = source_id
    ref = ImageRef(file_name, width=width, height=height, path=str(cached),
                   sha256=hashlib.sha256(encoded).hexdigest(), format=fmt or None, metadata=meta)
    try:
        annotations = _objects(ex, width, height, classes) + _image_labels(ex, classes)
    except (ValueError, TypeError, IndexError) as e:
        raise FormatError(f"bad object annotation: {e}", path=path, where=where) from None
    except _ClassConflict as e:
        raise FormatError(str(e), path=path, where=where,
                          hint="the record's class/text and class/label disagree with the label map") from None
    return Sample(ref, tuple(annotations), split=split,
                  state=LabelState.ANNOTATED if annotations else LabelState.NULL)


def _sniff_format(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return ""


def _int(ex: dict[str, FeatureValue], key: str, path: Path, where: str) -> int | None:
    v = _first(ex.get(key))
    if v is None:
        return None
    if not isinstance(v, int) or v <= 0:
        raise FormatError(f"{key} must be a positive int64, got {v!r}", path=path, where=where)
    return v


class _ClassConflict(Exception):
    pass


def _class_name(texts: FeatureValue, labels: FeatureValue, i: int, classes: ClassMap) -> str:
    text = _text(texts[i]) if i < len(texts) else ""
    label = labels[i] if i < len(labels) else None
    if label is not None and not isinstance(label, int):
        raise TypeError(f"class/label {label!r} is not an int64")
    if text:
        info = classes.get(text)
        if info is None:
            if label is not None and (other := classes.by_id(label)) is not None:
                raise _ClassConflict(f"object {i}: class/text {text!r} but label {label} is {other.name!r}")
            classes.add(text, id=label)
        elif label is not None and info.id != label:
            raise _ClassConflict(f"object {i}: class/text {text!r} has id {info.id}, but class/label is {label}")
        return text
    if label is None:
        raise ValueError(f"object {i} has neither class/text nor class/label")
    known = classes.by_id(label)
    if known is None:
        raise ValueError(f"object {i}: class/label {label} is not in the label map and has no class/text")
    return known.name


def _objects(ex: dict[str, FeatureValue], width: int, height: int, classes: ClassMap) -> list[Annotation]:
    coords = [ex.get(f"image/object/bbox/{k}", []) for k in ("xmin", "ymin", "xmax", "ymax")]
    n = len(coords[0])
    if any(len(c) != n for c in coords):
        raise ValueError("image/object/bbox/{xmin,ymin,xmax,ymax} have different lengths "
                         f"({', '.join(str(len(c)) for c in coords)})")
    texts = ex.get("image/object/class/text", [])
    labels = ex.get("image/object/class/label", [])
    n = max(n, len(texts), len(labels))
    if n and len(coords[0]) != n:
        raise ValueError(f"{n} classes but {len(coords[0])} boxes")
    masks = _masks(ex.get("image/object/mask", []), n, width, height)
    difficult = ex.get("image/object/difficult", [])
    truncated = ex.get("image/object/truncated", [])
    views = ex.get("image/object/view", [])
    crowd = ex.get("image/object/is_crowd", [])
    areas = ex.get("image/object/area", [])
    out = []
    for i in range(n):
        x0, y0, x1, y1 = (_snap(float(c[i]), s) for c, s in zip(coords, (width, height, width, height),
                                                                  strict=True))
        box = Box(x0, y0, x1, y1)
        attributes: dict[str, Any] = {}
        if i < len(difficult):
            attributes["difficult"] = bool(difficult[i])
        if i < len(truncated):
            attributes["truncated"] = bool(truncated[i])
        if i < len(views) and views[i]:
            attributes["pose"] = _text(views[i])
        mask = masks[i] if masks else None
        area = float(areas[i]) if i < len(areas) else None
        label = _class_name(texts, labels, i, classes)
        is_crowd = bool(crowd[i]) if i < len(crowd) else False
        if mask is not None:
            declared = None if _same_box(box, mask.bounds()) else box
            out.append(Annotation(label, mask, attributes=attributes, crowd=is_crowd, bbox=declared, area=area))
        else:
            out.append(Annotation(label, box, attributes=attributes, crowd=is_crowd, area=area))
    return out


def _same_box(a: Box, b: Box) -> bool:
    return all(abs(p - q) <= 1e-3 for p, q in zip((a.x0, a.y0, a.x1, a.y1), (b.x0, b.y0, b.x1, b.y1), strict=True))


def _masks(values: FeatureValue, n: int, width: int, height: int) -> list[Mask | None]:
    if not values:
        return []
    import numpy as np

    if isinstance(values[0], bytes):
        if len(values) != n:
            raise ValueError(f"{len(values)} instance masks for {n} objects")
        from PIL import Image

        out: list[Mask | None] = []
        for i, png in enumerate(values):
            with Image.open(io.BytesIO(png)) as im:  # type: ignore[arg-type]
                arr = np.asarray(im.convert("L"))
            if arr.shape != (height, width):
                raise ValueError(f"mask {i} is {arr.shape[1]}x{arr.shape[0]}, the image {width}x{height}")
            out.append(Mask.from_array(arr > 0) if arr.any() else None)
        return out
    if len(values) != n * width * height:
        raise ValueError(f"numerical masks hold {len(values)} values, expected {n}x{height}x{width}")
    arr = np.asarray(values, dtype=np.float32).reshape(n, height, width)
    return [Mask.from_array(m > 0) if m.any() else None for m in arr]


def _image_labels(ex: dict[str, FeatureValue], classes: ClassMap) -> list[Annotation]:
    texts = ex.get("image/class/text", [])
    labels = ex.get("image/class/label", [])
    return [Annotation(_class_name(texts, labels, i, classes), Label())
            for i in range(max(len(texts), len(labels)))]


# ----------------------------------------------------------------------------------------- write


def _record_name(split: str | None) -> str:
    if split is None:
        return f"{_NO_SPLIT}.record"
    cleaned = re.sub(r"[^\w.-]+", "_", split).strip("._") or "split"
    return f"{cleaned}.record"


def _writer_classes(classes: ClassMap | None) -> ClassMap:
    if classes is None:
        return ClassMap()
    if all(c.id >= 1 for c in classes):
        return ClassMap(list(classes))
    log.info("tfrecord: class ids include 0 or negatives; renumbering 1..%d in class order", len(classes))
    return ClassMap.from_names(classes.names, start=1)


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write `out/<split>.record` files and `out/label_map.pbtxt` (images embedded whatever `images` says)."""
    out = Path(out)
    cmap = _writer_classes(classes)
    report = WriteReport(FORMAT, str(out))
    out.mkdir(parents=True, exist_ok=True)
    if images is ImageMode.NONE:
        log.info("tfrecord: images are embedded in the records; ImageMode.NONE does not apply")
    handles: dict[str | None, IO[bytes]] = {}
    try:
        for sample in samples:
            f = handles.get(sample.split)
            if f is None:
                target = out / _record_name(sample.split)
                if target.exists() or any(h.name == str(target) for h in handles.values()):
                    raise FormatError("the record file already exists; refusing to overwrite it", path=target)
                f = handles[sample.split] = open(target, "xb")
                report.files += 1
            f.write(frame(_example(sample, cmap, report)))
            count_state_change(report, sample, becomes=LabelState.NULL, why="every record is labelled")
            report.images += 1
    finally:
        for h in handles.values():
            h.close()
    label_map = out / LABEL_MAP
    if label_map.exists():
        raise FormatError("label_map.pbtxt already exists; refusing to overwrite it", path=label_map)
    write_label_map(cmap, label_map)
    report.files += 1
    return report


def _image_bytes(ref: ImageRef) -> bytes:
    if ref.path is None:
        raise ImageError("no image bytes to embed (the sample has no path)", path=ref.file_name)
    try:
        if "://" in ref.path:
            import fsspec

            with fsspec.open(ref.path, "rb") as f:
                return bytes(f.read())
        return Path(ref.path).read_bytes()
    except FileNotFoundError:
        raise ImageError("image file not found", path=ref.path) from None


def _upright(data: bytes, ref: ImageRef, report: WriteReport) -> tuple[bytes, str]:
    """The bytes TensorFlow decodes in the orientation our coordinates use, and their format."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "").lower()
            orientation = im.getexif().get(0x0112, 1) if fmt in ("jpeg", "png", "webp", "tiff") else 1
            if orientation in (None, 1):
                return data, fmt
            upright = ImageOps.exif_transpose(im)
            buf = io.BytesIO()
            if fmt == "jpeg":
                upright.save(buf, format="JPEG", quality=95)
            else:
                upright.save(buf, format="PNG")
                fmt = "png"
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"not a readable image ({e})", path=ref.path or ref.file_name) from None
    report.converted[f"image -> re-encoded upright (EXIF orientation {orientation})"] += 1
    return buf.getvalue(), fmt


def _class_id(cmap: ClassMap, name: str) -> int:
    info = cmap.get(name)
    if info is None:
        info = cmap.add(name, id=max((c.id for c in cmap), default=0) + 1)
    return info.id


def _example(sample: Sample, cmap: ClassMap, report: WriteReport) -> bytes:
    ref = with_size(sample.image)
    assert ref.width is not None and ref.height is not None
    w, h = ref.width, ref.height
    data, fmt = _upright(_image_bytes(ref), ref, report)
    file_name = safe_name(ref.file_name)
    source_id = str(ref.metadata.get("source_id") or file_name)
    objects: list[tuple[Annotation, Box, Mask | None]] = []
    image_labels: list[str] = []
    for ann in sample.annotations:
        g = ann.geometry
        if isinstance(g, Label):
            image_labels.append(ann.label)
            report.annotations["label"] += 1
        elif isinstance(g, Keypoints):
            report.drop("keypoints", "the TF OD API records written here hold no keypoints")
        elif isinstance(g, Box):
            objects.append((ann, g, None))
            report.annotations["box"] += 1
        elif isinstance(g, RotatedBox):
            objects.append((ann, g.bounds(), None))
            report.converted["rotated_box -> box (bounds)"] += 1
            report.annotations["box"] += 1
        elif isinstance(g, Polygon):
            mask = polygon_to_mask(g, h, w)
            objects.append((ann, ann.bbox or g.bounds(), mask))
            report.converted["polygon -> mask (rasterised)"] += 1
            report.annotations["mask"] += 1
        elif isinstance(g, Mask):
            if (g.height, g.width) != (h, w):
                raise FormatError(f"a mask of {g.width}x{g.height} on an image of {w}x{h}", path=ref.file_name)
            objects.append((ann, ann.bbox or g.bounds(), g))
            report.annotations["mask"] += 1
    feats: dict[str, tuple[str, Iterable[Any]]] = {
        "image/height": ("int64", [h]),
        "image/width": ("int64", [w]),
        "image/filename": ("bytes", [file_name.encode("utf-8")]),
        "image/source_id": ("bytes", [source_id.encode("utf-8")]),
        "image/key/sha256": ("bytes", [hashlib.sha256(data).hexdigest().encode("ascii")]),
        "image/encoded": ("bytes", [data]),
        "image/format": ("bytes", [fmt.encode("ascii")]),
        "image/object/bbox/xmin": ("float", [b.x0 / w for _, b, _ in objects]),
        "image/object/bbox/xmax": ("float", [b.x1 / w for _, b, _ in objects]),
        "image/object/bbox/ymin": ("float", [b.y0 / h for _, b, _ in objects]),
        "image/object/bbox/ymax": ("float", [b.y1 / h for _, b, _ in objects]),
        "image/object/class/text": ("bytes", [a.label.encode("utf-8") for a, _, _ in objects]),
        "image/object/class/label": ("int64", [_class_id(cmap, a.label) for a, _, _ in objects]),
    }
    attrs = [a.attributes for a, _, _ in objects]
    if any("difficult" in x for x in attrs):
        feats["image/object/difficult"] = ("int64", [int(bool(x.get("difficult", False))) for x in attrs])
    if any("truncated" in x for x in attrs):
        feats["image/object/truncated"] = ("int64", [int(bool(x.get("truncated", False))) for x in attrs])
    if any("pose" in x for x in attrs):
        feats["image/object/view"] = ("bytes", [str(x.get("pose", "")).encode("utf-8") for x in attrs])
    if any(a.crowd for a, _, _ in objects):
        feats["image/object/is_crowd"] = ("int64", [int(a.crowd) for a, _, _ in objects])
    if any(a.area is not None for a, _, _ in objects):
        feats["image/object/area"] = ("float", [a.area if a.area is not None else b.area for a, b, _ in objects])
    if any(m is not None for _, _, m in objects):
        feats["image/object/mask"] = ("bytes", [_png_mask(m, w, h) for _, _, m in objects])
    if image_labels:
        feats["image/class/text"] = ("bytes", [name.encode("utf-8") for name in image_labels])
        feats["image/class/label"] = ("int64", [_class_id(cmap, name) for name in image_labels])
    for a, _, _ in objects:
        for key in sorted(set(a.attributes) - {"difficult", "truncated", "pose"}):
            report.drop(f"attribute {key!r}", "the TF OD API has no key for it")
    return encode_example(feats)


def _png_mask(mask: Mask | None, width: int, height: int) -> bytes:
    import numpy as np
    from PIL import Image

    arr = mask.to_array().astype(np.uint8) if mask is not None else np.zeros((height, width), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()
