"""The Ultralytics classification layout, read and written by the classification-folders format.

Layout (ultralytics/data/utils.py, ``check_cls_dataset``): ``<root>/train/<class>/*.jpg``, ``<root>/val/<class>/``
(or ``validation/`` when ``val/`` is missing), optional ``<root>/test/<class>/``; the class names are the train
class folders, sorted, numbered from 0 (``names = {i: x for i, x in enumerate(sorted(train class folders))}``).
Oracle: torchvision's ``ImageFolder`` on each split folder (the loader Ultralytics' ``ClassificationDataset``
subclasses): the same images, the same class of each, the same class numbering.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.formats import ImageMode, detect, folders, registry

FILES = {
    "train": {"cat": ["c1.jpg", "c2.jpg"], "dog": ["d1.jpg"], "zebra": ["z1.png"]},
    "val": {"cat": ["c3.jpg"], "dog": ["d2.jpg", "d3.jpg"], "zebra": ["z2.jpg"]},
    "test": {"cat": ["c4.jpg"], "dog": ["d4.jpg"], "zebra": ["z3.jpg"]},
}


def _tree(root: Path, val_name: str = "val", test: bool = True) -> Path:
    for split, classes in FILES.items():
        if split == "test" and not test:
            continue
        for cls, names in classes.items():
            for name in names:
                p = root / (val_name if split == "val" else split) / cls / name
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (12, 10), (len(name) * 20, 30, 90)).save(p)
    return root


def _oracle(root: Path, split_folder: str) -> dict[str, str]:
    from torchvision.datasets import ImageFolder

    ds = ImageFolder(str(root / split_folder))
    return {Path(path).relative_to(root).as_posix(): ds.classes[target] for path, target in ds.samples}


@pytest.mark.parametrize(("val_name", "test"), [("val", True), ("val", False), ("validation", True)])
def test_ultralytics_layout_reads_splits_and_classes(tmp_path: Path, val_name: str, test: bool) -> None:
    root = _tree(tmp_path / "ds", val_name, test)
    assert detect(root) == "folders"
    reader = folders.read(root)
    assert reader.classes.names == ["cat", "dog", "zebra"]  # Ultralytics: sorted train class folders, ids 0..2
    samples = list(reader)
    got = {s.image.file_name: (s.split, [a.label for a in s.annotations]) for s in samples}
    splits = [("train", "train"), (val_name, "val")] + ([("test", "test")] if test else [])
    want = {name: (split, [cls]) for folder, split in splits for name, cls in _oracle(root, folder).items()}
    assert got == want
    assert len(samples) == (11 if test else 8)
    from torchvision.datasets import ImageFolder

    assert ImageFolder(str(root / "train")).class_to_idx == {n: reader.classes[n].id for n in reader.classes.names}


def test_written_tree_is_what_imagefolder_reads(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ds", "validation")
    out = tmp_path / "out"
    report = registry.write(folders.read(root), out, format="folders", images=ImageMode.COPY)
    assert report.images == 11 and report.annotations == {"label": 11} and not report.dropped
    assert sorted(p.name for p in out.iterdir()) == ["test", "train", "val"]  # validation/ written as val/
    assert _oracle(out, "val") == {"val/cat/c3.jpg": "cat", "val/dog/d2.jpg": "dog", "val/dog/d3.jpg": "dog",
                                   "val/zebra/z2.jpg": "zebra"}
    assert _oracle(out, "train") == {"train/cat/c1.jpg": "cat", "train/cat/c2.jpg": "cat", "train/dog/d1.jpg": "dog",
                                     "train/zebra/z1.png": "zebra"}


def test_a_class_called_validation_without_splits_stays_a_class(tmp_path: Path) -> None:
    for cls in ("validation", "other"):
        p = tmp_path / "ds" / cls / "a.jpg"
        p.parent.mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(p)
    reader = folders.read(tmp_path / "ds")
    assert reader.classes.names == ["other", "validation"]
    assert sorted((s.split, s.annotations[0].label) for s in reader) == [(None, "other"), (None, "validation")]
