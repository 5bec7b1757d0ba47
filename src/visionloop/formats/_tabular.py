"""Helpers shared by the one-row-per-box text formats (tfcsv, retinanet, yolokeras, clscsv, createml, vlm).

- `grouped`: rows of one image gathered, streaming when the file keeps them together (the usual
  case) and spilling to a temporary SQLite file when it does not, so memory stays flat.
- `ImageRoot`: where a file's images live, learnt from the first one found.
- `UniqueNames`: image names unique per output folder, renamed with a count when taken.
- `number`: a coordinate as the shortest text that reads back as the same float.
- `as_box`: any geometry as the box a box-only format writes, counting conversions and drops.
- `CsvRows`: a CSV file's rows parsed strictly (every CSV reader of `formats/` uses it).
"""

from __future__ import annotations

import csv
import logging
import math
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Label, kind
from visionloop.core.sample import Annotation
from visionloop.formats.base import WriteReport

log = logging.getLogger(__name__)

SPLIT_WORDS = frozenset({"train", "val", "valid", "validation", "test", "eval", "trainval"})

#: one row: (image key, line number, the row's values)
Row = tuple[str, int, list[str]]


class CsvRows:
    """`csv.reader` over an open file, strict: a quote that is never closed or a stray one — what a file cut
    short or edited by hand leaves — is a FormatError naming the file and line, never a row read wrongly (the
    lenient reader turns `"tria` at the end of a cut file into a class named `tria`)."""

    def __init__(self, handle: Any, path: Path | str, **options: Any) -> None:
        self._reader = csv.reader(handle, strict=True, **options)
        self.path = path

    @property
    def line_num(self) -> int:
        return self._reader.line_num

    def __iter__(self) -> CsvRows:
        return self

    def __next__(self) -> list[str]:
        try:
            return next(self._reader)
        except csv.Error as e:
            raise FormatError(f"malformed CSV ({e})", path=self.path, where=f"line {self._reader.line_num}",
                              hint="a quoted value is not closed: is the file complete?") from None


def grouped(rows: Callable[[], Iterator[Row]]) -> Iterator[tuple[str, list[tuple[int, list[str]]]]]:
    """(key, [(line, values), ...]) per image in order of first appearance.

    `rows` is called once to check that each key's rows are contiguous (only the keys are kept),
    then once more to stream them; rows of a key that comes back later are gathered through a
    temporary SQLite file instead of memory.
    """
    finished: set[str] = set()
    current: str | None = None
    contiguous = True
    for key, _, _ in rows():
        if key != current:
            if key in finished:
                contiguous = False
                break
            if current is not None:
                finished.add(current)
            current = key
    finished.clear()
    if contiguous:
        yield from _stream(rows())
    else:
        log.info("rows of one image are not together; gathering them through a temporary file")
        yield from _spilled(rows())


def _stream(rows: Iterator[Row]) -> Iterator[tuple[str, list[tuple[int, list[str]]]]]:
    current: str | None = None
    group: list[tuple[int, list[str]]] = []
    for key, line, values in rows:
        if key != current:
            if current is not None:
                yield current, group
            current, group = key, []
        group.append((line, values))
    if current is not None:
        yield current, group


def _spilled(rows: Iterator[Row]) -> Iterator[tuple[str, list[tuple[int, list[str]]]]]:
    with tempfile.TemporaryDirectory(prefix="visionloop-rows-") as tmp:
        db = sqlite3.connect(Path(tmp) / "rows.db")
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("CREATE TABLE k (seq INTEGER PRIMARY KEY, key TEXT UNIQUE)")
            db.execute("CREATE TABLE r (key INTEGER, line INTEGER, data BLOB)")
            keys: dict[str, int] = {}
            batch: list[tuple[int, int, bytes]] = []
            for key, line, values in rows:
                seq = keys.get(key)
                if seq is None:
                    seq = keys[key] = len(keys)
                    db.execute("INSERT INTO k VALUES (?, ?)", (seq, key))
                batch.append((seq, line, bytes(memoryview(orjson.dumps(values)))))  # exact size: no 4 KB slack
                if len(batch) >= 10000:
                    db.executemany("INSERT INTO r VALUES (?, ?, ?)", batch)
                    batch.clear()
            db.executemany("INSERT INTO r VALUES (?, ?, ?)", batch)
            keys.clear()
            db.execute("CREATE INDEX r_key ON r (key, line)")
            cur = db.execute("SELECT k.key, r.line, r.data FROM k JOIN r ON r.key = k.seq ORDER BY k.seq, r.line")
            current: str | None = None
            group: list[tuple[int, list[str]]] = []
            for key, line, data in cur:
                if key != current:
                    if current is not None:
                        yield current, group
                    current, group = key, []
                group.append((line, orjson.loads(data)))
            if current is not None:
                yield current, group
        finally:
            db.close()


class ImageRoot:
    """Finds the folder a file's image names are relative to, learning from the first one found."""

    def __init__(self, candidates: Sequence[Path]) -> None:
        self.candidates = list(candidates)
        self.known: Path | None = None

    def resolve(self, name: str) -> Path:
        if self.known is not None and (self.known / name).is_file():
            return self.known / name
        for root in self.candidates:
            if (root / name).is_file():
                self.known = root
                return root / name
        return (self.known or self.candidates[0]) / name


class UniqueNames:
    """Image names unique per output folder (case-insensitively): a second `x.jpg` becomes `x_1.jpg`."""

    def __init__(self) -> None:
        self._taken: dict[str, set[str]] = {}

    def claim(self, folder: str, name: str, report: WriteReport) -> str:
        taken = self._taken.setdefault(folder, set())
        p = PurePosixPath(name)
        candidate, k = name, 0
        while candidate.casefold() in taken:
            k += 1
            candidate = str(p.with_name(f"{p.stem}_{k}{p.suffix}"))
        taken.add(candidate.casefold())
        if k:
            log.warning("%s: %s already written to %s; writing it as %s", report.format, name, folder or ".",
                        candidate)
            report.converted["image name -> renamed (name already used in its folder)"] += 1
        return candidate


def number(value: float) -> str:
    """An integer-valued float as an integer ("12"), else the shortest exact decimal ("12.125")."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def as_box(ann: Annotation, report: WriteReport, fmt: str) -> Box | None:
    """The box a box-only format writes for an annotation; conversions and drops are counted."""
    g = ann.geometry
    if isinstance(g, Box):
        report.annotations["box"] += 1
        return g
    if isinstance(g, Label):
        report.drop("label", f"{fmt} cannot hold whole-image labels")
        return None
    if isinstance(g, Keypoints):
        if ann.bbox is None:
            report.drop("keypoints", f"{fmt} holds boxes only and these keypoints declare no box")
            return None
        report.converted["keypoints -> box (declared bbox)"] += 1
        report.annotations["box"] += 1
        return ann.bbox
    box = ann.box
    if box is None:  # pragma: no cover - every other kind has bounds
        report.drop(kind(g), "no box")
        return None
    report.converted[f"{kind(g)} -> box (bounds)"] += 1
    report.annotations["box"] += 1
    return box


def split_folder(split: str) -> str:
    """A split name usable as one folder name."""
    import re

    cleaned = re.sub(r"[^\w.-]+", "_", split).strip("._")
    return cleaned or "split"
