"""CamVid (701-image distribution).

Layout: http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/ (colour-coded `<name>_L.png`
label images, 32 classes) in the common train/ val/ test/ + *_labels/ + class_dict.csv
(`name,r,g,b`) distribution, as datumaro documents it:
https://openvinotoolkit.github.io/datumaro/stable/docs/data-formats/formats/camvid.html
The tool that distributes this layout reads it in GeorgeSeif/Semantic-Segmentation-Suite:utils/helpers.py:
`get_label_info` (class_dict.csv: a header row, then `name,r,g,b`, colours through int(float())) and
`one_hot_it` (a pixel is the class whose colour it equals exactly), with labels as `CamVid/<split>_labels/
<name>_L.png` (its example `test_labels/0001TP_007170_L.png`); the fixture below follows that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.classes import ClassMap
from visionloop.core.errors import FormatError
from visionloop.core.geometry import Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import camvid, detect

W, H = 6, 4
CLASS_DICT = "name,r,g,b\nAnimal,64,128,64\nCar,64,0,128\nRoad,128,64,128\nSky,128,128,128\nVoid,0,0,0\n"


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (7, 7, 7)).save(path)


def _region(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[rows, cols] = True
    return m


ROAD = _region(slice(2, 4), slice(0, 6))
CAR = _region(slice(1, 2), slice(1, 3))
SKY = _region(slice(0, 1), slice(0, 6))


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "CamVid"
    root.mkdir()
    (root / "class_dict.csv").write_text(CLASS_DICT)
    _image(root / "train/0001TP_006690.png")
    _image(root / "train/0001TP_006720.png")
    _image(root / "val/0016E5_07959.png")
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[ROAD] = (128, 64, 128)
    rgb[CAR] = (64, 0, 128)
    rgb[SKY] = (128, 128, 128)
    (root / "train_labels").mkdir()
    Image.fromarray(rgb).save(root / "train_labels/0001TP_006690_L.png")
    (root / "val_labels").mkdir()
    Image.fromarray(np.zeros((H, W, 3), dtype=np.uint8)).save(root / "val_labels/0016E5_07959_L.png")
    return root


def test_reads_camvid(dataset: Path) -> None:
    reader = camvid.read(dataset)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("train/0001TP_006690.png", "train", LabelState.ANNOTATED),
        ("train/0001TP_006720.png", "train", LabelState.MISSING),
        ("val/0016E5_07959.png", "val", LabelState.NULL),
    ]
    assert samples[0].annotations == (
        Annotation("Car", Mask.from_array(CAR), attributes={"semantic": True}),
        Annotation("Road", Mask.from_array(ROAD), attributes={"semantic": True}),
        Annotation("Sky", Mask.from_array(SKY), attributes={"semantic": True}),
    )
    assert [(c.name, c.id, c.color) for c in reader.classes][:2] == [("Animal", 0, "#408040"), ("Car", 1, "#400080")]


def test_round_trip(dataset: Path, tmp_path: Path) -> None:
    reader = camvid.read(dataset)
    original = list(reader)
    out = tmp_path / "out"
    report = camvid.write(original, out, classes=reader.classes)
    assert report.annotations["mask"] == 3 and not report.dropped and not report.converted
    assert (out / "class_dict.csv").read_text() == CLASS_DICT
    labels = np.asarray(Image.open(out / "train_labels/0001TP_006690_L.png"))
    assert tuple(labels[3, 0]) == (128, 64, 128) and tuple(labels[1, 5]) == (0, 0, 0)
    back = list(camvid.read(out))
    assert [(s.image.file_name, s.split, s.state, s.annotations) for s in back] == [
        (s.image.file_name, s.split, s.state, s.annotations) for s in original]


def test_new_classes_get_free_colours(tmp_path: Path) -> None:
    src = tmp_path / "s.png"
    _image(src)
    sample = Sample(ImageRef("s.png", path=str(src)), (
        Annotation("tree", Polygon(((0.0, 0.0, 6.0, 0.0, 6.0, 1.0, 0.0, 1.0),))),
        Annotation("bush", Mask.from_array(CAR)),
    ))
    cm = ClassMap.from_names(["tree", "bush"])
    cm.replace("bush", color="#000000")  # collides with Void: must get another colour
    out = tmp_path / "out"
    report = camvid.write([sample], out, classes=cm)
    assert report.converted["polygon -> mask (rasterised as COCO does)"] == 1
    lines = (out / "class_dict.csv").read_text().splitlines()
    assert lines[1] == "Void,0,0,0" and [ln.split(",")[0] for ln in lines[1:]] == ["Void", "tree", "bush"]
    assert lines[3] != "bush,0,0,0"
    (back,) = list(camvid.read(out))
    assert back.split is None
    assert back.annotations == (
        Annotation("tree", Mask.from_array(SKY), attributes={"semantic": True}),
        Annotation("bush", Mask.from_array(CAR), attributes={"semantic": True}),
    )


def test_unknown_colour_names_the_file(dataset: Path) -> None:
    png = dataset / "val_labels/0016E5_07959_L.png"
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[2, 3] = (1, 2, 3)
    Image.fromarray(rgb).save(png)
    with pytest.raises(FormatError) as e:
        list(camvid.read(dataset))
    assert "0016E5_07959_L.png" in str(e.value) and "x=3, y=2" in str(e.value)


def test_bad_class_dict(dataset: Path) -> None:
    (dataset / "class_dict.csv").write_text("name,r,g,b\nRoad,128,64\n")
    with pytest.raises(FormatError) as e:
        camvid.read(dataset)
    assert "class_dict.csv" in str(e.value) and "line 2" in str(e.value)


def test_detect(dataset: Path, raccoon: Path) -> None:
    assert camvid.detect(dataset).score >= 0.9
    assert detect(dataset) == "camvid"
    assert camvid.detect(raccoon).score == 0
