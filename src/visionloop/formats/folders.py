"""Classification folders: `root/<split>/<class>/<image>` or `root/<class>/<image>`.

The layout torchvision's ImageFolder reads and Roboflow exports for
classification, and the Ultralytics classification layout (`train/<class>/`, `val/<class>/` or
`validation/<class>/`, optional `test/<class>/`; ultralytics/data/utils.py `check_cls_dataset`;
tests/formats/test_ultralytics_cls.py). A root whose subfolders are all split names (train, valid,
val, validation -- read as the split `val` --, test; any case) and that hold folders is split; anything else is one
level of class folders. Classes are the class folder names, sorted (as
ImageFolder numbers them). Images below a class folder, at any depth, carry
that class as one whole-image `Label`. Images lying in the root or a split
folder outside any class folder belong to no class: LabelState.MISSING.

Writing puts each image in `out/<split>/<class>/<name>` (`out/<class>/<name>`
when no sample has a split). A folder holds one class: a sample's first label
decides its folder and the others are counted as dropped, as are boxes and
other geometry, and images without a label. A tree cannot mix split and
unsplit images, so when some samples have a split, those without one are
dropped (and counted).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePath

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Label, kind
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats.base import (
    IMAGE_EXTENSIONS,
    Detection,
    ImageMode,
    Reader,
    WriteReport,
    is_image,
    iter_files,
    place_image,
    refuse_filled,
    relative_name,
    safe_name,
)

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "valid", "val", "validation", "test")
#: the split a split folder's name stands for (Ultralytics reads `validation/` where `val/` is missing)
_SPLIT_OF = {"validation": "val"}
#: folder names that say "the images" or "their annotations", never a class: a tree with one (or with `x/` beside
#: `xannot/`) is a segmentation, detection or text layout, e.g. `images/` + `masks/` (semantic masks),
#: `train/` + `trainannot/` (CamVid as SegNet distributes it), `images/` + `gt/` (ICDAR)
_ROLE_NAMES = {"images", "imgs", "jpegimages", "masks", "labels", "annotations", "annotation", "annots", "gt",
               "groundtruth", "ground_truth", "ground-truth", "segmentationclass", "segmentationobject", "labeltxt",
               "label_2", "image_2"}  # not "mask": face-mask classifiers have a class `mask` (beside `no_mask`)
_ROLE_SUFFIXES = ("annot", "annots", "_labels", "_label", "_masks", "_mask", "_gt", "labels", "masks")
_JUNK = {"thumbs.db", "desktop.ini"}
_SNIFF_FOLDERS = 20
_SNIFF_ENTRIES = 20


def _subdirs(folder: Path) -> list[Path]:
    """Visible subfolders, sorted by name."""
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def _loose_images(folder: Path) -> list[Path]:
    """Images directly inside `folder` (not below it), sorted."""
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.is_file() and is_image(Path(e.name)))
    except OSError:
        return []


def _split_folders(root: Path) -> list[Path] | None:
    """The split folders when the root is split (every subfolder a split name holding folders)."""
    subdirs = _subdirs(root)
    if not subdirs or any(d.name.lower() not in SPLIT_NAMES for d in subdirs):
        return None
    if not any(_subdirs(d) for d in subdirs):
        return None  # class folders that happen to be called train/test
    return subdirs


# ---------------------------------------------------------------- detection


def _sniff_class_folder(folder: Path) -> tuple[int, int, str]:
    """(images, subfolders, why not) over the first entries of a class folder; why is "" when fine."""
    images = nested = 0
    try:
        with os.scandir(folder) as entries:
            for n, entry in enumerate(entries):
                if n >= _SNIFF_ENTRIES:
                    break
                if entry.name.startswith(".") or entry.name.lower() in _JUNK:
                    continue
                if entry.is_dir():
                    nested += 1
                elif is_image(Path(entry.name)):
                    images += 1
                else:
                    return images, nested, f"{folder.name}/{entry.name} is not an image"
    except OSError:
        return images, nested, f"cannot list {folder}"
    return images, nested, ""


def _role_layout(class_dirs: list[Path]) -> str | None:
    """Why these folders are not classes (they name images and their annotations), or None."""
    names = {d.name for d in class_dirs}
    roles = sorted(n for n in names if n.lower() in _ROLE_NAMES)
    paired = sorted(n for n in names for suffix in _ROLE_SUFFIXES
                    if n.lower().endswith(suffix) and len(n) > len(suffix)
                    and {n[:-len(suffix)], n[:-len(suffix)].rstrip("_-")} & names)
    found = sorted(set(roles + paired))
    if not found:
        return None
    shown = ", ".join(f"{n}/" for n in found[:4])
    return (f"{shown} name images or their annotations (a segmentation, detection or text layout), "
            "not classes")


def detect(path: Path) -> Detection:
    """Cheap: lists the folders and the first entries of at most 20 class folders."""
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    splits = _split_folders(path)
    class_dirs = [c for s in splits for c in _subdirs(s)] if splits else _subdirs(path)
    if not class_dirs:
        return Detection.no("no class subfolders")
    role = _role_layout(class_dirs)
    if role is not None:
        return Detection.no(role)
    if not splits and all(c.name.lower() in SPLIT_NAMES for c in class_dirs):
        # `train/a.jpg`, `valid/b.jpg`: splits of images without classes (unlabelled), not classes named train
        return Detection.no("the sub-folders are split names holding images directly: splits, not classes")
    images = nested = 0
    for folder in class_dirs[:_SNIFF_FOLDERS]:
        seen, inner, why = _sniff_class_folder(folder)
        if why:
            return Detection.no(why)
        images += seen
        nested += inner
    if images == 0:
        return Detection.no("the class folders hold no images (directly)")
    names = sorted({c.name for c in class_dirs})
    where = f"splits {', '.join(s.name for s in splits)}; " if splits else ""
    reason = (f"{where}{len(names)} class folders of images ({', '.join(names[:5])}"
              f"{', ...' if len(names) > 5 else ''})")
    if nested:
        return Detection(0.3, reason + "; some hold subfolders too")
    return Detection(0.5, reason)


# ---------------------------------------------------------------- reading


def read(path: Path, *, split: str | None = None) -> Reader:
    """Stream the images of a class-folder tree. `split`, when given, puts every image in it."""
    root = Path(path)
    if not root.is_dir():
        raise FormatError("a classification dataset is a folder of class folders", path=root)
    split_dirs = _split_folders(root)
    parts: list[tuple[str | None, Path]] = (
        [(split or _SPLIT_OF.get(d.name.lower(), d.name.lower()), d) for d in split_dirs] if split_dirs
        else [(split, root)]
    )
    role = _role_layout([c for _, folder in parts for c in _subdirs(folder)])
    if role is not None:
        raise FormatError(f"not classification folders: {role}", path=root,
                          hint="read it as the format it is (`visionloop formats` lists them); "
                               "if these are class names, rename those folders")
    names = sorted({c.name for _, folder in parts for c in _subdirs(folder)})
    classes = ClassMap.from_names(names)
    return Reader(classes, lambda: _samples(root, parts), source=root)


def _samples(root: Path, parts: list[tuple[str | None, Path]]) -> Iterator[Sample]:
    for split, folder in parts:
        for image in _loose_images(folder):
            yield Sample(_ref(image, root), split=split, state=LabelState.MISSING)
        for class_dir in _subdirs(folder):
            for image in iter_files(class_dir, suffixes=IMAGE_EXTENSIONS):
                label = Annotation(class_dir.name, Label())
                yield Sample(_ref(image, root), (label,), split=split)


def _ref(image: Path, root: Path) -> ImageRef:
    return ImageRef(relative_name(image, root), path=os.path.abspath(image))


# ---------------------------------------------------------------- writing


def _folder_name(name: str) -> str:
    """A class or split name as one safe folder name."""
    cleaned = name.replace("/", "_").replace("\\", "_").strip()
    return cleaned if cleaned not in ("", ".", "..") else f"_{cleaned}"


class _Writer:
    def __init__(self, out: Path, images: ImageMode) -> None:
        self.out = out
        self.images = images
        self.report = WriteReport("folders", str(out))
        self.taken: set[str] = set()
        self.unsplit: list[tuple[ImageRef, str]] = []
        self.any_split = False

    def add(self, sample: Sample) -> None:
        report = self.report
        labels: list[str] = []
        for ann in sample.annotations:
            if isinstance(ann.geometry, Label):
                labels.append(ann.label)
            else:
                report.drop(kind(ann.geometry), "a classification folder holds whole-image labels only")
        labels = list(dict.fromkeys(labels))
        if not labels:
            report.drop("image", "no class")
            return
        if len(labels) > 1:
            report.drop("label", "a folder holds one class", len(labels) - 1)
        if sample.split is None:
            self.unsplit.append((sample.image, labels[0]))
            return
        self.any_split = True
        self._place(sample.image, PurePath(_folder_name(sample.split), _folder_name(labels[0])))

    def _place(self, ref: ImageRef, folder: PurePath) -> None:
        base = PurePath(safe_name(ref.file_name))
        stem, suffix = base.stem, base.suffix
        candidate, n = base.name, 1
        while (folder / candidate).as_posix().lower() in self.taken:
            n += 1
            candidate = f"{stem}_{n}{suffix}"
        self.taken.add((folder / candidate).as_posix().lower())
        if place_image(ref, self.out / folder / candidate, self.images):
            self.report.files += 1
        self.report.images += 1
        self.report.annotations["label"] += 1

    def finish(self) -> WriteReport:
        for ref, label in self.unsplit:
            if self.any_split:
                self.report.drop("image", "no split, while other images have one (a folder tree cannot mix both)")
                self.report.drop("label", "its image has no split")
            else:
                self._place(ref, PurePath(_folder_name(label)))
        self.out.mkdir(parents=True, exist_ok=True)
        return self.report


def write(
    samples: Iterable[Sample],
    out: Path,
    *,
    classes: ClassMap | None = None,
    images: ImageMode = ImageMode.COPY,
) -> WriteReport:
    """Write `out/<split>/<class>/<name>`; `classes` is not needed (folder names are the classes)."""
    out = Path(out)
    refuse_filled(out)
    writer = _Writer(out, images)
    for sample in samples:
        writer.add(sample)
    return writer.finish()
