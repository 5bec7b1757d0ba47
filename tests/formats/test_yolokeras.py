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


# ------------------------------------------------------------------------------ real Roboflow exports (verbatim lines)

# angshumansinha/keras-yolo3 @ 276a4be7ac82b68a4bf2708da24c6c0d666e637d: train/_classes.txt (verbatim: names with
# spaces, no newline at the end) and three lines of train/_annotations.txt (names starting with '-', 4 boxes a line)
RF_CLASSES = ("AC\nBoiler\nCCTV\nCylinder\nFire Alarm\nFire Extinguisher\nLift\nStandard Floor\nStrong room\nTiled Floor\n"
              "absetos roof\ncomputer\nconcrete roof\nkitchen\nsand bucket\nsmoke detector")
RF_LINES = ["-bank-vault208-_png.rf.0818fc1c82b455e65534c341f0cc1f05.jpg 7,32,411,406,1",
            "-153-_png.rf.08862894cc5c0ad2e73642c34e11d003.jpg 136,3,211,188,3 191,61,239,251,3 238,60,298,234,3 "
            "300,57,361,229,3",
            "-roof338-_png.rf.0e9906c6c186d4745a2233b15cf21925.jpg 5,75,217,359,5 201,85,409,365,5"]


def test_real_roboflow_yolo_keras_export(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "_classes.txt").write_text(RF_CLASSES)
    (tmp_path / "train" / "_annotations.txt").write_text("\n".join(RF_LINES) + "\n")
    for line in RF_LINES:
        _image(tmp_path / "train" / line.split()[0], 416, 416)
    assert detect(tmp_path) == "yolokeras"
    reader = yolokeras.read(tmp_path)
    assert reader.classes.names[:6] == ["AC", "Boiler", "CCTV", "Cylinder", "Fire Alarm", "Fire Extinguisher"]
    assert len(reader.classes) == 16 and reader.classes.by_id(15).name == "smoke detector"
    got = [(s.image.file_name, s.split, [(a.label, a.geometry) for a in s.annotations]) for s in reader]
    assert got == [
        ("-bank-vault208-_png.rf.0818fc1c82b455e65534c341f0cc1f05.jpg", "train", [("Boiler", Box(7, 32, 411, 406))]),
        ("-153-_png.rf.08862894cc5c0ad2e73642c34e11d003.jpg", "train",
         [("Cylinder", Box(136, 3, 211, 188)), ("Cylinder", Box(191, 61, 239, 251)), ("Cylinder", Box(238, 60, 298, 234)),
          ("Cylinder", Box(300, 57, 361, 229))]),
        ("-roof338-_png.rf.0e9906c6c186d4745a2233b15cf21925.jpg", "train",
         [("Fire Extinguisher", Box(5, 75, 217, 359)), ("Fire Extinguisher", Box(201, 85, 409, 365))]),
    ]
    out = tmp_path / "out"
    report = yolokeras.write(reader, out, classes=reader.classes)
    assert (out / "train" / "_annotations.txt").read_text().splitlines() == RF_LINES
    assert (out / "train" / "_classes.txt").read_text().splitlines() == RF_CLASSES.splitlines()
    assert not report.converted and not report.dropped


def test_real_roboflow_2020_yolo_v3_keras_export_without_classes_file(tmp_path: Path) -> None:
    """99002523/dataset @ 78ab31ee8adff9cbb70a109f6017b31e5a1ce5d9 ("exported via roboflow.ai on May 14, 2020 ...
    annotated in YOLO v3 (Keras) format"): _annotations.txt per split and no _classes.txt; boxes of zero width or
    height occur (verbatim lines). Kept as they are; class names are the ids."""
    lines = ["iso_org_png.rf.02f512fc7dd468ef183a98f854ddc60a.jpg 948,19,999,37,7 923,7,1009,47,0 1024,53,1024,108,0",
             "thehill_com_png.rf.00bbced95e76e450e45d21a4c075a557.jpg 1004,378,1004,378,0"]
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "_annotations.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        _image(tmp_path / "train" / line.split()[0], 1024, 768)
    assert detect(tmp_path) == "yolokeras"
    reader = yolokeras.read(tmp_path)
    got = [[(a.label, a.geometry) for a in s.annotations] for s in reader]
    assert got == [[("7", Box(948, 19, 999, 37)), ("0", Box(923, 7, 1009, 47)), ("0", Box(1024, 53, 1024, 108))],
                   [("0", Box(1004, 378, 1004, 378))]]
    assert [(c.id, c.name) for c in sorted(reader.classes, key=lambda c: c.id)] == [(0, "0"), (7, "7")]
