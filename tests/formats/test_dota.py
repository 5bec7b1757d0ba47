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


# ------------------------------------------------------------------ a real Roboflow "YOLOv5 Oriented Bounding Boxes"

# Zenny00/REU-Oyster_Orientation @ b1d068c36cf73088cf30fa5541caafd01c20105d, dataset/roboflow/ — a Roboflow
# YOLOv5-OBB export: data.yaml (verbatim; its `path:` edited by the project), {train,valid,test}/{images,labelTxt}.
# The lines are verbatim; that project ran tools/RemoveNegative.sh (@ 922efff4) on them, which rewrites negative
# and `-nan` fields to 0 — so the 0 corners below were negative or -nan in Roboflow's own file.
RF_YAML = ("path: ../datasets/roboflow\n\ntrain: train/images\nval: valid/images\ntest: test/images\n\nnc: 3\n"
           "names: ['Oyster-Closed', 'Oyster-Open', 'Oyster-SemiOpen']")
RF_LABELS = {
    ("train", "0017_jpg.rf.b0c86d83f551c21d18a96ea68ab4ea67"):
        "250.40022180292 222.79094982498424 256.48827079334296 193.12442844391057 313.6843168822088 204.86155769613623 "
        "307.5964266427036 234.52793905745625 Oyster-SemiOpen 0\n"
        "0 200.634922 109.470029 200.634922 109.470029 629.841269 0 629.841269 Oyster-Closed 0\n",
    ("valid", "12_jpg.rf.595dbbf6f148d4edd27046aa7b93029a"):  # its lines 11 and 12 (a corner past the 640 px edge)
        "179.22697469657578 149.75165585267789 170.57158697396517 116.40129683675285 244.8777839084505 97.11682675940892 "
        "253.5332478372584 130.46706759419448 Oyster-Open 0\n"
        "345.14189550172887 371.9925948507838 484.1883492967463 242.8982536447959 677.009958641429 450.566596513016 "
        "537.9691511324927 579.6553343647297 Oyster-Closed 0\n",
    ("test", "17_jpg.rf.1a35d9d0ec12055c78d1ee10d0031918"):
        "0 3.535542821082775 245.33606343378779 0 288.0375102671678 367.07264124296097 36.15461950561439 "
        "394.57684207077904 Oyster-Closed 0\n"
        "455.6252680000034 0 455.6254211986379 120.47065696482824 357.18996537492785 120.47055658670584 "
        "357.19005512757576 0.000002357913198169953 Oyster-Closed 0\n",
}
# test/images holds 15 images for 13 label files: this one has none
RF_UNLABELLED = ("test", "Shotcut_00_01_31_880_png.rf.13c1f25ad7d37c5f1e20065fc8bf87d5")


@pytest.fixture()
def roboflow_obb(tmp_path: Path) -> Path:
    root = tmp_path / "roboflow"
    root.mkdir()
    (root / "data.yaml").write_text(RF_YAML)
    for (split, stem), text in RF_LABELS.items():
        _image(root / split / "images" / f"{stem}.jpg", 640, 640)
        (root / split / "labelTxt").mkdir(parents=True, exist_ok=True)
        (root / split / "labelTxt" / f"{stem}.txt").write_text(text)
    _image(root / RF_UNLABELLED[0] / "images" / f"{RF_UNLABELLED[1]}.jpg", 640, 640)
    return root


def _corners(line: str) -> list[tuple[float, float]]:
    v = [float(t) for t in line.split()[:8]]
    return list(zip(v[0::2], v[1::2], strict=True))


def test_real_roboflow_obb_export_reads_with_its_yaml_classes(roboflow_obb: Path) -> None:
    """Detected as DOTA (its data.yaml names no labels/ folder); the class ids are data.yaml's `names` — before, the
    order of appearance ('Oyster-SemiOpen' got id 0 from train/, 'Oyster-Open', unused, was absent)."""
    assert detect(roboflow_obb) == "dota"
    reader = dota.read(roboflow_obb)
    samples = sorted(reader, key=lambda s: s.image.file_name)
    assert [(c.id, c.name) for c in reader.classes] == [(0, "Oyster-Closed"), (1, "Oyster-Open"), (2, "Oyster-SemiOpen")]
    got = {(s.split, s.image.file_name.rsplit("/", 1)[-1]): s for s in samples}
    train = got[("train", "0017_jpg.rf.b0c86d83f551c21d18a96ea68ab4ea67.jpg")]
    lines = RF_LABELS[("train", "0017_jpg.rf.b0c86d83f551c21d18a96ea68ab4ea67")].splitlines()
    assert train.annotations == (
        Annotation("Oyster-SemiOpen", RotatedBox.from_corners(_corners(lines[0])), attributes={"difficult": False}),
        Annotation("Oyster-Closed", RotatedBox.from_corners(_corners(lines[1])), attributes={"difficult": False}))
    assert _rb(train.annotations[1].geometry) == pytest.approx((54.7350145, 415.2380955, 109.470029, 429.206347, 0.0))
    test = got[("test", "17_jpg.rf.1a35d9d0ec12055c78d1ee10d0031918.jpg")]
    assert [a.label for a in test.annotations] == ["Oyster-Closed", "Oyster-Closed"] and test.image.metadata == {}
    valid = got[("valid", "12_jpg.rf.595dbbf6f148d4edd27046aa7b93029a.jpg")]
    assert [a.label for a in valid.annotations] == ["Oyster-Open", "Oyster-Closed"]  # the corner past the edge is kept
    assert got[("test", f"{RF_UNLABELLED[1]}.jpg")].state is LabelState.MISSING
    assert sorted({s.split for s in samples}) == ["test", "train", "valid"]


def test_real_roboflow_obb_split_folder_finds_the_yaml_above(roboflow_obb: Path) -> None:
    reader = dota.read(roboflow_obb / "valid")
    assert reader.classes.names == ["Oyster-Closed", "Oyster-Open", "Oyster-SemiOpen"]
    assert [len(s.annotations) for s in reader] == [2]


def test_roboflow_obb_nan_corner_is_skipped_counted_and_strict_refuses(roboflow_obb: Path, tmp_path: Path) -> None:
    """Roboflow's own file had `-nan` where RemoveNegative.sh wrote 0: the object is skipped and counted (before,
    the whole dataset was refused); --strict refuses it with the file and line."""
    from visionloop.formats.base import count_skips
    from visionloop.formats.convert import convert

    label = roboflow_obb / "test" / "labelTxt" / "17_jpg.rf.1a35d9d0ec12055c78d1ee10d0031918.txt"
    label.write_text(label.read_text().replace("0 3.535542821082775", "-nan 3.535542821082775", 1))
    with count_skips() as skips:
        test = [s for s in dota.read(roboflow_obb) if s.image.file_name.endswith("17_jpg.rf.1a35d9d0ec12055c78d1ee10d0031918.jpg")]
    assert len(test[0].annotations) == 1 and dict(skips) == {"object: a corner coordinate is not a number (nan/inf)": 1}
    with pytest.raises(FormatError) as e:
        convert(roboflow_obb, tmp_path / "o", to="datumaro", images="none", strict=True, workers=1)
    assert str(e.value).startswith(f"{label} (line 1): object not read: a corner coordinate is not a number")
