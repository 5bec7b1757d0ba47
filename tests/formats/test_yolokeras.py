"""YOLO Keras TXT: read, empty images, class ids, integer rounding, round trip, errors, detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.core import Annotation, Box, FormatError, ImageRef, LabelState, Sample
from visionloop.formats import detect, yolokeras


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


@pytest.fixture()
def roboflow(tmp_path: Path) -> Path:
    """Roboflow's YOLO Keras TXT export (https://roboflow.com/formats/yolo-keras-txt), lines as keras-yolo3 reads.

    https://github.com/qqwweee/keras-yolo3#training ; the tool's own writer is qqwweee/keras-yolo3:voc_annotation.py
    `convert_annotation` (`" " + "x_min,y_min,x_max,y_max" + "," + class_id` per box after the image path), whose
    output (absolute paths) is read in test_tool_sources.py.
    """
    root = tmp_path / "yk"
    (root / "train").mkdir(parents=True)
    (root / "train" / "_annotations.txt").write_text(
        "img_001.jpg 48,240,195,371,1 8,12,352,498,0\n"
        "img_002.jpg\n"
    )
    (root / "train" / "_classes.txt").write_text("dog\nperson\n")
    _image(root / "train" / "img_001.jpg", 500, 500)
    _image(root / "train" / "img_002.jpg", 50, 50)
    return root


def test_read(roboflow: Path) -> None:
    reader = yolokeras.read(roboflow)
    assert [(c.name, c.id) for c in reader.classes] == [("dog", 0), ("person", 1)]
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("img_001.jpg", "train", LabelState.ANNOTATED), ("img_002.jpg", "train", LabelState.NULL)]
    assert [(a.label, a.geometry) for a in samples[0].annotations] == [
        ("person", Box(48, 240, 195, 371)), ("dog", Box(8, 12, 352, 498))]
    assert samples[0].image.path == str(roboflow / "train" / "img_001.jpg")


def test_round_trip(roboflow: Path, tmp_path: Path) -> None:
    reader = yolokeras.read(roboflow)
    originals = list(reader)
    report = yolokeras.write(originals, tmp_path / "out", classes=reader.classes)
    assert report.annotations == {"box": 2} and not report.converted and not report.dropped
    assert (tmp_path / "out" / "train" / "_annotations.txt").read_text() == (
        "img_001.jpg 48,240,195,371,1 8,12,352,498,0\nimg_002.jpg\n")
    again = list(yolokeras.read(tmp_path / "out"))
    assert [(s.image.file_name, s.split, s.state, s.annotations) for s in again] == [
        (s.image.file_name, s.split, s.state, s.annotations) for s in originals]


def test_write_rounds_and_renames(tmp_path: Path) -> None:
    img = _image(tmp_path / "my photo.jpg", 20, 20)
    sample = Sample(ImageRef("my photo.jpg", path=str(img)), (Annotation("cat", Box(1.5, 2.49, 3, 4)),))
    missing = Sample(ImageRef("b.jpg", path=str(img)), (), state=LabelState.MISSING)
    report = yolokeras.write([sample, missing], tmp_path / "out")
    assert report.converted == {"box -> integer pixel corners (rounded)": 1,
                                "image name -> spaces replaced by _": 1,
                                "image missing labels -> null (a line without boxes)": 1}
    assert (tmp_path / "out" / "_annotations.txt").read_text() == "my_photo.jpg 2,2,3,4,0\nb.jpg\n"
    assert (tmp_path / "out" / "my_photo.jpg").is_file()


def test_bad_box(roboflow: Path) -> None:
    (roboflow / "train" / "_annotations.txt").write_text("img_001.jpg 1,2,3,4,0\nimg_002.jpg 1,2,3,4\n")
    with pytest.raises(FormatError) as err:
        list(yolokeras.read(roboflow))
    assert "_annotations.txt" in str(err.value) and err.value.where == "line 2" and "'1,2,3,4'" in err.value.message
    (roboflow / "train" / "_annotations.txt").write_text("img_001.jpg 1,2,3,4,5\n")
    with pytest.raises(FormatError) as err:
        list(yolokeras.read(roboflow))
    assert err.value.where == "line 1" and "class id 5" in err.value.message


def test_detect(roboflow: Path, tmp_path: Path) -> None:
    assert detect(roboflow) == "yolokeras"
    assert detect(roboflow / "train") == "yolokeras"
    darknet_list = tmp_path / "train.txt"
    darknet_list.write_text("data/obj/a.jpg\n")
    assert yolokeras.detect(darknet_list).score == 0
