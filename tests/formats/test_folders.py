"""Classification folders: root/<split>/<class>/<image> and root/<class>/<image>."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Label
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import folders
from visionloop.formats.base import ImageMode


def _image(path: Path, color: tuple[int, int, int] = (10, 20, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 4), color).save(path)


@pytest.fixture()
def split_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for rel in ("train/cat/1.jpg", "train/cat/2.jpg", "train/dog/3.jpg", "valid/cat/4.jpg",
                "test/dog/5.png", "test/bird/nested/6.jpg"):
        _image(root / rel)
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"junk")
    (root / "README.txt").write_text("exported by hand")
    return root


def _labels(sample: Sample) -> list[str]:
    return [a.label for a in sample.annotations]


def test_read_split_tree(split_tree: Path) -> None:
    reader = folders.read(split_tree)
    assert reader.classes.names == ["bird", "cat", "dog"]
    samples = list(reader)
    got = {s.image.file_name: (s.split, _labels(s)) for s in samples}
    assert got == {
        "test/bird/nested/6.jpg": ("test", ["bird"]),
        "test/dog/5.png": ("test", ["dog"]),
        "train/cat/1.jpg": ("train", ["cat"]),
        "train/cat/2.jpg": ("train", ["cat"]),
        "train/dog/3.jpg": ("train", ["dog"]),
        "valid/cat/4.jpg": ("valid", ["cat"]),
    }
    assert {s.split for s in folders.read(split_tree, split="all")} == {"all"}
    for s in samples:
        assert all(isinstance(a.geometry, Label) for a in s.annotations)
        assert s.state is LabelState.ANNOTATED
        assert s.image.size is None
        assert s.image.path == str(split_tree / s.image.file_name)


def test_read_flat_tree(tmp_path: Path) -> None:
    for rel in ("cat/a.jpg", "dog/b.jpg", "dog/c.jpg", "loose.jpg"):
        _image(tmp_path / rel)
    reader = folders.read(tmp_path, split="train")
    samples = list(reader)
    assert reader.classes.names == ["cat", "dog"]
    by_name = {s.image.file_name: s for s in samples}
    assert {n: _labels(s) for n, s in by_name.items()} == {
        "loose.jpg": [], "cat/a.jpg": ["cat"], "dog/b.jpg": ["dog"], "dog/c.jpg": ["dog"]}
    assert by_name["loose.jpg"].state is LabelState.MISSING  # in no class folder
    assert {s.split for s in samples} == {"train"}


def test_class_named_like_a_split_is_a_class(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "a.jpg")
    _image(tmp_path / "test" / "b.jpg")
    reader = folders.read(tmp_path)
    assert reader.classes.names == ["test", "train"]
    assert {s.image.file_name: (s.split, _labels(s)) for s in reader} == {
        "test/b.jpg": (None, ["test"]), "train/a.jpg": (None, ["train"])}


def test_detect(split_tree: Path, tmp_path: Path, raccoon: Path) -> None:
    found = folders.detect(split_tree)
    assert found.score == 0.3 and "cat" in found.reason and "subfolders" in found.reason  # bird/nested/
    (split_tree / "test" / "bird" / "nested" / "6.jpg").rename(split_tree / "test" / "bird" / "6.jpg")
    (split_tree / "test" / "bird" / "nested").rmdir()
    found = folders.detect(split_tree)
    assert found.score == 0.5 and "splits test, train, valid" in found.reason
    assert folders.detect(raccoon).score == 0  # annotations/ holds XML
    assert folders.detect(split_tree / "train" / "cat" / "1.jpg").score == 0
    yolo = tmp_path / "yolo"
    _image(yolo / "images" / "a.jpg")
    (yolo / "labels").mkdir(parents=True)
    (yolo / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert folders.detect(yolo).score == 0
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    assert folders.detect(empty).score == 0


def test_round_trip(split_tree: Path, tmp_path: Path) -> None:
    reader = folders.read(split_tree)
    original = list(reader)
    out = tmp_path / "out"
    report = folders.write(original, out, classes=reader.classes)
    assert report.images == 6 and report.files == 6
    assert report.annotations == {"label": 6}
    assert not report.dropped
    again = folders.read(out)
    assert again.classes.names == reader.classes.names
    back = {(s.split, s.image.file_name.rsplit("/", 1)[-1]): _labels(s) for s in again}
    assert back == {(s.split, s.image.file_name.rsplit("/", 1)[-1]): _labels(s) for s in original}
    assert (out / "test" / "bird" / "6.jpg").is_file()  # nesting under a class is flattened


def test_write_drops_what_a_folder_cannot_hold(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _image(src / "x" / name)
    _image(src / "y" / "a.jpg", (200, 0, 0))

    def ref(rel: str) -> ImageRef:
        return ImageRef(rel, path=str(src / rel))

    samples = [
        Sample(ref("x/a.jpg"), (Annotation("cat", Label()), Annotation("dog", Label()),
                                Annotation("cat", Box(0, 0, 2, 2))), split="train"),
        Sample(ref("y/a.jpg"), (Annotation("cat", Label()),), split="train"),  # same name: suffixed
        Sample(ref("x/b.jpg"), (Annotation("cat", Box(0, 0, 1, 1)),), split="val"),
        Sample(ref("x/c.jpg"), (Annotation("dog", Label()),)),  # no split in a split tree
    ]
    out = tmp_path / "out"
    report = folders.write(samples, out)
    assert report.images == 2
    assert report.dropped == {
        "label: a folder holds one class": 1,
        "box: a classification folder holds whole-image labels only": 2,
        "image: no class": 1,
        "image: no split, while other images have one (a folder tree cannot mix both)": 1,
        "label: its image has no split": 1,
    }
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == [
        "train/cat/a.jpg", "train/cat/a_2.jpg"]
    with Image.open(out / "train" / "cat" / "a_2.jpg") as im:
        assert im.getpixel((0, 0))[0] > 150  # the second a.jpg, not an overwrite
    with pytest.raises(FormatError):
        folders.write(samples, out)


def test_write_without_splits_and_without_images(tmp_path: Path) -> None:
    samples = [Sample(ImageRef("p/q.jpg"), (Annotation("cat", Label()),))]
    report = folders.write(samples, tmp_path / "out", images=ImageMode.NONE)
    assert report.images == 1 and report.files == 0
    assert list((tmp_path / "out").iterdir()) == []
