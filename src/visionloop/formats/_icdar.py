"""What the three ICDAR formats share (text localisation `icdar`, `icdar_word_recognition`,
`icdar_text_segmentation`): the one class, the transcription attribute, folder listings, the split a folder's
name says, and the images folder that goes with a ground-truth folder.

Every ICDAR annotation is of class ``text`` and carries what it reads in the attribute ``transcription`` (a word,
a whole word image's text, one character); writers also take datumaro's name for it, ``text``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from visionloop.core.errors import FormatError
from visionloop.core.sample import Annotation
from visionloop.formats.base import is_image

CLASS = "text"
#: the attribute every ICDAR reader writes the transcription to
TRANSCRIPTION = "transcription"
#: datumaro's name for it (its ICDAR readers and writers use `text`)
DATUMARO_TEXT = "text"
#: the folder datumaro's ICDAR exporters keep the images of a subset in
IMAGES = "images"
#: datumaro's subset for items without one
NO_SPLIT = "default"


def split_word(name: str) -> str | None:
    """The split a folder's name says (``ch4_training_images`` -> train), None when it says none."""
    low = name.lower()
    for word, split in (("train", "train"), ("test", "test"), ("val", "val")):
        if word in low:
            return split
    return None


def folder_split(folder: Path, root: Path) -> str | None:
    """The split of a ground-truth folder: none for the dataset's own folder and datumaro's ``default``, the word
    its name says (train, test, val), else its name (a datumaro subset of another name)."""
    if os.path.abspath(folder) == os.path.abspath(root) or folder.name == NO_SPLIT:
        return None
    return split_word(folder.name) or folder.name


def listing(folder: Path) -> list[os.DirEntry[str]]:
    """The visible entries of a folder, sorted by name (none when it cannot be listed)."""
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        return []


def has_file(folder: Path, test: Callable[[str], bool]) -> bool:
    return any(e.is_file() and test(e.name) for e in listing(folder))


def folders(root: Path) -> list[Path]:
    """The root, its sub-folders and theirs (where ICDAR releases and datumaro's exports keep ground truth)."""
    out = [root]
    for e in listing(root):
        if e.is_dir():
            out.append(Path(e.path))
            out.extend(Path(s.path) for s in listing(Path(e.path)) if s.is_dir())
    return out


def images_folder(gt: Path, *, is_annotation: Callable[[str], bool] = lambda name: False) -> Path:
    """Where the images of a ground-truth folder are: its ``images/`` (datumaro's layout), else the folder itself
    when it holds images that are not annotations (the releases' word images beside ``gt.txt``), else the one
    folder beside it with images whose name says the same split (``Challenge2_Training_Task1_Images`` beside
    ``Challenge2_Training_Task2_GT``). Refused when that is ambiguous; the folder itself when there is none."""
    if (gt / IMAGES).is_dir():
        return gt / IMAGES
    if has_file(gt, lambda n: is_image(Path(n)) and not is_annotation(n)):
        return gt
    beside = [Path(e.path) for e in listing(gt.parent) if e.is_dir() and Path(e.path) != gt
              and has_file(Path(e.path), lambda n: is_image(Path(n)))]
    if len(beside) > 1:
        same = [d for d in beside if split_word(d.name) == split_word(gt.name)]
        if len(same) != 1:
            raise FormatError(f"cannot tell which images folder {gt.name}/ annotates (beside it: "
                              f"{', '.join(d.name for d in beside)})", path=gt,
                              hint="keep the images in images/ inside the ground-truth folder, or name both by split")
        beside = same
    return beside[0] if beside else gt


def transcription(ann: Annotation) -> str | None:
    """What an annotation reads: its ``transcription`` attribute, else datumaro's ``text``; None when it has none."""
    for key in (TRANSCRIPTION, DATUMARO_TEXT):
        value = ann.attributes.get(key)
        if value is not None and not isinstance(value, bool):
            return str(value)
    return None
