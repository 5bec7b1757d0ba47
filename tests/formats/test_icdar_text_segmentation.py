"""ICDAR text segmentation (formats/icdar_text_segmentation.py).

Fixture: written by datumaro 1.13's own ``icdar_text_segmentation`` exporter (CVAT's "ICDAR Segmentation 1.0"
export), in the test, from character masks with datumaro's attributes (index, color, text, center) and groups
(words); one character without a colour (the exporter picks one) and a space (written ``#R G B ... " "``). Oracle:
datumaro's own import of the same folder, character by character and pixel by pixel; our rewrite is compared with
datumaro's files byte for byte (text) and pixel for pixel (BMP). The release's two-folder layout
(``Challenge2_Training_Task1_Images`` + ``Challenge2_Training_Task2_GT``) is the same files in other folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core import Annotation, Box, FormatError, ImageRef, Mask, Polygon, Sample
from visionloop.formats import ImageMode, detect, icdar_text_segmentation, registry
from visionloop.formats.base import count_skips

dm = pytest.importorskip("datumaro")
from datumaro.components.annotation import Mask as DmMask  # noqa: E402

H, W = 12, 20


def _m(rows: slice, cols: slice) -> np.ndarray:
    a = np.zeros((H, W), np.uint8)
    a[rows, cols] = 1
    return a


CHARS = [  # (mask, group, attributes)
    (_m(slice(2, 8), slice(2, 6)), 1, {"index": 0, "color": "108 225 132", "text": "F", "center": "4 5"}),
    (_m(slice(3, 9), slice(8, 12)), 2, {"index": 1, "color": "82 174 214", "text": "T", "center": "10 6"}),
    (_m(slice(3, 9), slice(14, 18)), 2, {"index": 2, "text": " "}),
    (_m(slice(9, 11), slice(1, 4)), 3, {"index": 3, "color": "241 73 144", "text": '"', "center": "2 10"}),
    (_m(slice(9, 11), slice(5, 9)), 3, {"index": 4, "color": "10 20 30", "text": "h", "center": "7 10"}),
]


@pytest.fixture()
def exported(tmp_path: Path) -> Path:
    image = dm.Image.from_numpy(np.full((H, W, 3), 5, np.uint8))
    dm.Dataset.from_iterable([
        dm.DatasetItem(id="1", subset="train", media=image,
                       annotations=[DmMask(m, group=g, attributes=a) for m, g, a in CHARS]),
        dm.DatasetItem(id="2", subset="train", media=dm.Image.from_numpy(np.full((H, W, 3), 9, np.uint8))),
    ]).export(str(tmp_path / "ds"), "icdar_text_segmentation", save_media=True)
    return tmp_path / "ds"


def test_datumaro_export_equals_datumaros_import(exported: Path) -> None:
    assert (exported / "train" / "1_GT.txt").read_text().splitlines()[:4] == [
        '108 225 132 4 5 2 2 6 8 "F"', "", '82 174 214 10 6 8 3 12 9 "T"', '#128 0 0 - - 14 3 18 9 " "']
    Image.new("RGB", (W, H)).save(exported / "train" / "images" / "3.png")  # no ground truth: nobody labelled it
    assert detect(exported) == "icdar_text_segmentation"
    samples = list(icdar_text_segmentation.read(exported))
    assert [(s.image.file_name, s.split, s.state.value, len(s.annotations)) for s in samples] == [
        ("train/images/1.png", "train", "annotated", 5), ("train/images/2.png", "train", "null", 0),
        ("train/images/3.png", "train", "missing", 0)]
    theirs = dm.Dataset.import_from(str(exported), "icdar_text_segmentation")
    item = next(i for i in theirs if i.id == "1")
    assert len(item.annotations) == len(samples[0].annotations)
    words = {}
    for ours, their in zip(samples[0].annotations, sorted(item.annotations, key=lambda a: a.attributes["index"]),
                           strict=True):
        assert ours.label == "text" and isinstance(ours.geometry, Mask)
        assert np.array_equal(ours.geometry.to_array().astype(bool), their.image.astype(bool))
        a = dict(ours.attributes)
        assert a.pop("transcription") == their.attributes["text"]
        words.setdefault(a.pop("word"), set()).add(their.group)
        assert a == {k: v for k, v in their.attributes.items() if k != "text"}
    assert words == {0: {0}, 1: {1}, 2: {2}}  # datumaro's group: 0 for a one-character word
    assert [a.attributes["transcription"] for a in samples[0].annotations] == ["F", "T", " ", '"', "h"]


def test_rewrite_is_datumaros_files(exported: Path, tmp_path: Path) -> None:
    reader = icdar_text_segmentation.read(exported)
    out = tmp_path / "out"
    report = registry.write(list(reader), out, format="icdar_text_segmentation", classes=reader.classes)
    assert report.images == 2 and report.annotations == {"mask": 5} and not report.converted and not report.dropped
    assert (out / "train" / "1_GT.txt").read_bytes() == (exported / "train" / "1_GT.txt").read_bytes()
    assert (out / "train" / "2_GT.txt").read_bytes() == b""
    ours, theirs = (np.asarray(Image.open(d / "train" / "1_GT.bmp").convert("RGB")) for d in (out, exported))
    assert np.array_equal(ours, theirs)
    assert sorted(p.name for p in (out / "train" / "images").iterdir()) == ["1.png", "2.png"]


def test_release_layout_two_folders(exported: Path, tmp_path: Path) -> None:
    root = tmp_path / "icdar2013"
    (root / "Challenge2_Training_Task2_GT").mkdir(parents=True)
    for f in ("1_GT.txt", "1_GT.bmp"):
        shutil.copy(exported / "train" / f, root / "Challenge2_Training_Task2_GT" / f)
    shutil.copytree(exported / "train" / "images", root / "Challenge2_Training_Task1_Images")
    assert detect(root) == "icdar_text_segmentation"
    with count_skips() as skips:
        samples = list(icdar_text_segmentation.read(root))
    assert [(s.image.file_name, s.split, len(s.annotations)) for s in samples] == [
        ("Challenge2_Training_Task1_Images/1.png", "train", 5), ("Challenge2_Training_Task1_Images/2.png", "train", 0)]
    assert samples[1].state.value == "missing" and not skips


def test_colours_the_text_does_not_account_for_are_refused(exported: Path) -> None:
    txt = exported / "train" / "1_GT.txt"
    lines = txt.read_text().splitlines()
    txt.write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # T's line gone: its colour is unexplained
    with pytest.raises(FormatError, match=r"colour \(82, 174, 214\) is not a known class colour") as e:
        list(icdar_text_segmentation.read(exported))
    assert e.value.path == str(exported / "train" / "1_GT.bmp") and e.value.where == "pixel x=8, y=3"
    txt.write_text("\n".join(lines + [lines[0]]) + "\n")  # F twice
    with pytest.raises(FormatError, match="colour 108 225 132 is also line 1's") as e:
        list(icdar_text_segmentation.read(exported))
    assert e.value.where == f"line {len(lines) + 1}"
    (exported / "train" / "1_GT.bmp").unlink()
    txt.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match="5 characters listed but no 1_GT.bmp"):
        list(icdar_text_segmentation.read(exported))


def test_a_character_without_pixels_is_counted(exported: Path) -> None:
    txt = exported / "train" / "1_GT.txt"
    txt.write_text(txt.read_text() + '1 2 3 - - 0 0 1 1 "x"\n')
    with count_skips() as skips:
        samples = list(icdar_text_segmentation.read(exported))
    assert dict(skips) == {"character: no pixel of its colour in the mask": 1}
    assert len(samples[0].annotations) == 5


def test_write_counts_conversions(tmp_path: Path) -> None:
    img = tmp_path / "a.jpg"
    Image.new("RGB", (W, H)).save(img)
    sample = Sample(ImageRef("a.jpg", path=str(img)), (
        Annotation("char", Mask.from_array(_m(slice(0, 4), slice(0, 4))), {"transcription": "A"}),
        Annotation("text", Box(1, 1, 3, 3)),
        Annotation("text", Polygon(((10, 0, 14, 0, 14, 4),)), {"transcription": "B", "word": 1}),
        Annotation("text", Mask.from_array(_m(slice(0, 2), slice(0, 2)))),  # inside A: A keeps the rest
        Annotation("text", Mask.from_array(_m(slice(0, 2), slice(0, 2))), {"transcription": "C"}),  # hides the last
    ))
    report = registry.write([sample], tmp_path / "out", format="icdar_text_segmentation", images=ImageMode.NONE)
    assert report.annotations == {"mask": 3}
    assert dict(report.dropped) == {"box: ICDAR text segmentation holds pixel masks only (a box is not a region "
                                    "outline)": 1, "mask: no pixel left (covered by later annotations)": 1}
    assert dict(report.converted) == {
        "class char -> text (ICDAR has one class)": 1, "polygon -> mask (rasterised as COCO does)": 1,
        "overlapping pixels -> the later annotation's (as the format holds one value a pixel)": 2}
    assert (tmp_path / "out" / "default" / "a_GT.txt").read_text().splitlines() == [
        '128 0 0 - - 0 0 4 4 "A"', "", '0 128 0 - - 11 0 14 3 "B"', "", '128 128 0 - - 0 0 2 2 "C"']


def test_almost_this_format_is_not_claimed(tmp_path: Path) -> None:
    """`images/` + `gt/<name>_GT.bmp` without the text file, and `_GT.txt` without its BMP, are not this format."""
    root = tmp_path / "a"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "images" / "img_1.jpg")
    (root / "gt").mkdir()
    Image.new("RGB", (8, 8)).save(root / "gt" / "img_1_GT.bmp")
    assert icdar_text_segmentation.detect(root).score == 0
    (root / "gt" / "img_1_GT.bmp").unlink()
    (root / "gt" / "img_1_GT.txt").write_text('1 2 3 4 5 0 0 1 1 "a"\n')
    assert icdar_text_segmentation.detect(root).score == 0
