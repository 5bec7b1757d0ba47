"""DOTA / YOLOv5-OBB labels: corner order, header lines, difficult, round trip, errors, detection."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core import (
    Annotation,
    Box,
    FormatError,
    ImageRef,
    Label,
    LabelState,
    Mask,
    Polygon,
    RotatedBox,
    Sample,
)
from visionloop.formats import detect, dota


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


def _rb(g: object) -> tuple[float, float, float, float, float]:
    assert isinstance(g, RotatedBox)
    return (g.cx, g.cy, g.w, g.h, g.angle)


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """DOTA v1.0 layout and label lines (https://captain-whu.github.io/DOTA/dataset.html)."""
    root = tmp_path / "dota"
    _image(root / "train" / "images" / "P0001.png", 100, 80)
    _image(root / "train" / "images" / "P0002.png", 50, 50)
    _image(root / "train" / "images" / "P0003.png", 50, 50)
    labels = root / "train" / "labelTxt"
    labels.mkdir(parents=True)
    (labels / "P0001.txt").write_text(
        "imagesource:GoogleEarth\n"
        "gsd:0.146343590398\n"
        "10 10 30 10 30 20 10 20 plane 0\n"  # axis-aligned, head top-left
        "50 40 50 60 40 60 40 40 small-vehicle 1\n"  # head top-right, width pointing down: 90 degrees
    )
    (labels / "P0002.txt").write_text("imagesource:GoogleEarth\ngsd:null\n")  # labelled, nothing in it
    # P0003 has no label file
    return root


def test_read(dataset: Path) -> None:
    reader = dota.read(dataset)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("train/images/P0001.png", "train", LabelState.ANNOTATED),
        ("train/images/P0002.png", "train", LabelState.NULL),
        ("train/images/P0003.png", "train", LabelState.MISSING),
    ]
    a = samples[0]
    assert a.image.metadata == {"imagesource": "GoogleEarth", "gsd": 0.146343590398}
    plane, car = a.annotations
    assert (plane.label, _rb(plane.geometry), plane.attributes) == ("plane", (20, 15, 20, 10, 0), {"difficult": False})
    assert (car.label, car.attributes) == ("small-vehicle", {"difficult": True})
    assert _rb(car.geometry) == (45, 50, 20, 10, 90)
    assert car.geometry.corners()[0] == pytest.approx((50, 40))  # the head corner comes back first
    assert samples[1].image.metadata == {"imagesource": "GoogleEarth", "gsd": "null"}
    assert [(c.name, c.id) for c in reader.classes] == [("plane", 0), ("small-vehicle", 1)]


def test_round_trip(dataset: Path, tmp_path: Path) -> None:
    originals = list(dota.read(dataset))
    report = dota.write(originals, tmp_path / "out")
    assert report.annotations == {"rotated_box": 2} and not report.dropped and not report.converted
    assert (tmp_path / "out" / "train" / "labelTxt" / "P0001.txt").read_text() == (
        "imagesource:GoogleEarth\ngsd:0.146343590398\n"
        "10 10 30 10 30 20 10 20 plane 0\n"
        "50 40 50 60 40 60 40 40 small-vehicle 1\n")
    assert not (tmp_path / "out" / "train" / "labelTxt" / "P0003.txt").exists()
    again = list(dota.read(tmp_path / "out"))
    assert [(s.image.file_name, s.state, s.image.metadata, s.annotations) for s in again] == [
        (s.image.file_name, s.state, s.image.metadata, s.annotations) for s in originals]


def test_rotated_round_trip_and_conversions(tmp_path: Path) -> None:
    img = _image(tmp_path / "x.png", 100, 100)
    arr = np.zeros((100, 100), np.uint8)
    arr[10:20, 30:60] = 1
    boxes = [RotatedBox(50, 50, 30, 10, 30), RotatedBox(20.5, 30.25, 7, 3, -150)]
    sample = Sample(ImageRef("x.png", path=str(img)), (
        *(Annotation("ship", b) for b in boxes),
        Annotation("ship", Box(1, 2, 5, 8)),
        Annotation("ship", Polygon.from_points([(0, 0), (10, 0), (10, 4), (0, 4)])),
        Annotation("ship", Mask.from_array(arr)),
        Annotation("scene", Label()),
        Annotation("two words", Box(0, 0, 1, 1)),
    ))
    report = dota.write([sample], tmp_path / "out")
    assert report.converted == {"box -> rotated_box (angle 0)": 1,
                                "polygon -> rotated_box (minimum-area rectangle)": 1,
                                "mask -> rotated_box (minimum-area rectangle)": 1}
    assert report.dropped == {"label: DOTA cannot hold whole-image labels": 1,
                              "box: class name 'two words' has a space, which DOTA cannot hold": 1}
    (got,) = dota.read(tmp_path / "out")
    for want, ann in zip(boxes, got.annotations, strict=False):
        assert _rb(ann.geometry) == pytest.approx(_rb(want), abs=1e-5)
    assert _rb(got.annotations[2].geometry) == pytest.approx((3, 5, 4, 6, 0))
    poly, mask = got.annotations[3].geometry, got.annotations[4].geometry
    assert isinstance(poly, RotatedBox) and poly.area == pytest.approx(40)
    assert isinstance(mask, RotatedBox) and mask.bounds().xywh() == pytest.approx((30, 10, 29, 9))  # contour
    assert math.isclose(got.annotations[1].geometry.angle, -150, abs_tol=1e-6)  # type: ignore[union-attr]


def test_bad_line(dataset: Path) -> None:
    (dataset / "train" / "labelTxt" / "P0003.txt").write_text("1 2 3 4 5 6 7 eight plane 0\n")
    with pytest.raises(FormatError) as err:
        list(dota.read(dataset))
    assert "P0003.txt" in str(err.value) and err.value.where == "line 1"
    (dataset / "train" / "labelTxt" / "P0003.txt").write_text("\n1 2 3 4 5 6 7 8 plane\n1 2 3 4 plane 0\n")
    with pytest.raises(FormatError) as err:
        list(dota.read(dataset))
    assert err.value.where == "line 3" and "6 fields" in err.value.message


def test_detect(dataset: Path, tmp_path: Path) -> None:
    assert detect(dataset) == "dota"
    assert detect(dataset / "train") == "dota"
    (tmp_path / "yolo" / "labelTxt").mkdir(parents=True)
    (tmp_path / "yolo" / "labelTxt" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    assert dota.detect(tmp_path / "yolo").score < 0.2
