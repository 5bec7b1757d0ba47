"""YOLO (Ultralytics layout): read hand-written datasets, write, round trip, errors, real raccoon images.

Format documentation: https://docs.ultralytics.com/datasets/detect/ (boxes),
https://docs.ultralytics.com/datasets/segment/ (polygons), https://docs.ultralytics.com/datasets/obb/
(oriented boxes), https://docs.ultralytics.com/datasets/pose/ (keypoints).
"""

from __future__ import annotations

import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from visionloop.core import (
    Annotation,
    Box,
    ClassMap,
    FormatError,
    ImageError,
    ImageRef,
    Keypoints,
    Label,
    LabelState,
    Mask,
    Polygon,
    RotatedBox,
    Sample,
    mask_to_polygon,
)
from visionloop.formats import yolo
from visionloop.formats.base import ImageMode


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 60, 30)).save(path)
    return path


def _text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _ref(path: Path, width: int, height: int, name: str | None = None) -> ImageRef:
    return ImageRef(name or path.name, width=width, height=height, path=str(path))


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= 1e-6 * scale


def _same_geometry(a, b, scale: float) -> bool:  # noqa: ANN001 - geometry types
    if type(a) is not type(b):
        return False
    if isinstance(a, Box):
        return all(_close(x, y, scale) for x, y in zip((a.x0, a.y0, a.x1, a.y1), (b.x0, b.y0, b.x1, b.y1), strict=True))
    if isinstance(a, RotatedBox):
        return all(_close(p, q, scale) for c, d in zip(a.corners(), b.corners(), strict=True)
                   for p, q in zip(c, d, strict=True))
    if isinstance(a, Polygon):
        return len(a.rings) == len(b.rings) and all(
            len(r) == len(s) and all(_close(x, y, scale) for x, y in zip(r, s, strict=True))
            for r, s in zip(a.rings, b.rings, strict=True)
        )
    raise AssertionError(f"unexpected geometry {a!r}")


# --------------------------------------------------------------------------- hand-written datasets


@pytest.fixture()
def detect_dataset(tmp_path: Path) -> Path:
    """https://docs.ultralytics.com/datasets/detect/ — names as a dict, images/<split> + labels/<split>."""
    root = tmp_path / "det"
    _text(root / "data.yaml", (
        "# Ultralytics detect dataset\n"
        "path: .\n"
        "train: images/train\n"
        "val: images/val\n"
        "names:\n"
        "  0: person\n"
        "  1: car\n"
    ))
    _image(root / "images/train/a.jpg", 64, 48)
    _text(root / "labels/train/a.txt", "0 0.5 0.5 0.25 0.5\n1 0.125 0.25 0.25 0.5\n")
    _image(root / "images/val/b.png", 100, 80)
    _text(root / "labels/val/b.txt", "1 0.3 0.4 0.2 0.1\n")
    return root


def test_read_detect_names_dict(detect_dataset: Path) -> None:
    reader = yolo.read(detect_dataset)
    assert reader.classes.names == ["person", "car"]
    assert [c.id for c in reader.classes] == [0, 1]
    samples = list(reader)
    assert [s.image.file_name for s in samples] == ["images/train/a.jpg", "images/val/b.png"]
    assert [s.split for s in samples] == ["train", "val"]
    a, b = samples
    assert (a.image.width, a.image.height) == (64, 48)
    assert (b.image.width, b.image.height) == (100, 80)
    assert a.image.path == str((detect_dataset / "images/train/a.jpg").absolute())
    assert a.state is LabelState.ANNOTATED
    assert [(x.label, x.geometry) for x in a.annotations] == [
        ("person", Box(24.0, 12.0, 40.0, 36.0)),
        ("car", Box(0.0, 0.0, 16.0, 24.0)),
    ]
    assert [x.label for x in b.annotations] == ["car"]
    box = b.annotations[0].geometry
    assert (box.x0, box.y0, box.x1, box.y1) == pytest.approx((20.0, 28.0, 40.0, 36.0), abs=1e-9)


def test_read_segment_names_list_with_path_key(tmp_path: Path) -> None:
    """https://docs.ultralytics.com/datasets/segment/ — names as a list, <split>/images + `path:`."""
    _text(tmp_path / "data.yaml", (
        "path: ds\n"
        "train: train/images\n"
        "val: valid/images\n"
        "names: [cat, dog]\n"
    ))
    root = tmp_path / "ds"
    _image(root / "train/images/p.jpg", 100, 80)
    _text(root / "train/labels/p.txt", (
        "1 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n"   # 8 numbers, no `task: obb`: a 4-point polygon
        "0 0.2 0.25 0.4 0.25 0.3 0.75\n"        # triangle
        "0 0.5 0.5 0.2 0.2\n"                   # a box among polygons
    ))
    _image(root / "valid/images/q.jpg", 64, 48)  # no label file
    samples = list(yolo.read(tmp_path / "data.yaml"))
    assert [s.image.file_name for s in samples] == ["train/images/p.jpg", "valid/images/q.jpg"]
    assert [s.split for s in samples] == ["train", "val"]
    p, q = samples
    assert [a.label for a in p.annotations] == ["dog", "cat", "cat"]
    quad, tri, box = (a.geometry for a in p.annotations)
    assert isinstance(quad, Polygon)
    assert quad.rings[0] == pytest.approx((10, 8, 50, 8, 50, 40, 10, 40))
    assert isinstance(tri, Polygon)
    assert tri.rings[0] == pytest.approx((20, 20, 40, 20, 30, 60))
    assert box == Box(40.0, 32.0, 60.0, 48.0)
    assert q.state is LabelState.MISSING and q.annotations == ()


OBB_LINES = (
    "0 0.25 0.25 0.75 0.25 0.75 0.5 0.25 0.5\n"      # upright 32×12 box centred at (32, 18) in 64×48
    "1 0.5 0.375 0.6 0.5 0.5 0.625 0.4 0.5\n"        # (50,30) (60,40) (50,50) (40,40) in 100×80
)


@pytest.fixture()
def obb_dataset(tmp_path: Path) -> Path:
    """https://docs.ultralytics.com/datasets/obb/ — `class x1 y1 x2 y2 x3 y3 x4 y4`, `task: obb`."""
    root = tmp_path / "obb"
    _text(root / "data.yaml", "path: .\ntask: obb\ntrain: images/train\nnames: [plane, ship]\n")
    _image(root / "images/train/a.jpg", 64, 48)
    _text(root / "labels/train/a.txt", OBB_LINES.splitlines()[0] + "\n")
    _image(root / "images/train/b.jpg", 100, 80)
    _text(root / "labels/train/b.txt", OBB_LINES.splitlines()[1] + "\n")
    return root


def test_read_obb(obb_dataset: Path) -> None:
    a, b = list(yolo.read(obb_dataset))
    ra = a.annotations[0].geometry
    assert isinstance(ra, RotatedBox)
    assert (ra.cx, ra.cy, ra.w, ra.h, ra.angle) == pytest.approx((32, 18, 32, 12, 0), abs=1e-9)
    rb = b.annotations[0].geometry
    assert isinstance(rb, RotatedBox)
    side = math.sqrt(200)
    assert (rb.cx, rb.cy, rb.w, rb.h, rb.angle) == pytest.approx((50, 40, side, side, 45), abs=1e-9)
    assert [x.label for x in (a.annotations[0], b.annotations[0])] == ["plane", "ship"]


def test_eight_numbers_are_a_polygon_unless_obb(obb_dataset: Path) -> None:
    _text(obb_dataset / "data.yaml", "path: .\ntrain: images/train\nnames: [plane, ship]\n")
    a, b = list(yolo.read(obb_dataset))
    assert isinstance(a.annotations[0].geometry, Polygon)
    assert b.annotations[0].geometry.rings[0] == pytest.approx((50, 30, 60, 40, 50, 50, 40, 40))
    told = list(yolo.read(obb_dataset, task="obb"))
    assert all(isinstance(s.annotations[0].geometry, RotatedBox) for s in told)


def test_read_pose_keypoints_with_box(tmp_path: Path) -> None:
    """https://docs.ultralytics.com/datasets/pose/ — `kpt_shape: [2, 3]`."""
    _text(tmp_path / "data.yaml", "train: images/train\nkpt_shape: [2, 3]\nnames: {0: person}\n")
    _image(tmp_path / "images/train/a.jpg", 64, 48)
    _text(tmp_path / "labels/train/a.txt", "0 0.5 0.5 0.5 0.5 0.25 0.25 2 0.75 0.75 1\n")
    (sample,) = list(yolo.read(tmp_path))
    (ann,) = sample.annotations
    assert ann.bbox == Box(16, 12, 48, 36)
    assert ann.geometry == Keypoints((16, 12, 2, 48, 36, 1))


def test_empty_file_is_null_missing_file_is_missing(detect_dataset: Path) -> None:
    _image(detect_dataset / "images/train/empty.jpg", 64, 48)
    _text(detect_dataset / "labels/train/empty.txt", "")
    _image(detect_dataset / "images/train/blank.jpg", 64, 48)
    _text(detect_dataset / "labels/train/blank.txt", "\n  \n")
    _image(detect_dataset / "images/train/nolabel.jpg", 64, 48)
    states = {s.image.file_name: s.state for s in yolo.read(detect_dataset)}
    assert states == {
        "images/train/a.jpg": LabelState.ANNOTATED,
        "images/train/blank.jpg": LabelState.NULL,
        "images/train/empty.jpg": LabelState.NULL,
        "images/train/nolabel.jpg": LabelState.MISSING,
        "images/val/b.png": LabelState.ANNOTATED,
    }


def test_split_argument_overrides(detect_dataset: Path) -> None:
    assert {s.split for s in yolo.read(detect_dataset, split="holdout")} == {"holdout"}


def test_reader_streams_and_reads_labels_lazily(detect_dataset: Path) -> None:
    """read() touches data.yaml only; a broken label file fails when its sample is reached."""
    _text(detect_dataset / "labels/val/b.txt", "9 0.5 0.5 0.1 0.1\n")
    reader = yolo.read(detect_dataset)
    it = iter(reader)
    assert next(it).image.file_name == "images/train/a.jpg"
    with pytest.raises(FormatError, match="b.txt"):
        next(it)


# --------------------------------------------------------------------------- bad input


BAD_LINES = [
    ("0 0.5 0.5 0.2\n", "wrong number of fields"),
    ("0 0.1 0.1 0.5 0.1 0.5 0.5 0.1\n", "even number of coordinates"),
    ("0 0.5 abc 0.2 0.2\n", "'abc' is not a number"),
    ("x 0.5 0.5 0.2 0.2\n", "class index 'x' is not a number"),
    ("7 0.5 0.5 0.2 0.2\n", "class index 7 is not in the class names"),
    ("0 32 24 16 16\n", "not normalised"),
    ("0 0.5 0.5 -0.2 0.2\n", "negative box size"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_bad_label_line(detect_dataset: Path, line: str, message: str) -> None:
    _text(detect_dataset / "labels/train/a.txt", "0 0.5 0.5 0.25 0.5\n\n" + line)
    with pytest.raises(FormatError) as e:
        list(yolo.read(detect_dataset))
    text = str(e.value)
    assert "a.txt" in text and "line 3" in text and message in text
    assert e.value.path == str(detect_dataset / "labels/train/a.txt")
    assert e.value.where == "line 3"


def test_malformed_yaml_names_file_and_line(detect_dataset: Path) -> None:
    _text(detect_dataset / "data.yaml", "path: .\nnames: [a, b\ntrain: images/train\n")
    with pytest.raises(FormatError) as e:
        yolo.read(detect_dataset)
    assert "data.yaml" in str(e.value) and "line 3" in str(e.value)


@pytest.mark.parametrize(("text", "message"), [
    ("train: images/train\n", "no `names`"),
    ("names: [a]\ntrain: images/nowhere\n", "not a folder or file here"),
    ("names: [a, b]\nnc: 3\ntrain: images/train\n", "`nc` is 3"),
    ("- just\n- a list\n", "not a mapping"),
])
def test_bad_yaml_content(detect_dataset: Path, text: str, message: str) -> None:
    _text(detect_dataset / "data.yaml", text)
    with pytest.raises(FormatError, match="data.yaml") as e:
        yolo.read(detect_dataset)
    assert message in str(e.value)


def test_names_only_yaml_reads_the_image_folders(detect_dataset: Path, tmp_path: Path) -> None:
    """supervision's `as_yolo` writes `nc` and `names` only (supervision/dataset/formats/yolo.py, `save_data_yaml`;
    its real output is read in test_tool_exports.py): the folders are found as without a data.yaml."""
    _text(detect_dataset / "data.yaml", "nc: 2\nnames: [person, car]\n")
    reader = yolo.read(detect_dataset)
    assert reader.classes.names == ["person", "car"]
    assert [(s.image.file_name, s.split, [a.label for a in s.annotations]) for s in reader] == [
        ("images/train/a.jpg", "train", ["person", "car"]), ("images/val/b.png", "val", ["car"])]
    _text(tmp_path / "bare" / "data.yaml", "names: [a]\n")
    with pytest.raises(FormatError, match="data.yaml") as e:
        yolo.read(tmp_path / "bare")
    assert "names no images" in str(e.value)


def test_label_without_image_is_an_error(detect_dataset: Path) -> None:
    _text(detect_dataset / "labels/train/ghost.txt", "0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ImageError) as e:
        list(yolo.read(detect_dataset))
    assert "ghost.txt" in str(e.value) and "no image" in str(e.value)


def test_unreadable_image_is_an_image_error(detect_dataset: Path) -> None:
    _text(detect_dataset / "images/train/broken.jpg", "not a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        list(yolo.read(detect_dataset))


def test_listed_image_missing_names_list_and_line(tmp_path: Path) -> None:
    _image(tmp_path / "images/train/a.jpg", 64, 48)
    _text(tmp_path / "train.txt", "./images/train/a.jpg\n./images/train/gone.jpg\n")
    _text(tmp_path / "data.yaml", "train: train.txt\nnames: [a]\n")
    with pytest.raises(ImageError) as e:
        list(yolo.read(tmp_path))
    assert "train.txt" in str(e.value) and "line 2" in str(e.value) and "gone.jpg" in str(e.value)


# --------------------------------------------------------------------------- other layouts


def test_roboflow_relative_paths_and_list_file(tmp_path: Path) -> None:
    # Roboflow writes `../train/images` in a data.yaml that sits beside train/
    _text(tmp_path / "data.yaml", "train: ../train/images\nval: val.txt\nnc: 1\nnames: ['raccoon']\n")
    _image(tmp_path / "train/images/a.jpg", 64, 48)
    _text(tmp_path / "train/labels/a.txt", "0 0.5 0.5 0.5 0.5\n")
    _image(tmp_path / "extra/images/b.jpg", 64, 48)
    _text(tmp_path / "extra/labels/b.txt", "0 0.25 0.25 0.5 0.5\n")
    _text(tmp_path / "val.txt", "./extra/images/b.jpg\n")
    a, b = list(yolo.read(tmp_path))
    assert (a.split, a.annotations[0].geometry) == ("train", Box(16, 12, 48, 36))
    assert (b.split, b.image.file_name, b.annotations[0].geometry) == ("val", "extra/images/b.jpg", Box(0, 0, 32, 24))


def test_folders_without_yaml_use_classes_txt(tmp_path: Path) -> None:
    _image(tmp_path / "images/train/a.jpg", 64, 48)
    _text(tmp_path / "labels/train/a.txt", "1 0.5 0.5 0.5 0.5\n")
    _image(tmp_path / "images/val/b.jpg", 64, 48)
    _text(tmp_path / "labels/classes.txt", "cat\ndog\n")
    reader = yolo.read(tmp_path)
    samples = list(reader)
    assert reader.classes.names == ["cat", "dog"]
    assert [(s.split, s.state) for s in samples] == [("train", LabelState.ANNOTATED), ("val", LabelState.MISSING)]
    assert samples[0].annotations[0].label == "dog"


def test_split_first_layout_without_names_uses_indices(tmp_path: Path) -> None:
    _image(tmp_path / "train/images/a.jpg", 64, 48)
    _text(tmp_path / "train/labels/a.txt", "3 0.5 0.5 0.5 0.5\n0 0.5 0.5 0.25 0.25\n")
    reader = yolo.read(tmp_path)
    (sample,) = list(reader)
    assert sample.split == "train"
    assert [a.label for a in sample.annotations] == ["3", "0"]
    assert [(c.name, c.id) for c in reader.classes] == [("3", 3), ("0", 0)]


def test_label_path_replaces_the_last_images_folder(tmp_path: Path) -> None:
    root = tmp_path / "images" / "ds"  # an `images` folder above the dataset does not count
    assert yolo.label_path(root / "images/train/images/x.jpg", root) == root / "images/train/labels/x.txt"
    assert yolo.label_path(root / "images/train/x.jpg", root) == root / "labels/train/x.txt"
    assert yolo.label_path(root / "flat/x.jpg", root) == root / "flat/x.txt"


# --------------------------------------------------------------------------- detect


def test_detect(detect_dataset: Path, tmp_path: Path) -> None:
    assert yolo.detect(detect_dataset).score == 0.95
    assert yolo.detect(detect_dataset / "data.yaml").score == 0.95
    (detect_dataset / "data.yaml").unlink()
    found = yolo.detect(detect_dataset)
    assert found.score == 0.6 and "a.txt line 1" in found.reason
    empty = tmp_path / "empty"
    empty.mkdir()
    assert yolo.detect(empty).score == 0
    assert yolo.detect(detect_dataset / "images/train/a.jpg").score == 0
    darknet_like = tmp_path / "dn"
    _text(darknet_like / "obj.names", "a\n")
    _text(darknet_like / "obj.data", "classes = 1\n")
    assert yolo.detect(darknet_like).score == 0
    _text(empty / "data.yaml", "names: [a\n")
    assert yolo.detect(empty).score == 0.5


def test_detect_rejects_non_yolo_text(tmp_path: Path) -> None:
    _image(tmp_path / "images/a.jpg", 64, 48)
    _text(tmp_path / "labels/a.txt", "this is a caption\n")
    assert yolo.detect(tmp_path).score < 0.1


# --------------------------------------------------------------------------- write and round trip


@pytest.fixture()
def source_images(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    return {
        "a": _image(src / "a.jpg", 64, 48),
        "b": _image(src / "b.png", 100, 80),
        "c": _image(src / "c.jpg", 64, 48),
        "d": _image(src / "d.jpg", 100, 80),
        "e": _image(src / "e.jpg", 64, 48),
    }


def _mask(height: int, width: int) -> Mask:
    arr = np.zeros((height, width), dtype=np.uint8)
    arr[10:20, 5:25] = 1
    arr[30:40, 40:60] = 1
    return Mask.from_array(arr)


def test_write_then_read_round_trip(tmp_path: Path, source_images: dict[str, Path]) -> None:
    mask = _mask(80, 100)
    two_rings = Polygon(((1.5, 2.25, 30.0, 2.25, 15.0, 40.5), (40.0, 10.0, 60.0, 10.0, 60.0, 30.0, 45.0, 33.0)))
    samples = [
        Sample(_ref(source_images["a"], 64, 48), (
            Annotation("dog", Box(3.2, 4.8, 40.0, 33.6)),
            Annotation("cat", Polygon.from_points([(1.0, 1.0), (20.5, 3.0), (10.0, 30.25)])),
        ), split="train"),
        Sample(_ref(source_images["b"], 100, 80), (
            Annotation("cat", two_rings),
            Annotation("bird", mask),
            Annotation("dog", Keypoints((10, 10, 2))),
            Annotation("dog", Label()),
        ), split="val"),
        Sample(_ref(source_images["c"], 64, 48), (), split="val"),  # NULL
        Sample(_ref(source_images["d"], 100, 80), (), split="val", state=LabelState.MISSING),
        Sample(_ref(source_images["e"], 64, 48), (Annotation("dog", Label()),), split=None),
    ]
    out = tmp_path / "out"
    report = yolo.write(samples, out, classes=ClassMap.from_names(["zebra", "cat"]))

    assert report.images == 5
    assert report.annotations == {"box": 1, "polygon": 1 + 2 + 2}
    assert report.converted == {"mask -> polygon": 1, "polygon (several rings) -> one line per ring": 2}
    assert report.dropped == {
        "keypoints: YOLO detect/segment cannot hold keypoints": 1,
        "label: YOLO detect/segment cannot hold whole-image labels": 2,
    }
    assert report.files == 5 + 3 + 1  # images, label files (a, b, c), data.yaml

    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {"path": ".", "train": "images/train", "val": "images/val", "nc": 4,
                    "names": {0: "zebra", 1: "cat", 2: "dog", 3: "bird"}}
    assert (out / "labels/train/a.txt").read_text().splitlines()[0] == "2 0.337500 0.400000 0.575000 0.600000"
    assert (out / "labels/val/c.txt").read_text() == ""
    assert not (out / "labels/val/d.txt").exists()
    assert not (out / "labels/train/e.txt").exists()  # every annotation dropped: no label file
    assert (out / "images/val/d.jpg").read_bytes() == source_images["d"].read_bytes()

    reader = yolo.read(out)
    assert reader.classes.names == ["zebra", "cat", "dog", "bird"]
    back = {s.image.file_name: s for s in reader}
    assert sorted(back) == ["images/train/a.jpg", "images/train/e.jpg", "images/val/b.png",
                            "images/val/c.jpg", "images/val/d.jpg"]
    a = back["images/train/a.jpg"]
    assert a.split == "train" and (a.image.width, a.image.height) == (64, 48)
    expected_a = [(x.label, x.geometry) for x in samples[0].annotations]
    assert [x.label for x in a.annotations] == [e[0] for e in expected_a]
    assert all(_same_geometry(x.geometry, e[1], 64) for x, e in zip(a.annotations, expected_a, strict=True))

    b = back["images/val/b.png"]
    parts = mask_to_polygon(mask)
    assert parts is not None and len(parts.rings) == 2
    expected_b = [("cat", Polygon((two_rings.rings[0],))), ("cat", Polygon((two_rings.rings[1],)))]
    expected_b += [("bird", Polygon((ring,))) for ring in parts.rings]
    assert [x.label for x in b.annotations] == [e[0] for e in expected_b]
    assert all(_same_geometry(x.geometry, e[1], 100) for x, e in zip(b.annotations, expected_b, strict=True))

    assert back["images/val/c.jpg"].state is LabelState.NULL
    assert back["images/val/d.jpg"].state is LabelState.MISSING
    assert back["images/train/e.jpg"].state is LabelState.MISSING


def test_obb_round_trip_and_four_point_polygon_warning(tmp_path: Path, source_images: dict[str, Path]) -> None:
    rotated = RotatedBox(30.0, 20.0, 16.0, 8.0, 30.0)
    samples = [
        Sample(_ref(source_images["a"], 64, 48), (Annotation("ship", rotated),)),
        Sample(_ref(source_images["b"], 100, 80), (
            Annotation("ship", RotatedBox(50.0, 40.0, 30.0, 10.0, -60.0)),
            Annotation("ship", Polygon.from_points([(1, 1), (9, 1), (9, 9), (1, 9)])),
        )),
    ]
    out = tmp_path / "obb_out"
    report = yolo.write(samples, out)
    assert report.annotations == {"rotated_box": 2, "polygon": 1}
    assert report.converted == {"polygon (4 points) -> rotated_box when read back (task: obb)": 1}
    assert yaml.safe_load((out / "data.yaml").read_text())["task"] == "obb"
    back = list(yolo.read(out))
    assert [s.split for s in back] == ["train", "train"]
    assert _same_geometry(back[0].annotations[0].geometry, rotated, 64)
    assert _same_geometry(back[1].annotations[0].geometry, samples[1].annotations[0].geometry, 100)
    assert isinstance(back[1].annotations[1].geometry, RotatedBox)  # as the report warned


def test_write_renames_colliding_names(tmp_path: Path, source_images: dict[str, Path]) -> None:
    samples = [
        Sample(_ref(source_images["a"], 64, 48, "x/pic.jpg"), (Annotation("a", Box(0, 0, 32, 24)),)),
        Sample(_ref(source_images["c"], 64, 48, "y/pic.jpg"), (Annotation("a", Box(32, 24, 64, 48)),)),
        Sample(_ref(source_images["b"], 100, 80, "PIC.png"), (Annotation("a", Box(0, 0, 50, 40)),)),
        Sample(_ref(source_images["d"], 100, 80, "pic.jpg"), (), split="val"),  # another split: no clash
    ]
    out = tmp_path / "out"
    report = yolo.write(samples, out)
    assert report.converted == {"image name -> renamed (name already used in its split)": 2}
    assert sorted(p.name for p in (out / "images/train").iterdir()) == ["PIC_2.png", "pic.jpg", "pic_1.jpg"]
    assert sorted(p.name for p in (out / "labels/train").iterdir()) == ["PIC_2.txt", "pic.txt", "pic_1.txt"]
    back = {s.image.file_name: s.annotations[0].geometry for s in yolo.read(out) if s.annotations}
    assert back == {
        "images/train/pic.jpg": Box(0, 0, 32, 24),
        "images/train/pic_1.jpg": Box(32, 24, 64, 48),
        "images/train/PIC_2.png": Box(0, 0, 50, 40),
    }


def test_write_without_images_and_valid_split_key(tmp_path: Path, source_images: dict[str, Path]) -> None:
    # no width/height on the ref: the writer reads the size from the file
    ref = ImageRef("a.jpg", path=str(source_images["a"]))
    out = tmp_path / "out"
    report = yolo.write([Sample(ref, (Annotation("a", Box(16, 12, 48, 36)),), split="valid")], out,
                        images=ImageMode.NONE)
    assert report.files == 2 and not (out / "images").exists()
    assert (out / "labels/valid/a.txt").read_text() == "0 0.500000 0.500000 0.500000 0.500000\n"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["val"] == "images/valid" and "valid" not in data


def _sideways_jpeg(path: Path) -> Path:
    """64×48 pixels stored, EXIF orientation 6: upright it is 48 wide and 64 high."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (64, 48), (1, 2, 3)).save(path, exif=exif)
    return path


def test_sizes_are_upright_for_exif_rotated_images(tmp_path: Path) -> None:
    image = _sideways_jpeg(tmp_path / "src/side.jpg")
    out = tmp_path / "out"
    # no size on the ref: the writer reads the upright size from the file
    yolo.write([Sample(ImageRef("side.jpg", path=str(image)), (Annotation("a", Box(0, 0, 24, 32)),))], out)
    assert (out / "labels/train/side.txt").read_text() == "0 0.250000 0.250000 0.500000 0.500000\n"
    (sample,) = list(yolo.read(out))
    assert (sample.image.width, sample.image.height) == (48, 64)
    assert sample.annotations[0].geometry == Box(0, 0, 24, 32)


def test_write_empty_dataset_reads_back_empty(tmp_path: Path) -> None:
    report = yolo.write([], tmp_path / "out")
    assert report.images == 0
    reader = yolo.read(tmp_path / "out")
    assert list(reader) == [] and len(reader.classes) == 0


# --------------------------------------------------------------------------- real data


RACCOONS = ("raccoon-1", "raccoon-10", "raccoon-101", "raccoon-117", "raccoon-119")


def _voc_boxes(xml: Path) -> list[Box]:
    """VOC boxes are 1-based inclusive pixels: x0 = xmin - 1, x1 = xmax."""
    boxes = []
    for obj in ET.parse(xml).getroot().iter("object"):
        bb = obj.find("bndbox")
        assert bb is not None
        xmin, ymin, xmax, ymax = (float(bb.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append(Box(xmin - 1, ymin - 1, xmax, ymax))
    return boxes


def test_real_raccoon_images(raccoon: Path, tmp_path: Path) -> None:
    root = tmp_path / "raccoon_yolo"
    expected: dict[str, list[Box]] = {}
    for name in RACCOONS:
        image = root / "images/train" / f"{name}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raccoon / "images" / f"{name}.jpg", image)
        with Image.open(image) as im:
            width, height = im.size
        boxes = _voc_boxes(raccoon / "annotations" / f"{name}.xml")
        lines = []
        for box in boxes:
            cx, cy, w, h = box.cxcywh()
            lines.append(f"0 {cx / width:.10f} {cy / height:.10f} {w / width:.10f} {h / height:.10f}")
        _text(root / "labels/train" / f"{name}.txt", "\n".join(lines) + "\n")
        expected[f"images/train/{name}.jpg"] = boxes
    _text(root / "data.yaml", "path: .\ntrain: images/train\nval: images/train\nnames:\n  0: raccoon\n")

    samples = list(yolo.read(root))  # val == train: read once
    assert sorted(s.image.file_name for s in samples) == sorted(expected)
    assert sum(len(v) for v in expected.values()) == 8
    for sample in samples:
        got = [a.geometry for a in sample.annotations]
        want = expected[sample.image.file_name]
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert (g.x0, g.y0, g.x1, g.y1) == pytest.approx((w.x0, w.y0, w.x1, w.y1), abs=1e-4)

    out = tmp_path / "rewritten"
    report = yolo.write(samples, out)
    assert report.images == 5 and report.annotations == {"box": 8} and not report.dropped
    again = {s.image.file_name: s for s in yolo.read(out)}
    for sample in samples:
        twin = again[sample.image.file_name]
        w = sample.image.width or 0
        assert all(_same_geometry(a.geometry, b.geometry, w)
                   for a, b in zip(sample.annotations, twin.annotations, strict=True))


def test_supervision_reads_what_we_write(tmp_path: Path, source_images: dict[str, Path]) -> None:
    import supervision as sv  # an independent reader (a test dependency)
    boxes = [Box(3.0, 4.0, 40.0, 33.0), Box(10.0, 12.0, 20.0, 30.0)]
    sample = Sample(_ref(source_images["a"], 64, 48), tuple(Annotation("dog", b) for b in boxes))
    out = tmp_path / "out"
    yolo.write([sample], out)
    ds = sv.DetectionDataset.from_yolo(images_directory_path=str(out / "images/train"),
                                       annotations_directory_path=str(out / "labels/train"),
                                       data_yaml_path=str(out / "data.yaml"))
    (_, _, detections), = list(ds)
    assert ds.classes == ["dog"]
    import numpy as np

    np.testing.assert_allclose(detections.xyxy, [[b.x0, b.y0, b.x1, b.y1] for b in boxes], atol=1e-3)
