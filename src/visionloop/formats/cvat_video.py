"""CVAT for video, XML 1.1 (`annotations.xml` with <track> elements, frames in `images/`).

Specification: https://docs.cvat.ai/docs/other/xml_format/ ("Interpolation" section) and the
export layout https://docs.cvat.ai/docs/manual/advanced/formats/format-cvat/ (frames exported as
`images/frame_000000.PNG` ...).

Each <track id label> holds one shape per frame (CVAT writes interpolated frames too, with
``keyframe="0"``). A shape with ``outside="1"`` means the object is not visible on that frame and
is skipped. Every other shape becomes an annotation with ``track_id`` = the track's id on the
sample of its frame; shapes are read as in `formats.cvat` (box, rotated box, polygon, polyline, mask,
points, skeleton), with the track's ``source`` and ``group_id``. ``keyframe`` is a CVAT
editing detail and is not kept.

Samples are frames in frame order: the `frame_NNNNNN.*` files found in `images/` plus every
annotated frame (or frames start..start+size-1 from <meta> when there are no files). Frame size
is <original_size> from <meta> (else the file's header). Every frame is labelled (NULL when
empty). The XML is track-major, so shapes are spilled to a temporary SQLite file by frame while
parsing; memory stays flat.

Writing: the samples are the frames in order (frame = position in the stream) and images are
written as `images/frame_NNNNNN<ext>`. Annotations with the same ``(track_id, label)`` form one
<track> (its id is the track id when free); an annotation without a track id is a track of its
own. Every shape is a keyframe, and a copy with ``outside="1"`` is added on the frame after each
run of frames, so CVAT does not extend the track past where it was seen. Two shapes of one track
on the same frame are split into separate tracks (counted). Image-level labels cannot be held
in CVAT for video (dropped, counted), nor confidence or crowd flags.
"""

from __future__ import annotations

import logging
import pickle
import re
import sqlite3
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from xml.sax.saxutils import quoteattr

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.sample import ImageRef, LabelState, Sample
from visionloop.formats import _cvat
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
    image_size,
    place_image,
    relative_name,
    with_size,
)
from visionloop.formats.cvat import XML_NAME, _xml_file, read_meta

log = logging.getLogger(__name__)

FORMAT = "cvat_video"
_FRAME = re.compile(r"frame_(\d+)\.[A-Za-z0-9]+$")
_SHAPES = ("box", "polygon", "polyline", "points", "mask", "ellipse", "skeleton", "cuboid")


def detect(path: Path) -> Detection:
    xml = _xml_file(Path(path))
    if xml is None:
        return Detection.no("no annotations.xml (or single .xml file)")
    found = _cvat.sniff(xml)
    if found is None:
        return Detection.no(f"{xml.name} is not CVAT XML (no <annotations> with <version>)")
    kind, mode = found
    if kind == "track":
        return Detection(0.95, f"{xml.name} is CVAT XML with <track> elements")
    if kind == "empty" and mode == "interpolation":
        return Detection(0.5, f"{xml.name} is CVAT XML of an interpolation task without tracks")
    return Detection.no(f"{xml.name} is CVAT XML with <image> elements (CVAT for images)")


# ---------------------------------------------------------------- read


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    xml = _xml_file(path)
    if xml is None:
        raise FormatError("no CVAT annotation file here", path=path, hint="expected annotations.xml or an .xml file")
    meta = read_meta(xml)
    classes = meta.classes()

    def samples() -> Iterator[Sample]:
        yield from _samples(xml, meta, classes, split)

    return Reader(classes, samples, source=path)


def _frame_files(folder: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    if folder.is_dir():
        for f in sorted(folder.iterdir()):
            m = _FRAME.search(f.name)
            if m and f.is_file():
                out.setdefault(int(m.group(1)), f)
    return out


def _samples(xml: Path, meta: _cvat.Meta, classes: ClassMap, split: str | None) -> Iterator[Sample]:
    images = xml.parent / "images"
    files = _frame_files(images)
    size = meta.original_size
    if size is None and files:
        size = image_size(next(iter(files.values())))
    with tempfile.TemporaryDirectory(prefix="visionloop-cvat-video-") as tmp:
        db = sqlite3.connect(Path(tmp) / "spill.db")
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE shape (seq INTEGER PRIMARY KEY, frame INTEGER, data BLOB)")
        buf: list[tuple[int, bytes]] = []
        for el in _cvat.iter_top(xml):
            if el.tag == "image":
                raise FormatError("this is CVAT for images (it has <image> elements)", path=xml,
                                  where=f"<image id={el.get('id')!r}>", hint="read it with --format cvat")
            if el.tag == "track":
                buf.extend(_track(el, xml, meta, classes, size))
                if len(buf) > 5000:
                    db.executemany("INSERT INTO shape (frame, data) VALUES (?, ?)", buf)
                    buf.clear()
        db.executemany("INSERT INTO shape (frame, data) VALUES (?, ?)", buf)
        db.execute("CREATE INDEX shape_frame ON shape (frame, seq)")
        annotated = [r[0] for r in db.execute("SELECT DISTINCT frame FROM shape")]
        frames = set(files) | set(annotated)
        if not files and meta.size:
            frames |= set(range(meta.start_frame, meta.start_frame + meta.size))
        for frame in sorted(frames):
            anns = tuple(pickle.loads(r[0]) for r in
                         db.execute("SELECT data FROM shape WHERE frame = ? ORDER BY seq", (frame,)))
            f = files.get(frame)
            name = relative_name(f, images) if f is not None else f"frame_{frame:06d}.PNG"
            ref = ImageRef(name, width=size[0] if size else None, height=size[1] if size else None,
                           path=str(f if f is not None else images / name), metadata={"frame": frame})
            yield Sample(ref, anns, split=split, state=LabelState.ANNOTATED if anns else LabelState.NULL)
        db.close()


def _track(el: ET.Element, xml: Path, meta: _cvat.Meta, classes: ClassMap,
           size: tuple[int, int] | None) -> list[tuple[int, bytes]]:
    label = el.get("label")
    tid = el.get("id")
    where = f"<track id={tid!r}>"
    if not label:
        raise FormatError("<track> has no `label`", path=xml, where=where)
    try:
        track_id = int(tid) if tid is not None else None
    except ValueError:
        raise FormatError(f"track id {tid!r} is not an integer", path=xml, where=where) from None
    if label not in classes:
        classes.add(label)
    out = []
    for child in el:
        if child.tag not in _SHAPES:
            continue
        frame_text = child.get("frame")
        swhere = f"{where} <{child.tag} frame={frame_text!r}>"
        try:
            frame = int(frame_text or "")
        except ValueError:
            raise FormatError(f"frame {frame_text!r} is not an integer", path=xml, where=swhere) from None
        if child.get("outside") == "1":
            continue
        if child.tag == "skeleton" and all(p.get("outside") == "1" for p in child.findall("points")):
            continue  # a skeleton is outside when all its points are
        ann = _cvat.parse_shape(child, label, _cvat.Context(xml, swhere, size, meta),
                                source=el.get("source"), group=el.get("group_id"))
        if ann is None:
            continue
        out.append((frame, pickle.dumps(replace(ann, track_id=track_id))))
    return out



# ---------------------------------------------------------------- write


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    book = _cvat.LabelBook(ClassMap(list(classes)) if classes is not None else ClassMap())
    report = WriteReport(FORMAT, str(out))
    final, partial = out / XML_NAME, out / (XML_NAME + ".partial")
    with tempfile.TemporaryDirectory(prefix="visionloop-cvat-video-", dir=out) as tmp:
        db = sqlite3.connect(Path(tmp) / "spill.db")
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE shape (seq INTEGER PRIMARY KEY, tkey TEXT, tid INTEGER, label TEXT, "
                   "frame INTEGER, data BLOB)")
        try:
            n, size, single = 0, None, 0
            rows: list[tuple[str, int | None, str, int, bytes]] = []
            for sample in samples:
                ref = with_size(sample.image)
                if size is None:
                    size = (ref.width, ref.height)
                elif size != (ref.width, ref.height):
                    report.converted["frame of another size (CVAT video frames share one size)"] += 1
                ext = Path(ref.file_name).suffix or ".png"
                if place_image(ref, out / "images" / f"frame_{n:06d}{ext}", images):
                    report.files += 1
                for ann in sample.annotations:
                    if ann.label not in book.classes:
                        book.classes.add(ann.label)
                    lead = {"frame": str(n), "keyframe": "1", "outside": "0"}
                    for shape in _cvat.shapes_for(ann, lead, book=book, report=report, video=True):
                        if ann.track_id is not None:
                            key, tid = f"t{ann.track_id}|{ann.label}", ann.track_id
                        else:
                            single += 1
                            key, tid = f"s{single}", None
                        shape.fields["_source"] = _cvat.source_text(ann.source)
                        rows.append((key, tid, ann.label, n, pickle.dumps(shape)))
                if len(rows) > 5000:
                    db.executemany("INSERT INTO shape (tkey, tid, label, frame, data) VALUES (?, ?, ?, ?, ?)", rows)
                    rows.clear()
                count_state_change(report, sample, becomes=LabelState.NULL, why="every frame of a video is labelled")
                report.images += 1
                n += 1
            db.executemany("INSERT INTO shape (tkey, tid, label, frame, data) VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("CREATE INDEX shape_track ON shape (tkey, frame, seq)")
            with open(partial, "w", encoding="utf-8") as f:
                f.write(_cvat.header(_meta_xml(book, n, size)))
                _write_tracks(db, f, n, report)
                f.write("</annotations>\n")
            partial.replace(final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            db.close()
    return report


def _meta_xml(book: _cvat.LabelBook, n: int, size: tuple[int | None, int | None] | None) -> str:
    osz = ""
    if size is not None:
        osz = (f"      <original_size>\n        <width>{size[0]}</width>\n        <height>{size[1]}</height>\n"
               "      </original_size>\n")
    return ("  <meta>\n    <task>\n      <id>0</id>\n      <name>visionloop</name>\n"
            f"      <size>{n}</size>\n      <mode>interpolation</mode>\n      <overlap>0</overlap>\n"
            f"      <start_frame>0</start_frame>\n      <stop_frame>{max(n - 1, 0)}</stop_frame>\n"
            f"{book.xml('      ')}\n{osz}    </task>\n  </meta>\n")


def _write_tracks(db: sqlite3.Connection, f: object, n_frames: int, report: WriteReport) -> None:
    """Tracks in (track id, label) order; frames repeated within a track are split off."""
    keys = db.execute("SELECT tkey, MIN(tid), MIN(label), MIN(seq) FROM shape GROUP BY tkey "
                      "ORDER BY MIN(tid) IS NULL, MIN(tid), MIN(seq)").fetchall()
    used: set[int] = {r[1] for r in keys if r[1] is not None}
    taken: set[int] = set()
    next_free = 0

    def fresh() -> int:
        nonlocal next_free
        while next_free in used or next_free in taken:
            next_free += 1
        taken.add(next_free)
        return next_free

    write = f.write  # type: ignore[attr-defined]
    for key, tid, label, _ in keys:
        shapes: list[tuple[int, _cvat.Shape]] = [
            (frame, pickle.loads(data)) for frame, data in
            db.execute("SELECT frame, data FROM shape WHERE tkey = ? ORDER BY frame, seq", (key,))]
        runs: list[list[tuple[int, _cvat.Shape]]] = [[]]
        for frame, shape in shapes:
            for run in runs:
                if not run or run[-1][0] != frame:
                    run.append((frame, shape))
                    break
            else:
                runs.append([(frame, shape)])
                report.converted["track split: two shapes of one track on the same frame"] += 1
        for i, run in enumerate(runs):
            out_id = tid if (i == 0 and tid is not None and tid not in taken) else fresh()
            taken.add(out_id)
            write(_track_xml(out_id, label, run, n_frames))


def _track_xml(track_id: int, label: str, run: list[tuple[int, _cvat.Shape]], n_frames: int) -> str:
    first = run[0][1]
    fields = {"id": str(track_id), "label": label, "source": first.fields.get("_source", "manual")}
    group = first.fields.get("group_id")
    if group:
        fields["group_id"] = group
    parts = ["  <track " + " ".join(f"{k}={quoteattr(v)}" for k, v in fields.items()) + ">\n"]
    for k, (frame, shape) in enumerate(run):
        shape.fields.pop("_source", None)
        shape.fields.pop("group_id", None)
        parts.append(shape.render("    "))
        following = run[k + 1][0] if k + 1 < len(run) else None
        if following != frame + 1 and frame + 1 < n_frames:
            hidden = _cvat.Shape(shape.tag, {**shape.fields, "frame": str(frame + 1), "outside": "1"},
                                 shape.attributes, [x.replace('outside="0"', 'outside="1"') for x in shape.inner])
            parts.append(hidden.render("    "))
    parts.append("  </track>\n")
    return "".join(parts)
