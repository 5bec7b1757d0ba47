"""ICDAR word recognition (formats/icdar_word_recognition.py).

Fixtures: (1) written by datumaro 1.13's own ``icdar_word_recognition`` exporter (CVAT's "ICDAR Recognition 1.0"
export) from Caption annotations, in the test; oracle: datumaro's own import of the same folder. (2) The release
layout as the challenge documents it (https://rrc.cvc.uab.es/?ch=4&com=tasks, "Word Recognition":
``ch4_training_word_images_gt/gt.txt`` with ``word_1.png, "Genaxis Theatre"`` lines beside the word images, UTF-8
with a BOM, ``\\"`` inside a transcription); oracle: the lines parsed by hand in the test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core import Annotation, Box, FormatError, ImageError, ImageRef, Label, Sample
from visionloop.formats import ImageMode, detect, icdar_word_recognition, registry
from visionloop.formats.base import count_skips, quarantine_reads

dm = pytest.importorskip("datumaro")
from datumaro.components.annotation import Caption  # noqa: E402

CAPTIONS = {("train", "word_1"): ["RED"], ("train", "word_2"): ['say "hi"'], ("train", "word_3"): [],
            ("test", "word_4"): ["LION"]}


def _datumaro_export(root: Path) -> Path:
    items = [dm.DatasetItem(id=i, subset=s, media=dm.Image.from_numpy(np.full((10, 30, 3), n, np.uint8)),
                            annotations=[Caption(c) for c in caps])
             for n, ((s, i), caps) in enumerate(CAPTIONS.items())]
    dm.Dataset.from_iterable(items).export(str(root), "icdar_word_recognition", save_media=True)
    return root


def _transcriptions(samples) -> dict[str, list[str]]:
    return {s.image.file_name: [a.attributes["transcription"] for a in s.annotations] for s in samples}


def test_datumaro_export_equals_datumaros_import(tmp_path: Path) -> None:
    root = _datumaro_export(tmp_path / "ds")
    assert (root / "train" / "gt.txt").read_text() == 'word_1.png, "RED"\nword_2.png, "say "hi""\nword_3.png, \n'
    Image.new("RGB", (30, 10)).save(root / "train" / "images" / "word_9.png")  # in no line: nobody labelled it
    assert detect(root) == "icdar_word_recognition"
    samples = list(icdar_word_recognition.read(root))
    assert [(s.image.file_name, s.split, s.state.value) for s in samples] == [
        ("test/images/word_4.png", "test", "annotated"), ("train/images/word_1.png", "train", "annotated"),
        ("train/images/word_2.png", "train", "annotated"), ("train/images/word_3.png", "train", "null"),
        ("train/images/word_9.png", "train", "missing")]
    assert {a.label for s in samples for a in s.annotations} == {"text"}
    assert all(isinstance(a.geometry, Label) for s in samples for a in s.annotations)
    theirs = dm.Dataset.import_from(str(root), "icdar_word_recognition")
    want = {f"{item.subset}/images/{item.id}.png": [a.caption for a in item.annotations] for item in theirs}
    got = _transcriptions(samples)
    assert got.pop("train/images/word_9.png") == [] and got == want


GT = ('\ufeffword_1.png, "Genaxis Theatre"\r\nword_2.png, "[06]"\r\nword_3.png, "\\"HOLD\\""\r\n'
      'word_4.png, "Carpark, Level 2"\r\nword_5.png, "a\\\\b"\r\n')


def _release(root: Path) -> Path:
    folder = root / "ch4_training_word_images_gt"
    folder.mkdir(parents=True)
    (folder / "gt.txt").write_bytes(GT.encode("utf-8"))
    for n in range(1, 6):
        Image.new("RGB", (40, 12), (n, 0, 0)).save(folder / f"word_{n}.png")
    return root


def test_release_layout_escapes_and_commas(tmp_path: Path) -> None:
    root = _release(tmp_path / "icdar2015")
    assert detect(root) == "icdar_word_recognition"
    samples = list(icdar_word_recognition.read(root))
    assert {s.split for s in samples} == {"train"}
    oracle = {}
    for line in GT.lstrip("\ufeff").splitlines():
        name, text = line.split(", ", 1)
        oracle[f"ch4_training_word_images_gt/{name}"] = [text[1:-1].replace('\\"', '"').replace("\\\\", "\\")]
    assert _transcriptions(samples) == oracle
    assert oracle["ch4_training_word_images_gt/word_4.png"] == ["Carpark, Level 2"]  # datumaro cuts this line


def test_round_trip_and_datumaro_reads_ours(tmp_path: Path) -> None:
    root = _release(tmp_path / "icdar2015")
    reader = icdar_word_recognition.read(root)
    samples = list(reader)
    out = tmp_path / "out"
    report = registry.write(samples, out, format="icdar_word_recognition", classes=reader.classes)
    assert report.images == 5 and report.annotations == {"label": 5} and not report.dropped and not report.converted
    assert (out / "train" / "gt.txt").read_text(encoding="utf-8") == GT.lstrip("\ufeff").replace("\r\n", "\n")
    assert _transcriptions(icdar_word_recognition.read(out)) == {
        f"train/images/{Path(k).name}": v for k, v in _transcriptions(samples).items()}
    theirs = dm.Dataset.import_from(str(out), "icdar_word_recognition")
    got = {item.id: [a.caption for a in item.annotations] for item in theirs}
    assert got["word_1"] == ["Genaxis Theatre"] and got["word_3"] == ['"HOLD"']


def test_write_counts_what_it_cannot_hold(tmp_path: Path) -> None:
    img = tmp_path / "a.png"
    Image.new("RGB", (30, 10)).save(img)
    sample = Sample(ImageRef("a.png", path=str(img)), (
        Annotation("word", Label(), {"transcription": "STOP\nNOW"}),
        Annotation("text", Label()),
        Annotation("text", Box(1, 1, 5, 5), {"transcription": "x"}),
        Annotation("text", Label(), {"text": "datumaro's name"}),
    ), split="val")
    report = registry.write([sample], tmp_path / "out", format="icdar_word_recognition", images=ImageMode.NONE)
    assert dict(report.converted) == {"class word -> text (ICDAR has one class)": 1,
                                      "transcription: line break -> space": 1}
    assert dict(report.dropped) == {"label: no transcription (attribute `transcription`)": 1,
                                    "box: ICDAR word recognition holds one transcription per word image": 1}
    assert (tmp_path / "out" / "val" / "gt.txt").read_text() == 'a.png, "STOP NOW"\na.png, "datumaro\'s name"\n'


def test_malformed_line_and_missing_image(tmp_path: Path) -> None:
    root = _release(tmp_path / "icdar2015")
    gt = root / "ch4_training_word_images_gt" / "gt.txt"
    gt.write_text('word_1.png, "RED"\nword_2.png, "unclosed\n')
    with pytest.raises(FormatError) as e:
        list(icdar_word_recognition.read(root))
    assert (e.value.path, e.value.where) == (str(gt), "line 2")
    gt.write_text('word_1.png, "RED"\nword_7.png, "GONE"\n')
    bad = []
    with quarantine_reads(bad.append), count_skips():
        samples = list(icdar_word_recognition.read(root))
    assert [(type(x), x.where, x.message) for x in bad] == [
        (ImageError, "line 2", f"listed image word_7.png not found in {gt.parent}")]
    assert [s.state.value for s in samples] == ["annotated"] + ["missing"] * 4


def test_other_gt_txt_files_are_not_claimed(tmp_path: Path) -> None:
    """MOT's gt/gt.txt and the ICDAR localisation layout are not word recognition."""
    mot = tmp_path / "mot" / "MOT17-02" / "gt"
    mot.mkdir(parents=True)
    (mot / "gt.txt").write_text("1,1,912,484,97,109,0,7,1\n")
    assert icdar_word_recognition.detect(tmp_path / "mot").score == 0
    loc = tmp_path / "loc"
    (loc / "gt").mkdir(parents=True)
    (loc / "gt" / "gt_img_1.txt").write_text("1,1,5,1,5,5,1,5,a\n")
    (loc / "images").mkdir()
    Image.new("RGB", (8, 8)).save(loc / "images" / "img_1.jpg")
    assert icdar_word_recognition.detect(loc).score == 0 and detect(loc) == "icdar"


def test_an_import_quarantines_the_broken_line_only(tmp_path: Path) -> None:
    root = _release(tmp_path / "icdar2015")
    gt = root / "ch4_training_word_images_gt" / "gt.txt"
    gt.write_text('word_1.png, "RED"\nword_2.png, "unclosed\nword_3.png, "OK"\n')
    bad = []
    with quarantine_reads(bad.append), count_skips():
        samples = list(icdar_word_recognition.read(root))
    assert [(x.where, x.path) for x in bad] == [("line 2", str(gt))]
    # word_2 was labelled (its line is broken): quarantined, not MISSING
    assert [(Path(s.image.file_name).name, s.state.value) for s in samples] == [
        ("word_1.png", "annotated"), ("word_3.png", "annotated"), ("word_4.png", "missing"), ("word_5.png", "missing")]


# The ICDAR 2015 challenge 4 task 3 release as downloaded (https://rrc.cvc.uab.es/?ch=4&com=downloads; the same
# three files open-mmlab/mmocr dataset_zoo/icdar2015/textrecog.py fetches, read there with encoding utf-8-sig):
# ch4_training_word_images_gt.zip (word images + gt.txt), ch4_test_word_images_gt.zip (word images only) and the
# test ground truth Challenge4_Test_Task3_GT.txt, a file of its own kept beside the test images' folder:
#     ch4_training_word_images_gt/gt.txt, word_1.png ...
#     ch4_test_word_images_gt/word_1.png ...
#     Challenge4_Test_Task3_GT.txt
# Both text files: UTF-8 with a BOM, CRLF line ends, `word_1.png, "JOINT"`, `\"` inside a transcription.
TEST_GT = ('\ufeffword_1.png, "JOINT"\r\nword_2.png, "yourself"\r\nword_3.png, "\\"SALE\\""\r\n'
           'word_4.png, "Free, 24h"\r\n')


def _release_with_test(root: Path, *, test_images: bool = True) -> Path:
    _release(root)
    if test_images:
        folder = root / "ch4_test_word_images_gt"
        folder.mkdir()
        for n in range(1, 6):  # word_5 is in no line of the GT file
            Image.new("RGB", (30, 10), (0, n, 0)).save(folder / f"word_{n}.png")
    (root / "Challenge4_Test_Task3_GT.txt").write_bytes(TEST_GT.encode("utf-8"))
    return root


def test_release_test_ground_truth_beside_its_images_folder(tmp_path: Path) -> None:
    root = _release_with_test(tmp_path / "icdar2015")
    assert detect(root) == "icdar_word_recognition"
    samples = list(icdar_word_recognition.read(root))
    test = [(s.image.file_name, s.split, s.state.value, [a.attributes["transcription"] for a in s.annotations])
            for s in samples if s.split == "test"]
    assert test == [("ch4_test_word_images_gt/word_1.png", "test", "annotated", ["JOINT"]),
                    ("ch4_test_word_images_gt/word_2.png", "test", "annotated", ["yourself"]),
                    ("ch4_test_word_images_gt/word_3.png", "test", "annotated", ['"SALE"']),
                    ("ch4_test_word_images_gt/word_4.png", "test", "annotated", ["Free, 24h"]),
                    ("ch4_test_word_images_gt/word_5.png", "test", "missing", [])]
    # each test image is the test folder's own file, never the training image of the same name
    assert [Image.open(s.image.path).getpixel((0, 0)) for s in samples if s.split == "test"] == [
        (0, n, 0) for n in range(1, 6)]
    train = {s.image.file_name: [a.attributes["transcription"] for a in s.annotations]
             for s in samples if s.split == "train"}
    assert len(train) == 5 and train["ch4_training_word_images_gt/word_1.png"] == ["Genaxis Theatre"]
    assert [s.split for s in samples] == ["test"] * 5 + ["train"] * 5


def test_test_ground_truth_inside_the_test_images_folder(tmp_path: Path) -> None:
    """As often unpacked: the GT file moved into ch4_test_word_images_gt/ (the folder given)."""
    root = _release_with_test(tmp_path / "icdar2015")
    folder = root / "ch4_test_word_images_gt"
    (root / "Challenge4_Test_Task3_GT.txt").rename(folder / "Challenge4_Test_Task3_GT.txt")
    assert detect(folder) == "icdar_word_recognition"
    samples = list(icdar_word_recognition.read(folder))
    assert [(s.image.file_name, s.split, s.state.value) for s in samples] == [
        ("word_1.png", "test", "annotated"), ("word_2.png", "test", "annotated"), ("word_3.png", "test", "annotated"),
        ("word_4.png", "test", "annotated"), ("word_5.png", "test", "missing")]


def test_test_ground_truth_without_its_images_is_never_read_against_the_training_images(tmp_path: Path) -> None:
    root = _release_with_test(tmp_path / "icdar2015", test_images=False)
    gt = root / "Challenge4_Test_Task3_GT.txt"
    with pytest.raises(ImageError) as e:
        list(icdar_word_recognition.read(root))
    assert (e.value.path, e.value.where, e.value.message) == (
        str(gt), "line 1", f"listed image word_1.png not found in {root}")
    bad = []
    with quarantine_reads(bad.append), count_skips():
        samples = list(icdar_word_recognition.read(root))
    assert [(x.where, x.path) for x in bad] == [(f"line {n}", str(gt)) for n in range(1, 5)]
    assert {s.split for s in samples} == {"train"} and len(samples) == 5


def test_task3_ground_truth_that_is_not_word_lines_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "icdar2013"
    (root / "Challenge2_Test_Task3_Images").mkdir(parents=True)
    Image.new("RGB", (30, 10)).save(root / "Challenge2_Test_Task3_Images" / "word_1.png")
    (root / "Challenge2_Test_Task3_GT.txt").write_bytes(b"\xef\xbb\xbfword_1.png; JOINT\r\n")
    det = icdar_word_recognition.detect(root)
    assert (det.score, det.unreadable) == (0, root / "Challenge2_Test_Task3_GT.txt")
    with pytest.raises(FormatError) as e:
        detect(root)
    assert e.value.path == str(root / "Challenge2_Test_Task3_GT.txt")
    (root / "Challenge2_Test_Task3_GT.txt").write_bytes(b'\xef\xbb\xbfword_1.png, "JOINT"\r\n')
    samples = list(icdar_word_recognition.read(root))
    assert [(s.image.file_name, s.split, [a.attributes["transcription"] for a in s.annotations]) for s in samples] == [
        ("Challenge2_Test_Task3_Images/word_1.png", "test", ["JOINT"])]


def test_other_gt_files_are_not_claimed(tmp_path: Path) -> None:
    """Text segmentation's <name>_GT.txt (beside its <name>_GT.bmp) and a _GT.txt of other lines are not word
    recognition; neither is MOT's gt/gt.txt beside them."""
    seg = tmp_path / "seg"
    (seg / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(seg / "images" / "100.png")
    Image.new("RGB", (8, 8), (255, 255, 255)).save(seg / "100_GT.bmp")
    (seg / "100_GT.txt").write_text('0 0 0 4 4 2 2 6 6 "a"\n')
    assert icdar_word_recognition.detect(seg).score == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "scores_GT.txt").write_text("img_1.jpg,0.5\n")
    Image.new("RGB", (8, 8)).save(other / "img_1.jpg")
    assert icdar_word_recognition.detect(other).score == 0
    seg_like = tmp_path / "seg_like"
    seg_like.mkdir()
    (seg_like / "word_1_GT.txt").write_text('word_1.png, "X"\n')  # beside its own image: text segmentation's pair
    Image.new("RGB", (8, 8)).save(seg_like / "word_1_GT.png")
    assert icdar_word_recognition.detect(seg_like).score == 0
