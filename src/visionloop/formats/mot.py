"""MOT Challenge sequences: ``<seq>/seqinfo.ini``, ``<seq>/img1/000001.jpg``, ``<seq>/gt/gt.txt``.

References: https://motchallenge.net/instructions/ (file format), the MOT16/MOT17 paper
https://arxiv.org/abs/1603.00831 (Table 5: the class ids) and MOT20 https://arxiv.org/abs/2003.09003;
CVAT's MOT 1.1 export https://docs.cvat.ai/docs/manual/advanced/formats/format-mot/ (``gt/labels.txt``).

``gt.txt`` holds one box per line, comma separated::

    MOT16/17/20:  frame, id, bb_left, bb_top, bb_width, bb_height, conf, class, visibility
    MOT15:        frame, id, bb_left, bb_top, bb_width, bb_height, conf, x, y, z

The layout is decided per file from its first line: 10 values whose 8th is not a positive integer
(MOT15's world x, usually -1) are MOT15, anything else the 9-value layout (a 10th value, as CVAT
writes, is ignored). ``conf`` in ground truth is a flag (0 = ignore this box in evaluation), not a
confidence: it is kept as ``attributes["conf"]``, ``visibility`` (0..1) as ``attributes["visibility"]``,
MOT15's world coordinates, when not all -1, as ``attributes["world"] = [x, y, z]``. ``id`` is
``Annotation.track_id``; a negative id (-1: "no identity", as det.txt and datumaro's ``mot_seq_gt``
exporter write a box without a track) is no track id, not one track shared by every such box. Frames are 1-based; boxes are read as they are, in pixels with (0, 0) the
top-left corner, as TrackEval, CVAT and datumaro read them (the original MATLAB devkit counted pixels
from 1, but no evaluation tool shifts the boxes, and neither do we).

Classes: the MOT17 table (1 pedestrian, 2 person on vehicle, 3 car, 4 bicycle, 5 motorbike,
6 non motorized vehicle, 7 static person, 8 distractor, 9 occluder, 10 occluder on the ground,
11 occluder full, 12 reflection), with the MOT class ids as ClassMap ids; or, when ``gt/labels.txt``
exists (CVAT), one name per line, class id = line number. MOT15 boxes are all ``pedestrian``.

Reading yields one Sample per frame (``seqLength`` frames named ``%06d<imExt>`` in ``imDir`` from
seqinfo.ini, else the images in ``img1/``), with the seqinfo size, ``metadata`` ``mot_sequence``,
``mot_frame`` and ``mot_frame_rate``, split = the folder above the sequences when it is not the
dataset root (``MOT17/train/MOT17-02`` → ``train``). A frame without boxes is NULL when the sequence
has a gt.txt, MISSING when it has none (test sequences). gt.txt sorted by frame (as det.txt and most
tools write it) is streamed; sorted by track id (as the official MOT17 gt.txt is) it is first spilled
into a temporary SQLite file, so memory stays flat either way.

Writing: ``out/[<split>/]<sequence>/{seqinfo.ini, img1/%06d<ext>, gt/gt.txt}`` in the 9-value layout,
sorted by frame. A sample's sequence is its ``mot_sequence`` metadata, else the folder holding its
``img1/`` folder, else one sequence named ``sequence``; frames are renumbered 1, 2, ... in the order
given. seqinfo.ini always has all seven keys (datumaro refuses one without them); an unknown frame
rate is written as 30 (counted as converted). Annotations without a track id get new ids above the sequence's largest (counted as converted).
``conf`` and ``visibility`` come from the attributes, else 1 (as CVAT and datumaro write them; a
confidence without a ``conf`` attribute is written as conf, as tracker results are); other attributes
(MOT15's ``world`` included) have no column and are counted as dropped.
Polygons, rotated boxes and masks are written as their bounds (counted); keypoints and whole-image
labels are dropped (counted). Class names outside the MOT17 table get ids 13, 14, ... and the writer
adds ``gt/labels.txt`` naming every id.
"""

from __future__ import annotations

import configparser
import logging
import math
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from visionloop.core.classes import ClassInfo, ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, bounds, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    is_image,
    place_image,
    relative_name,
    safe_name,
    with_size,
)

log = logging.getLogger(__name__)

FORMAT = "mot"
MOT17_CLASSES: tuple[str, ...] = (
    "pedestrian", "person on vehicle", "car", "bicycle", "motorbike", "non motorized vehicle",
    "static person", "distractor", "occluder", "occluder on the ground", "occluder full", "reflection",
)
SEQINFO = "seqinfo.ini"
GT = ("gt", "gt.txt")
LABELS = ("gt", "labels.txt")
IMG_DIR = "img1"
DEFAULT_SEQUENCE = "sequence"
DEFAULT_FRAME_RATE = 30
_SPLIT_NAMES = ("train", "test", "val", "valid", "validation")


# ---------------------------------------------------------------- layout


def _is_sequence(d: Path) -> bool:
    return (d / SEQINFO).is_file() or (d / GT[0] / GT[1]).is_file() or (d / IMG_DIR).is_dir()


def _subdirs(d: Path) -> list[Path]:
    try:
        with os.scandir(d) as it:
            return sorted(Path(e.path) for e in it if e.is_dir())
    except OSError:
        return []


def _sequences(root: Path) -> list[tuple[Path, str | None]]:
    """(sequence folder, split) pairs: root itself, its children, or split/sequence grandchildren."""
    if _is_sequence(root):
        return [(root, None)]
    found: list[tuple[Path, str | None]] = []
    for d in _subdirs(root):
        if _is_sequence(d):
            found.append((d, None))
        else:
            found += [(s, d.name) for s in _subdirs(d) if _is_sequence(s)]
    return found


def detect(path: Path) -> Detection:
    path = Path(path)
    if path.is_file():
        if path.name == GT[1] and path.parent.name == GT[0]:
            return Detection(0.9, "gt/gt.txt of a MOT sequence")
        return Detection.no("not a MOT folder")
    if not path.is_dir():
        return Detection.no("not a folder")
    candidates = [path] + _subdirs(path)[:50]
    for d in list(candidates[1:]):
        candidates += _subdirs(d)[:3]
    for d in candidates:
        if (d / SEQINFO).is_file() and ((d / GT[0] / GT[1]).is_file() or (d / IMG_DIR).is_dir()):
            return Detection(0.95, f"{d.name} has seqinfo.ini and gt/gt.txt or img1/")
        if (d / GT[0] / GT[1]).is_file() and (d / IMG_DIR).is_dir():
            return Detection(0.9, f"{d.name} has gt/gt.txt and img1/")
    return Detection.no("no MOT sequence (seqinfo.ini, gt/gt.txt, img1/)")


# ---------------------------------------------------------------- read


@dataclass
class _SeqInfo:
    name: str
    im_dir: str = IMG_DIR
    frame_rate: float | None = None
    length: int | None = None
    width: int | None = None
    height: int | None = None
    ext: str | None = None


def _seqinfo(seq: Path) -> _SeqInfo:
    path = seq / SEQINFO
    info = _SeqInfo(seq.name)
    if not path.is_file():
        return info
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text(encoding="utf-8-sig"))
    except (configparser.Error, UnicodeDecodeError) as e:
        raise FormatError(f"malformed seqinfo.ini ({e})", path=path) from None
    if not parser.has_section("Sequence"):
        raise FormatError("no [Sequence] section", path=path)
    s = parser["Sequence"]

    def number(key: str, cast: type) -> Any:
        if key not in s:
            return None
        try:
            value = cast(s[key])
        except ValueError:
            raise FormatError(f"{key}={s[key]!r} is not a number", path=path, where=f"[Sequence] {key}") from None
        if value <= 0:
            raise FormatError(f"{key} must be positive, got {value}", path=path, where=f"[Sequence] {key}")
        return value

    info.name = s.get("name", seq.name)
    info.im_dir = s.get("imDir", IMG_DIR)
    info.frame_rate = number("frameRate", float)
    info.length = number("seqLength", int)
    info.width = number("imWidth", int)
    info.height = number("imHeight", int)
    info.ext = s.get("imExt")
    return info


def _classes_for(seq: Path) -> list[str] | None:
    """The names of gt/labels.txt (class id = line number), or None."""
    p = seq.joinpath(*LABELS)
    if not p.is_file():
        return None
    return [line.strip() for line in p.read_text(encoding="utf-8-sig").splitlines() if line.strip()]


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    if path.is_file() and path.name == GT[1]:
        path = path.parent.parent
    sequences = _sequences(path)
    if not sequences:
        raise FormatError("no MOT sequence here", path=path,
                          hint="expected <sequence>/seqinfo.ini, <sequence>/img1/ and <sequence>/gt/gt.txt")
    classes = ClassMap()
    custom: dict[Path, list[str]] = {}
    for seq, _ in sequences:
        names = _classes_for(seq)
        if names is not None:
            custom[seq] = names
            for i, name in enumerate(names, start=1):
                if name not in classes:
                    classes._insert(ClassInfo(name, i if classes.by_id(i) is None else max(c.id for c in classes) + 1))
    if not custom or len(custom) < len(sequences):
        for i, name in enumerate(MOT17_CLASSES, start=1):
            if name not in classes and classes.by_id(i) is None:
                classes._insert(ClassInfo(name, i))
            elif name not in classes:
                classes.add(name)

    def samples() -> Iterator[Sample]:
        for seq, seq_split in sequences:
            names = custom.get(seq, list(MOT17_CLASSES))
            yield from _read_sequence(seq, path, split or seq_split, names)

    return Reader(classes, samples, source=path)


def _frame_files(seq: Path, info: _SeqInfo) -> Iterator[tuple[int, Path]]:
    folder = seq / info.im_dir
    if info.length is not None:
        ext = info.ext or ".jpg"
        for n in range(1, info.length + 1):
            p = folder / f"{n:06d}{ext}"
            if not p.is_file():
                for e in (".jpg", ".png", ".jpeg"):
                    if (folder / f"{n:06d}{e}").is_file():
                        p = folder / f"{n:06d}{e}"
                        break
            yield n, p
        return
    if not folder.is_dir():
        return
    numbered = []
    for p in folder.iterdir():
        if is_image(p) and p.stem.isdigit():
            numbered.append((int(p.stem), p))
    yield from sorted(numbered)


@dataclass
class _Row:
    frame: int
    annotation: Annotation


def _parse_line(line: str, lineno: int, path: Path, names: list[str], layout: list[str | None]) -> _Row | None:
    text = line.strip()
    if not text:
        return None
    fields = [f.strip() for f in text.split(",")]
    where = f"line {lineno}"
    if len(fields) < 6:
        raise FormatError(f"expected at least 6 comma-separated values, got {len(fields)}", path=path, where=where)
    try:
        values = [float(f) for f in fields]
    except ValueError:
        bad = next(f for f in fields if not _is_number(f))
        raise FormatError(f"{bad!r} is not a number", path=path, where=where) from None
    if not all(math.isfinite(v) for v in values):
        raise FormatError("values must be finite numbers", path=path, where=where)
    if layout[0] is None:
        layout[0] = "mot15" if len(values) == 10 and not (values[7].is_integer() and values[7] >= 1) else "mot17"
    frame, track, x, y, w, h = values[:6]
    if not frame.is_integer() or frame < 1:
        raise FormatError(f"frame must be a positive integer, got {fields[0]!r}", path=path, where=where)
    if not track.is_integer():
        raise FormatError(f"id must be an integer, got {fields[1]!r}", path=path, where=where)
    if w < 0 or h < 0:
        raise FormatError(f"box width and height must not be negative, got {fields[4]}, {fields[5]}",
                          path=path, where=where)
    attrs: dict[str, Any] = {}
    label = MOT17_CLASSES[0]
    if len(values) > 6:
        attrs["conf"] = _int_or_float(values[6])
    if layout[0] == "mot15":
        world = [_int_or_float(v) for v in values[7:10]]
        if len(world) == 3 and any(v != -1 for v in world):
            attrs["world"] = world
    elif len(values) > 7:
        cls = values[7]
        if not cls.is_integer() or not 1 <= cls <= len(names):
            raise FormatError(f"class {fields[7]!r} is not one of the {len(names)} classes (1..{len(names)})",
                              path=path, where=where)
        label = names[int(cls) - 1]
        if len(values) > 8:
            attrs["visibility"] = _int_or_float(values[8])
    ann = Annotation(label, Box.from_xywh(x, y, w, h), attributes=attrs, track_id=int(track) if track >= 0 else None)
    return _Row(int(frame), ann)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _int_or_float(v: float) -> int | float:
    return int(v) if v.is_integer() else v


def _rows(gt: Path, names: list[str]) -> Iterator[_Row]:
    """gt.txt's rows grouped by frame, in file order within a frame."""
    sorted_by_frame = True
    last = 0
    with open(gt, encoding="utf-8-sig") as f:
        for line in f:
            head = line.split(",", 1)[0].strip()
            if not head:
                continue
            try:
                frame = int(float(head))
            except ValueError:
                sorted_by_frame = False  # the parse below reports the line
                break
            if frame < last:
                sorted_by_frame = False
                break
            last = frame
    layout: list[str | None] = [None]
    if sorted_by_frame:
        with open(gt, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, start=1):
                row = _parse_line(line, lineno, gt, names, layout)
                if row is not None:
                    yield row
        return
    with tempfile.TemporaryDirectory(prefix="visionloop-mot-") as tmp:
        db = sqlite3.connect(Path(tmp) / "spill.db")
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE row (frame INTEGER, lineno INTEGER, line TEXT)")
        batch: list[tuple[int, int, str]] = []
        with open(gt, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, start=1):
                row = _parse_line(line, lineno, gt, names, layout)  # validates every line first
                if row is None:
                    continue
                batch.append((row.frame, lineno, line))
                if len(batch) >= 20000:
                    db.executemany("INSERT INTO row VALUES (?, ?, ?)", batch)
                    batch.clear()
        db.executemany("INSERT INTO row VALUES (?, ?, ?)", batch)
        db.execute("CREATE INDEX row_frame ON row (frame, lineno)")
        for _frame, lineno, line in db.execute("SELECT frame, lineno, line FROM row ORDER BY frame, lineno"):
            parsed = _parse_line(line, lineno, gt, names, layout)
            assert parsed is not None
            yield parsed
        db.close()


def _read_sequence(seq: Path, root: Path, split: str | None, names: list[str]) -> Iterator[Sample]:
    info = _seqinfo(seq)
    gt = seq.joinpath(*GT)
    has_gt = gt.is_file()
    rows = _rows(gt, names) if has_gt else iter(())
    pending = next(rows, None)
    frames = list(_frame_files(seq, info)) if info.length is None else None
    frame_iter = iter(frames) if frames is not None else _frame_files(seq, info)
    known_last = info.length if info.length is not None else (frames[-1][0] if frames else 0)
    meta_base: dict[str, Any] = {"mot_sequence": info.name}
    if info.frame_rate is not None:
        meta_base["mot_frame_rate"] = _int_or_float(info.frame_rate)
    for n, image in frame_iter:
        anns: list[Annotation] = []
        if pending is not None and pending.frame < n:
            raise FormatError(f"frame {pending.frame} has no image in {info.im_dir}/", path=gt)
        while pending is not None and pending.frame == n:
            anns.append(pending.annotation)
            pending = next(rows, None)
        try:
            file_name = relative_name(image, root)
        except ValueError:
            file_name = PurePosixPath(seq.name, info.im_dir, image.name).as_posix()
        ref = ImageRef(file_name, width=info.width, height=info.height, path=str(image.absolute()),
                       metadata={**meta_base, "mot_frame": n})
        state = LabelState.ANNOTATED if anns else (LabelState.NULL if has_gt else LabelState.MISSING)
        yield Sample(ref, tuple(anns), split=split, state=state)
    if pending is not None:
        raise FormatError(f"frame {pending.frame} is beyond the sequence's last frame {known_last}", path=gt)


# ---------------------------------------------------------------- write


@dataclass
class _SeqWriter:
    folder: Path
    name: str
    frames: int = 0
    max_id: int = 0
    missing_ids: int = 0
    width: int | None = None
    height: int | None = None
    ext: str | None = None
    frame_rate: Any = None
    lines: IO[str] = field(default_factory=lambda: tempfile.TemporaryFile("w+", encoding="utf-8"))

    def close(self, report: WriteReport) -> None:
        gt = self.folder / GT[0] / GT[1]
        gt.parent.mkdir(parents=True, exist_ok=True)
        next_id = self.max_id + 1
        self.lines.seek(0)
        with open(gt, "w", encoding="utf-8", newline="\n") as f:
            for line in self.lines:
                if line.startswith("?"):  # "?frame,rest": an annotation without a track id
                    frame, rest = line[1:].split(",", 1)
                    line = f"{frame},{next_id},{rest}"
                    next_id += 1
                f.write(line)
        self.lines.close()
        if self.missing_ids:
            report.converted["no track id -> new unique id"] += self.missing_ids
        ini = ["[Sequence]", f"name={self.name}", f"imDir={IMG_DIR}"]
        if self.frame_rate is None:
            report.converted[f"unknown frame rate -> frameRate={DEFAULT_FRAME_RATE}"] += 1
        ini.append(f"frameRate={self.frame_rate if self.frame_rate is not None else DEFAULT_FRAME_RATE}")
        ini.append(f"seqLength={self.frames}")
        if self.width is not None and self.height is not None:
            ini += [f"imWidth={self.width}", f"imHeight={self.height}"]
        ini.append(f"imExt={self.ext or '.jpg'}")
        (self.folder / SEQINFO).write_text("\n".join(ini) + "\n", encoding="utf-8")


def _sequence_of(ref: ImageRef) -> str:
    seq = ref.metadata.get("mot_sequence")
    if isinstance(seq, str) and seq:
        return safe_name(seq).replace("/", "_")
    parts = PurePosixPath(ref.file_name).parts
    positions = [k for k, p in enumerate(parts[:-1]) if p == IMG_DIR]
    if positions and positions[-1] > 0:
        return parts[positions[-1] - 1]
    return DEFAULT_SEQUENCE


def _num(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


class _ClassIds:
    """MOT17 table ids, then 13, 14, ... for other names."""

    def __init__(self) -> None:
        self.ids = {name: i for i, name in enumerate(MOT17_CLASSES, start=1)}
        self.extra: list[str] = []

    def __call__(self, name: str) -> int:
        if name not in self.ids:
            self.extra.append(name)
            self.ids[name] = len(MOT17_CLASSES) + len(self.extra)
        return self.ids[name]


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    report = WriteReport(FORMAT, str(out))
    class_ids = _ClassIds()
    if classes is not None:
        for c in classes:
            class_ids(c.name)
    seqs: dict[tuple[str | None, str], _SeqWriter] = {}
    try:
        for sample in samples:
            ref = with_size(sample.image)
            name = _sequence_of(ref)
            key = (sample.split, name)
            sw = seqs.get(key)
            if sw is None:
                folder = out / safe_name(sample.split) / name if sample.split else out / name
                sw = seqs[key] = _SeqWriter(folder, name)
                rate = ref.metadata.get("mot_frame_rate")
                sw.frame_rate = rate if isinstance(rate, int | float) and not isinstance(rate, bool) else None
            sw.frames += 1
            n = sw.frames
            ext = PurePosixPath(ref.file_name).suffix.lower() or ".jpg"
            if sw.ext is None:
                sw.ext, sw.width, sw.height = ext, ref.width, ref.height
            elif ext != sw.ext:
                report.converted[f"frame with extension {ext} in a sequence of {sw.ext} (imExt names the first)"] += 1
            if (ref.width, ref.height) != (sw.width, sw.height):
                report.converted["frame size differs from the sequence's imWidth x imHeight"] += 1
            if place_image(ref, sw.folder / IMG_DIR / f"{n:06d}{ext}", images):
                report.files += 1
            if sample.state is LabelState.MISSING:
                report.converted["missing -> null (gt.txt covers every frame)"] += 1
            for ann in sample.annotations:
                line = _line(ann, n, class_ids, report)
                if line is None:
                    continue
                if ann.track_id is None:
                    sw.missing_ids += 1
                    sw.lines.write(f"?{n},{line}\n")
                else:
                    sw.max_id = max(sw.max_id, ann.track_id)
                    sw.lines.write(f"{n},{ann.track_id},{line}\n")
            report.images += 1
        for sw in seqs.values():
            sw.close(report)
            report.files += 2  # gt.txt, seqinfo.ini
            if class_ids.extra:
                labels = sw.folder.joinpath(*LABELS)
                labels.write_text("\n".join([*MOT17_CLASSES, *class_ids.extra]) + "\n", encoding="utf-8")
                report.files += 1
    except BaseException:
        for sw in seqs.values():
            if not sw.lines.closed:
                sw.lines.close()
        raise
    return report


def _line(ann: Annotation, frame: int, class_ids: _ClassIds, report: WriteReport) -> str | None:
    """Everything after `frame,id,` for one annotation."""
    g = ann.geometry
    if isinstance(g, Keypoints | Label):
        report.drop(kind(g), "MOT holds boxes only")
        return None
    box = bounds(g)
    if box is None:  # pragma: no cover - only Label and empty keypoints have no bounds
        report.drop(kind(g), "no bounds")
        return None
    if not isinstance(g, Box):
        report.converted[f"{kind(g)} -> box (bounds)"] += 1
    report.annotations["box"] += 1
    conf = ann.attributes.get("conf")
    if not isinstance(conf, int | float) or isinstance(conf, bool):
        conf = 1
        if ann.confidence is not None:
            conf = ann.confidence
            report.converted["confidence -> conf"] += 1
    vis = ann.attributes.get("visibility")
    if not isinstance(vis, int | float) or isinstance(vis, bool):
        vis = 1
    for k in ann.attributes:
        if k not in ("conf", "visibility"):
            report.drop("attribute", f"{k!r}: MOT gt.txt holds conf and visibility only")
    x, y, w, h = box.xywh()
    return ",".join([_num(x), _num(y), _num(w), _num(h), _num(conf), str(class_ids(ann.label)), _num(vis)])

