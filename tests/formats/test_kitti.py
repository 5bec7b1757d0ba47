"""KITTI object detection labels.

Format: readme.txt of the object development kit
(https://s3.eu-central-1.amazonaws.com/avg-kitti/devkit_object.zip;
http://www.cvlibs.net/datasets/kitti/eval_object.php): `training/image_2/<id>.png`,
`training/label_2/<id>.txt`, one object a line:
`type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]`.
The lines below are KITTI's own 000001.txt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Keypoints, Mask, Polygon
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample
from visionloop.formats import detect, kitti

KITTI_000001 = """\
Truck 0.00 0 -1.57 599.41 156.40 629.75 189.25 2.85 2.63 12.34 0.47 1.49 69.44 -1.56
Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57
Cyclist 0.00 3 -1.65 676.60 163.95 688.98 193.93 1.86 0.60 2.02 4.59 1.32 45.84 -1.55
DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10
DontCare -1 -1 -10 511.35 174.96 527.81 187.45 -1 -1 -1 -1000 -1000 -1000 -10
"""


def _image(path: Path, size: tuple[int, int] = (12, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (5, 5, 5)).save(path)


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "kitti"
    for stem in ("000000", "000001", "000002"):
        _image(root / "training/image_2" / f"{stem}.png")
    labels = root / "training/label_2"
    labels.mkdir(parents=True)
    (labels / "000001.txt").write_text(KITTI_000001)
    (labels / "000002.txt").write_text("")
    _image(root / "testing/image_2/000000.png")
    return root


def test_reads_kitti_labels(dataset: Path) -> None:
    reader = kitti.read(dataset)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("training/image_2/000000.png", "train", LabelState.MISSING),
        ("training/image_2/000001.png", "train", LabelState.ANNOTATED),
        ("training/image_2/000002.png", "train", LabelState.NULL),
        ("testing/image_2/000000.png", "test", LabelState.MISSING),
    ]
    anns = samples[1].annotations
    assert [a.label for a in anns] == ["Truck", "Car", "Cyclist", "DontCare", "DontCare"]
    assert anns[0].geometry == Box(599.41, 156.40, 629.75, 189.25)
    assert anns[0].attributes == {"truncated": 0.0, "occluded": 0, "alpha": -1.57,
                                  "dimensions": [2.85, 2.63, 12.34], "location": [0.47, 1.49, 69.44],
                                  "rotation_y": -1.56}
    assert anns[2].attributes["occluded"] == 3
    assert anns[3].geometry == Box(503.89, 169.71, 590.61, 190.13)
    assert anns[3].attributes == {"truncated": -1.0, "occluded": -1}  # sentinels left out
    assert anns[0].confidence is None
    assert reader.classes.names == ["Truck", "Car", "Cyclist", "DontCare"]


def test_scores(tmp_path: Path) -> None:
    root = tmp_path / "res"
    _image(root / "image_2/a.png")
    (root / "label_2").mkdir()
    (root / "label_2/a.txt").write_text(
        "Car -1 -1 -10 1.00 2.00 3.00 4.00 -1 -1 -1 -1000 -1000 -1000 -10 0.87\n"
        "Car -1 -1 -10 1.00 2.00 3.00 4.00 -1 -1 -1 -1000 -1000 -1000 -10 7.5\n")
    (sample,) = list(kitti.read(root))
    assert sample.split is None
    assert sample.annotations[0].confidence == 0.87
    assert sample.annotations[1].confidence is None and sample.annotations[1].attributes["score"] == 7.5
    out = tmp_path / "out"
    kitti.write([sample], out)
    assert (out / "label_2/a.txt").read_text() == (
        "Car -1.00 -1 -10.00 1.00 2.00 3.00 4.00 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 -10.00 0.87\n"
        "Car -1.00 -1 -10.00 1.00 2.00 3.00 4.00 -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 -10.00 7.50\n")


def test_round_trip(dataset: Path, tmp_path: Path) -> None:
    original = list(kitti.read(dataset))
    out = tmp_path / "out"
    report = kitti.write(original, out)
    assert report.images == 4 and report.annotations["box"] == 5 and not report.dropped
    written = (out / "training/label_2/000001.txt").read_text()
    assert written == KITTI_000001.replace("DontCare -1 -1 -10 ", "DontCare -1.00 -1 -10.00 ").replace(
        " -1 -1 -1 -1000 -1000 -1000 -10\n", " -1.00 -1.00 -1.00 -1000.00 -1000.00 -1000.00 -10.00\n")
    assert not (out / "training/label_2/000000.txt").exists()  # MISSING stays MISSING
    back = list(kitti.read(out))
    assert [(s.image.file_name, s.split, s.state, s.annotations) for s in back] == [
        (s.image.file_name, s.split, s.state, s.annotations) for s in original]


def test_other_geometry_is_converted_and_counted(tmp_path: Path) -> None:
    src = tmp_path / "x.png"
    _image(src)
    m = np.zeros((8, 12), dtype=bool)
    m[2:4, 3:7] = True
    sample = Sample(ImageRef("dir/x.png", path=str(src)), (
        Annotation("traffic sign", Polygon(((1.5, 1.0, 4.0, 1.0, 4.0, 3.0),)), attributes={"pose": "Left"}),
        Annotation("Car", Mask.from_array(m), crowd=True),
        Annotation("Car", Keypoints((1, 1, 2))),
        Annotation("Car", Box(0.125, 0, 1, 1)),
    ), split="val")
    out = tmp_path / "out"
    report = kitti.write([sample], out)
    assert report.converted == {"polygon -> box": 1, "mask -> box": 1, "class name with spaces -> underscores": 1}
    assert report.dropped == {"keypoints: KITTI holds 2-D boxes only": 1, "attribute: KITTI has no place for it": 1,
                              "crowd flag: KITTI has no crowd flag": 1}
    (back,) = list(kitti.read(out))
    assert back.split == "val" and back.image.file_name == "val/image_2/x.png"
    assert [(a.label, a.geometry) for a in back.annotations] == [
        ("traffic_sign", Box(1.5, 1.0, 4.0, 3.0)), ("Car", Box(3, 2, 7, 4)), ("Car", Box(0.125, 0, 1, 1))]


def test_bad_line_names_file_and_line(dataset: Path) -> None:
    bad = dataset / "training/label_2/000002.txt"
    bad.write_text("Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57\n"
                   "Car 0.00 0 1.85 387.63 abc 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57\n")
    with pytest.raises(FormatError) as e:
        list(kitti.read(dataset))
    assert "000002.txt" in str(e.value) and "line 2, y1" in str(e.value)
    bad.write_text("Car 0 0 0 1 2 3\n")
    with pytest.raises(FormatError) as e:
        list(kitti.read(dataset))
    assert "line 1" in str(e.value) and "15 values" in str(e.value)


def test_detect(dataset: Path, raccoon: Path) -> None:
    assert kitti.detect(dataset).score >= 0.9
    assert detect(dataset) == "kitti"
    assert kitti.detect(raccoon).score == 0
