"""COCO captions: ``annotations/captions_<split>.json``.

Reference: https://cocodataset.org/#format-data ("Image Captioning")::

    {"images": [{"id", "file_name", "width", "height"}],
     "annotations": [{"id", "image_id", "caption": str}]}

Each caption is a `Caption` annotation (label empty: a caption has no class), in file order per image. An
image with captions is therefore ANNOTATED, one without is MISSING (listed, never captioned). Image ids are
kept as ``metadata["coco_id"]``. Split = the ``<split>`` of the file name. What datumaro's exporter adds to a
caption is read too: ``score`` (→ confidence, 0..1) and ``attributes``; its ``"category_id": 0`` (a
workaround for cocoapi, not a class) is ignored. Caption ids are not kept (the writer numbers them 1..N).

Reading streams: captions are spilled into a temporary SQLite file keyed by image id, then the
``images`` list is streamed and each image gets its captions.

Writing: ``annotations/captions_<split>.json`` (split None → ``default``) with images in ``images/<split>/``
(the layout datumaro reads); caption ids 1..N per file, ``score`` and ``attributes`` when a caption has them.
Other annotations cannot be held and are counted as dropped.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

import orjson

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._captions import caption_annotation, caption_entry
from visionloop.formats._jsonstream import UniqueNames, head, iter_items, jsonable, prefixed_json_files
from visionloop.formats.base import (
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
    place_image,
    safe_name,
)

log = logging.getLogger(__name__)

FORMAT = "coco_captions"
#: the file of COCO objects (Roboflow's layout, our COCO writer's) whose split's captions coco reads with it
ROBOFLOW_NAME = "_annotations.coco.json"
PREFIX = "captions_"
DEFAULT_SPLIT = "default"


def _json_files(path: Path) -> list[Path]:
    return prefixed_json_files(path, PREFIX)


def detect(path: Path) -> Detection:
    path = Path(path)
    files = _json_files(path)
    if not files:
        return Detection.no("no captions_<split>.json")
    data = head(files[0], 65536)
    if not data.lstrip().startswith(b"{") or not (files[0].name.startswith(PREFIX) or b'"caption"' in data):
        return Detection.no(f"{files[0].name} is not a COCO captions file")
    if path.is_dir() and any((path / "annotations").glob("instances_*.json")):
        return Detection(0.5, "captions beside COCO instances (the instances are read as COCO)")
    if path.is_dir() and ((path / ROBOFLOW_NAME).is_file() or any(path.glob(f"*/{ROBOFLOW_NAME}"))):
        return Detection(0.5, f"captions beside COCO's {ROBOFLOW_NAME} (read with it as COCO)")
    return Detection(0.98, f"{files[0].name} is COCO captions")


def _split_of(f: Path) -> str | None:
    split = f.stem[len(PREFIX):] if f.stem.startswith(PREFIX) else None
    return None if split in (None, "", DEFAULT_SPLIT) else split


def read(path: Path, *, split: str | None = None) -> Reader:
    path = Path(path)
    files = _json_files(path)
    if not files:
        raise FormatError("no COCO captions file here", path=path, hint="expected annotations/captions_<split>.json")

    def samples() -> Iterator[Sample]:
        for f in files:
            yield from _read_file(f, split or _split_of(f))

    return Reader(ClassMap(), samples, source=path)


def _image_dir(path: Path) -> list[Path]:
    d = path.parent
    root = d.parent if d.name == "annotations" else d
    raw = path.stem[len(PREFIX):] if path.stem.startswith(PREFIX) else ""
    return [root / raw, root / "images" / raw, root / "images", root, d] if raw else [root / "images", root, d]


def _where(i: int, ann: Any) -> str:
    return f"annotations[{i}]" + (f" (id {ann['id']})" if isinstance(ann, dict) and "id" in ann else "")


def _read_file(path: Path, split: str | None) -> Iterator[Sample]:
    candidates = _image_dir(path)
    known: Path | None = None
    with tempfile.TemporaryDirectory(prefix="visionloop-captions-") as tmp:
        db = sqlite3.connect(Path(tmp) / "captions.db")
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE cap (seq INTEGER PRIMARY KEY, image_id INTEGER, data BLOB)")
        batch: list[tuple[int, Any, bytes]] = []
        for i, ann in enumerate(iter_items(path, "annotations.item")):
            caption_annotation(ann, path, _where(i, ann))  # checked here: an error names its entry
            batch.append((i, ann["image_id"], orjson.dumps(ann)))
            if len(batch) >= 20000:
                db.executemany("INSERT INTO cap VALUES (?, ?, ?)", batch)
                batch.clear()
        db.executemany("INSERT INTO cap VALUES (?, ?, ?)", batch)
        db.execute("CREATE INDEX cap_image ON cap (image_id, seq)")
        seen: set[Any] = set()
        for i, im in enumerate(iter_items(path, "images.item")):
            where = f"images[{i}]"
            if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
                raise FormatError("an image needs `id` and `file_name`", path=path, where=where)
            if im["id"] in seen:
                raise FormatError(f"duplicate image id {im['id']}", path=path, where=where)
            seen.add(im["id"])
            captions = tuple(caption_annotation(orjson.loads(d), path, f"annotations[{seq}]") for seq, d in db.execute(
                "SELECT seq, data FROM cap WHERE image_id = ? ORDER BY seq", (im["id"],)))
            name = im["file_name"]
            if known is None or not (known / name).is_file():
                for c in candidates:
                    if (c / name).is_file():
                        known = c
                        break
            meta: dict[str, Any] = {k: v for k, v in im.items() if k not in ("id", "file_name", "width", "height")}
            meta["coco_id"] = im["id"]
            w, h = im.get("width"), im.get("height")
            ref = ImageRef(name, width=int(w) if w else None, height=int(h) if h else None,
                           path=str(((known or candidates[0]) / name).absolute()), metadata=meta)
            yield Sample(ref, captions, split=split, state=None if captions else LabelState.MISSING)
        for seq, image_id in db.execute("SELECT seq, image_id FROM cap ORDER BY seq"):
            if image_id not in seen:
                raise FormatError(f"refers to image_id {image_id}, which is not in `images`", path=path,
                                  where=f"annotations[{seq}]")
        db.close()


class _SplitFile:
    def __init__(self, out: Path, split: str) -> None:
        self.final = out / "annotations" / f"{PREFIX}{split}.json"
        self.image_dir = out / "images" / split
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.images: IO[bytes] = tempfile.TemporaryFile(dir=self.final.parent)
        self.anns: IO[bytes] = tempfile.TemporaryFile(dir=self.final.parent)
        self.n_images = 0
        self.n_anns = 0
        self.names = UniqueNames()
        self.ids: set[int] = set()

    def image(self, entry: dict[str, Any]) -> None:
        self.images.write((b"," if self.n_images else b"") + orjson.dumps(entry))
        self.n_images += 1

    def caption(self, image_id: int, ann: Annotation) -> None:
        self.n_anns += 1
        self.anns.write((b"," if self.n_anns > 1 else b"") + orjson.dumps(caption_entry(image_id, self.n_anns, ann)))

    def close(self) -> None:
        partial = self.final.with_name(self.final.name + ".partial")
        with open(partial, "wb") as f:
            f.write(b'{"info":{"description":"written by visionloop"},"licenses":[],"images":[')
            for part, tail in ((self.images, b'],"annotations":['), (self.anns, b"]}")):
                part.seek(0)
                while chunk := part.read(1 << 20):
                    f.write(chunk)
                f.write(tail)
        self.abort()
        partial.replace(self.final)

    def abort(self) -> None:
        self.images.close()
        self.anns.close()


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
    next_id = 1
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
            image_id = ref.metadata.get("coco_id")
            if not isinstance(image_id, int) or isinstance(image_id, bool) or image_id in sf.ids:
                while next_id in sf.ids:
                    next_id += 1
                image_id = next_id
            sf.ids.add(image_id)
            entry: dict[str, Any] = {"id": image_id, "file_name": name}
            if ref.width is not None and ref.height is not None:
                entry.update(width=ref.width, height=ref.height)
            entry.update(jsonable({k: v for k, v in ref.metadata.items() if k != "coco_id" and k not in entry}))
            sf.image(entry)
            captioned = False
            for ann in sample.annotations:
                if ann.is_caption:
                    sf.caption(image_id, ann)
                    report.annotations["caption"] += 1
                    captioned = True
                else:
                    report.drop(kind(ann.geometry), "COCO captions holds captions only")
            if not captioned:
                count_state_change(report, sample, becomes=LabelState.MISSING, why="an image without captions")
            report.images += 1
        for sf in files.values():
            sf.close()
            report.files += 1
    except BaseException:
        for sf in files.values():
            sf.abort()
        raise
    return report
