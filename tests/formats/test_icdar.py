"""ICDAR 2015 text localisation (formats/icdar.py).

Fixture lines are the first lines of the release's ``ch4_training_localization_transcription_gt/gt_img_1.txt``
as the challenge documents them (https://rrc.cvc.uab.es/?ch=4&com=tasks, "Text Localization": ``x1,y1,x2,y2,
x3,y3,x4,y4,transcription``, ``###`` for do-not-care, files UTF-8 with a BOM), in the release's folder names.
Oracle: the lines parsed by hand in the test (split on the first eight commas), and the written files compared
byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.core import Annotation, Box, FormatError, ImageRef, Polygon, Sample
from visionloop.formats import ImageMode, detect, icdar, registry
from visionloop.formats.base import count_skips

GT_1 = ("\ufeff377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
        "493,115,519,115,519,131,493,131,[06]\r\n"
        "374,155,409,155,409,170,374,170,###\r\n"
        "492,151,551,151,551,170,492,170,62-03\r\n"
        "376,198,422,198,422,212,376,212,Carpark,Level 2\r\n")


def _release(root: Path) -> Path:
    for folder, n in (("ch4_training_images", 1), ("ch4_training_images", 2), ("ch4_test_images", 1)):
        p = root / folder / f"img_{n}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (1280, 720)).save(p)
    gt = root / "ch4_training_localization_transcription_gt"
    gt.mkdir()
    (gt / "gt_img_1.txt").write_bytes(GT_1.encode("utf-8"))
    (gt / "gt_img_2.txt").write_bytes(b"\xef\xbb\xbf")  # no words
    (gt / "gt_img_9.txt").write_bytes(GT_1.encode("utf-8"))  # no img_9.jpg
    test_gt = root / "Challenge4_Test_Task1_GT"
    test_gt.mkdir()
    (test_gt / "gt_img_1.txt").write_text("\ufeff10,20,30,20,30,40,10,40,Test\n", encoding="utf-8")
    return root


def _oracle(text: str) -> list[tuple[tuple[float, ...], str]]:
    out = []
    for line in text.lstrip("\ufeff").splitlines():
        parts = line.split(",", 8)
        out.append((tuple(float(p) for p in parts[:8]), parts[8]))
    return out


def test_read_the_release_layout(tmp_path: Path) -> None:
    root = _release(tmp_path / "icdar2015")
    assert detect(root) == "icdar"
    with count_skips() as skips:
        samples = list(icdar.read(root))
    assert dict(skips) == {"ground-truth file: no image of that name in ch4_training_images/": 1}
    assert [(s.image.file_name, s.split, s.state.value if s.state else None, len(s.annotations)) for s in samples] == [
        ("ch4_test_images/img_1.jpg", "test", "annotated", 1),
        ("ch4_training_images/img_1.jpg", "train", "annotated", 5),
        ("ch4_training_images/img_2.jpg", "train", "null", 0),
    ]
    got = [(a.geometry.rings[0], a.attributes["transcription"]) for a in samples[1].annotations]
    assert got == _oracle(GT_1)
    assert got[4][1] == "Carpark,Level 2"  # commas inside the transcription
    assert [a.attributes.get("dont_care", False) for a in samples[1].annotations] == [False, False, True, False,
                                                                                      False]
    assert {a.label for a in samples[1].annotations} == {"text"}


def test_images_gt_layout_round_trip_bytes(tmp_path: Path) -> None:
    root = _release(tmp_path / "icdar2015")
    out = tmp_path / "out"
    reader = icdar.read(root)
    report = registry.write(reader, out, format="icdar", classes=reader.classes)
    assert report.images == 3 and report.annotations == {"polygon": 6} and not report.converted
    assert (out / "train" / "gt" / "gt_img_1.txt").read_bytes() == GT_1.replace("\r\n", "\n").encode("utf-8")
    assert (out / "train" / "gt" / "gt_img_2.txt").read_bytes() == b"\xef\xbb\xbf"
    assert sorted(p.name for p in (out / "train" / "images").iterdir()) == ["img_1.jpg", "img_2.jpg"]
    assert detect(out) == "icdar"
    again = list(icdar.read(out))
    assert [(s.image.file_name, s.split, len(s.annotations)) for s in again] == [
        ("test/images/img_1.jpg", "test", 1), ("train/images/img_1.jpg", "train", 5),
        ("train/images/img_2.jpg", "train", 0)]
    assert [a.attributes for a in again[1].annotations] == [a.attributes for a in list(icdar.read(root))[1].annotations]


def test_write_counts_conversions(tmp_path: Path) -> None:
    img = tmp_path / "a.jpg"
    Image.new("RGB", (50, 40)).save(img)
    sample = Sample(ImageRef("a.jpg", path=str(img)), (
        Annotation("word", Box(1, 2, 11, 7), {"transcription": "STOP"}),
        Annotation("text", Polygon(((0, 0, 10, 0, 10, 10, 5, 15, 0, 10),))),
    ))
    report = registry.write([sample], tmp_path / "out", format="icdar", images=ImageMode.NONE)
    assert dict(report.converted) == {
        "box -> polygon (4 corners)": 1, "class word -> text (ICDAR has one class)": 1,
        "polygon -> polygon (minimum-area rectangle: ICDAR holds 4 corners)": 1,
        "no transcription -> ### (do not care)": 1}
    lines = (tmp_path / "out" / "gt" / "gt_a.txt").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "1,2,11,2,11,7,1,7,STOP"
    assert lines[1].endswith(",###") and len(lines[1].split(",")) == 9


def test_malformed_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    root = _release(tmp_path / "icdar2015")
    (root / "ch4_training_localization_transcription_gt" / "gt_img_2.txt").write_text("1,2,3,4,5,6,7\n")
    with pytest.raises(FormatError) as e:
        list(icdar.read(root))
    assert (e.value.where, e.value.message) == ("line 1", "expected x1,y1,x2,y2,x3,y3,x4,y4,transcription")


def test_two_images_folders_without_split_words_are_refused(tmp_path: Path) -> None:
    for folder in ("images", "photos"):
        p = tmp_path / "ds" / folder / "img_1.jpg"
        p.parent.mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(p)
    (tmp_path / "ds" / "gt").mkdir()
    (tmp_path / "ds" / "gt" / "gt_img_1.txt").write_text("1,1,5,1,5,5,1,5,a\n")
    with pytest.raises(FormatError, match=r"cannot tell which images folder gt/ annotates \(beside it: images, photos"):
        icdar.read(tmp_path / "ds")
    (tmp_path / "ds" / "photos" / "img_1.jpg").unlink()
    (tmp_path / "ds" / "photos").rmdir()
    assert detect(tmp_path / "ds") == "icdar"
    assert [len(s.annotations) for s in icdar.read(tmp_path / "ds")] == [1]
