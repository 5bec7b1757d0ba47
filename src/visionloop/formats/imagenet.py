"""ImageNet-style classification: a synset mapping file with synset folders or ``path label`` lists.

References: the ILSVRC CLS-LOC release as Kaggle distributes it (``LOC_synset_mapping.txt``: ``n01440764 tench,
Tinca tinca`` per line, the line number being the class index; ``ILSVRC/Data/CLS-LOC/train/<wnid>/*.JPEG``;
``val/`` flat with ``LOC_val_solution.csv``: ``ImageId,PredictionString`` whose first token is the wnid), and
mmpretrain's ImageNet / CustomDataset annotation lists (mmpretrain/datasets/imagenet.py, custom.py:
``meta/train.txt`` lines ``n01440764/n01440764_10026.JPEG 0``, paths relative to the split folder, the number the
class index; a line without a number is an unlabelled image), with ``synsets.txt`` / ``classes.txt`` (one class
per line).

Classes: the mapping file's lines in order (ids 0..). A line ``<wnid> <words>`` (``n03126707 crane``, ``n01440764
tench, Tinca tinca``: ``synset_words.txt``, ``LOC_synset_mapping.txt``) names the class by its first word (up to
the first comma: ``crane``, ``tench``), and each of its labels keeps the wnid in the attribute ``wnid``; where two
synsets share that name, ignoring case (ILSVRC has two ``crane``, two ``maillot``, ``Cardigan`` and
``cardigan``), each is named ``<name> (<wnid>)``. A line of only a wnid, or of one token, names the class by it.
The wnid (or the token) is what the folders and ``LOC_val_solution.csv`` name a class by. The synonyms after the
first comma are not kept. Layouts read, in the folder given
(or ``meta/`` for lists): lists ``train.txt``, ``val.txt``, ``test.txt`` (ILSVRC's ``ImageSets/CLS-LOC/train_cls.txt`` is not one: its
numbers count images, not classes); else split folders
``train/``, ``val/``, ``test/`` (here or in ``ILSVRC/Data/CLS-LOC/``) holding one folder per class -- a folder that
is not a class of the mapping is an error -- or images directly (labelled by ``LOC_val_solution.csv`` when it is
there, else MISSING). A label outside the mapping or a listed image that is not there is an error naming the
line (the image is quarantined).

Writing: ``synsets.txt`` (``<wnid> <name>`` for a class whose labels carry a ``wnid``, the `` (<wnid>)`` that told
two names apart left out; else the class name), ``<split>/<class>/<name>`` (the class's wnid when it has one) and
``meta/<split>.txt`` (``<class>/<name> <index>``); a sample without a split goes to ``train`` (counted), its one whole-image label decides the class
(others, and other geometry, dropped and counted); an image without a class is listed without a number.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError, ImageError
from visionloop.core.geometry import Label, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats._arrays import one_label
from visionloop.formats._tabular import UniqueNames
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    NO_IMAGES_HINT,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    count_state_change,
    is_image,
    iter_files,
    place_image,
    quarantine,
    refuse_filled,
    relative_name,
    safe_name,
)

log = logging.getLogger(__name__)

FORMAT = "imagenet"
MAPPINGS = ("LOC_synset_mapping.txt", "synsets.txt", "synset_words.txt", "classes.txt")
SPLITS = ("train", "val", "test")
VAL_SOLUTION = "LOC_val_solution.csv"
_SPLIT_OF = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _mapping(root: Path) -> Path | None:
    for folder in (root, root / "meta"):
        for name in MAPPINGS:
            if (folder / name).is_file():
                return folder / name
    return None


@dataclass(frozen=True)
class _Synset:
    key: str  # what folders and LOC_val_solution.csv call the class: the wnid, or the line's one token
    name: str  # the class name
    wnid: str | None


def _is_wnid(token: str) -> bool:
    return len(token) > 1 and token[0] == "n" and token[1:].isdigit()


def _synsets(path: Path) -> list[_Synset]:
    """The mapping file's classes in order, named as the module says."""
    rows: list[tuple[str, str, str | None]] = []
    seen: set[str] = set()
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        words = line.split(maxsplit=1)
        wnid = words[0] if _is_wnid(words[0]) else None
        key = words[0] if wnid else line.strip()
        if key in seen:
            raise FormatError(f"class {key!r} listed twice", path=path, where=f"line {n}")
        seen.add(key)
        name = words[1].split(",")[0].strip() if wnid and len(words) > 1 else ""
        rows.append((key, name or key, wnid))
    shared = Counter(name.casefold() for _, name, wnid in rows if wnid)
    out = []
    for key, name, wnid in rows:
        if wnid and name != wnid and shared[name.casefold()] > 1:
            name = f"{name} ({wnid})"
        out.append(_Synset(key, name, wnid))
    names = Counter(s.name for s in out)
    twice = next((s for s in out if names[s.name] > 1), None)
    if twice is not None:
        raise FormatError(f"two classes are named {twice.name!r}", path=path,
                          hint="give each line its own wnid or name")
    return out


def _names(path: Path) -> list[str]:
    return [s.name for s in _synsets(path)]


def _label(synset: _Synset) -> Annotation:
    return Annotation(synset.name, Label(), {"wnid": synset.wnid} if synset.wnid else {})


def _lists(root: Path) -> list[tuple[str, Path]]:
    for folder in (root / "meta", root):
        found = [(s, folder / f"{s}.txt") for s in SPLITS if (folder / f"{s}.txt").is_file()]
        if found:
            return found
    return []


def _split_dirs(root: Path) -> list[tuple[str, Path]]:
    for base in (root, root / "ILSVRC" / "Data" / "CLS-LOC"):
        found = [(s, base / s) for s in SPLITS if (base / s).is_dir()]
        if found:
            return found
    return []


def detect(path: Path) -> Detection:
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    mapping = _mapping(path)
    if mapping is None:
        return Detection.no(f"no class mapping file ({', '.join(MAPPINGS)})")
    lists = _lists(path)
    if lists:
        return Detection(0.9, f"{mapping.name} and lists {', '.join(p.name for _, p in lists)}")
    dirs = _split_dirs(path)
    if dirs:
        return Detection(0.9, f"{mapping.name} and split folders {', '.join(d.name for _, d in dirs)}")
    return Detection.no(f"{mapping.name} but no train.txt/val.txt lists or train/ val/ folders")


def read(path: Path, *, split: str | None = None) -> Reader:
    root = Path(path)
    mapping = _mapping(root)
    if mapping is None:
        raise FormatError(f"no class mapping file ({', '.join(MAPPINGS)})", path=root)
    synsets = _synsets(mapping)
    classes = ClassMap.from_names([s.name for s in synsets])
    lists = _lists(root)
    if lists:
        return Reader(classes, lambda: _from_lists(root, lists, synsets, split), source=root)
    dirs = _split_dirs(root)
    if not dirs:
        raise FormatError("no train.txt/val.txt lists nor train/ val/ folders", path=root)
    by_key = {s.key: s for s in synsets}
    for _, d in dirs:
        for sub in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if sub.name not in by_key:
                raise FormatError(f"folder {sub.name}/ is not a class of {mapping.name}", path=sub,
                                  hint="add it to the mapping file, or remove the folder")
    return Reader(classes, lambda: _from_folders(root, dirs, by_key, split), source=root)


def _from_lists(root: Path, lists: list[tuple[str, Path]], synsets: list[_Synset],
                split: str | None) -> Iterator[Sample]:
    for list_split, f in lists:
        base = root / list_split if (root / list_split).is_dir() else root
        for n, line in enumerate(f.read_text(encoding="utf-8-sig").splitlines(), start=1):
            if not line.strip():
                continue
            rel, _, label = line.strip().rpartition(" ")
            if not rel or not label.lstrip("-").isdigit():
                rel, label = line.strip(), ""
            image = base / rel
            if not image.is_file():
                quarantine(ImageError(f"listed image {rel} not found in {base}", path=f, where=f"line {n}",
                                      hint=NO_IMAGES_HINT))
                continue
            ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
            if not label:
                yield Sample(ref, (), split=split or list_split, state=LabelState.MISSING)
                continue
            index = int(label)
            if not 0 <= index < len(synsets):
                quarantine(FormatError(f"class index {index} is not among the {len(synsets)} classes", path=f,
                                       where=f"line {n}"))
                continue
            yield Sample(ref, (_label(synsets[index]),), split=split or list_split)


def _val_solution(root: Path) -> dict[str, str]:
    f = root / VAL_SOLUTION
    if not f.is_file():
        return {}
    with open(f, encoding="utf-8-sig", newline="") as fh:
        return {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(fh)
                if row.get("ImageId") and (row.get("PredictionString") or "").split()}


def _from_folders(root: Path, dirs: list[tuple[str, Path]], by_key: dict[str, _Synset],
                  split: str | None) -> Iterator[Sample]:
    solution = _val_solution(root)
    for dir_split, d in dirs:
        for entry in sorted(d.iterdir()):
            if entry.is_file() and is_image(entry):
                ref = ImageRef(relative_name(entry, root), path=os.path.abspath(entry))
                wnid = solution.get(entry.stem)
                if wnid is None:
                    yield Sample(ref, (), split=split or dir_split, state=LabelState.MISSING)
                elif wnid not in by_key:
                    quarantine(FormatError(f"{wnid} is not a class of the mapping file", path=root / VAL_SOLUTION,
                                           where=f"ImageId {entry.stem}"))
                else:
                    yield Sample(ref, (_label(by_key[wnid]),), split=split or dir_split)
            elif entry.is_dir() and not entry.name.startswith("."):
                for image in iter_files(entry, suffixes=IMAGE_EXTENSIONS):
                    ref = ImageRef(relative_name(image, root), path=os.path.abspath(image))
                    yield Sample(ref, (_label(by_key[entry.name]),), split=split or dir_split)


def write(samples: Iterable[Sample], out: Path, *, classes: ClassMap | None = None,
          images: ImageMode = ImageMode.COPY) -> WriteReport:
    out = Path(out)
    refuse_filled(out)
    report = WriteReport(FORMAT, str(out))
    names = list(classes.names) if classes is not None else []
    wnids: dict[str, str] = {}
    lines: dict[str, list[str]] = {}
    unique = UniqueNames()
    for sample in samples:
        split = _SPLIT_OF.get((sample.split or "").lower(), "train")
        if sample.split != split:
            report.converted[f"split {sample.split or 'none'} -> {split} (the layout has train, val, test)"] += 1
        if any(isinstance(a.geometry, Label) for a in sample.annotations):
            label = one_label(sample, report, what="ImageNet")
            _note_wnid(sample, label, wnids, report)
        else:
            label = None
            for a in sample.annotations:
                report.drop(kind(a.geometry), "ImageNet holds one whole-image class per image")
        if label is None:
            count_state_change(report, sample, becomes=LabelState.MISSING,
                               why="a list line without a class is an unlabelled image")
        folder = (wnids.get(label) or label.replace("/", "_")) if label else "_unlabelled"
        name = unique.claim(f"{split}/{folder}", PurePosixPath(safe_name(sample.image.file_name)).name, report)
        rel = f"{folder}/{name}"
        if label is not None and label not in names:
            names.append(label)
        lines.setdefault(split, []).append(rel if label is None else f"{rel} {names.index(label)}")
        if place_image(sample.image, out / split / rel, images):
            report.files += 1
        report.images += 1
        if label is not None:
            report.annotations["label"] += 1
    out.mkdir(parents=True, exist_ok=True)
    (out / "synsets.txt").write_text("".join(_mapping_line(n, wnids.get(n)) + "\n" for n in names),
                                     encoding="utf-8")
    (out / "meta").mkdir(exist_ok=True)
    for split, rows in lines.items():
        (out / "meta" / f"{split}.txt").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
        report.files += 1
    report.files += 1
    return report


def _note_wnid(sample: Sample, label: str | None, wnids: dict[str, str], report: WriteReport) -> None:
    """Remember the wnid a class's labels carry (the first one; another is counted)."""
    for a in sample.annotations:
        wnid = a.attributes.get("wnid")
        if a.label != label or not isinstance(a.geometry, Label) or not isinstance(wnid, str) or not _is_wnid(wnid):
            continue
        known = wnids.setdefault(label, wnid)
        if known != wnid:
            report.converted[f"wnid {wnid} of class {label} -> {known} (one wnid per class)"] += 1
        return


def _mapping_line(name: str, wnid: str | None) -> str:
    """`<wnid> <name>` (the ` (<wnid>)` that told two names apart left out: the reader adds it back), or the name."""
    if wnid is None or name == wnid:
        return name
    return f"{wnid} {name.removesuffix(f' ({wnid})')}"
