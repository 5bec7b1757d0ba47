"""YOLO Darknet (obj.data, obj.names, train.txt, labels beside images): read, write, round trip, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
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
)
from visionloop.formats import darknet, yolo


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


def _text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _coords(box: Box) -> tuple[float, float, float, float]:
    return (box.x0, box.y0, box.x1, box.y1)


@pytest.fixture()
def cvat_dataset(tmp_path: Path) -> Path:
    """CVAT's "YOLO 1.1" export: paths with darknet's data/ prefix; valid.txt without it."""
    root = tmp_path / "dn"
    _text(root / "obj.data", (
        "classes = 2\n"
        "train = data/train.txt\n"
        "valid = data/valid.txt\n"
        "names = data/obj.names\n"
        "backup = backup/\n"
    ))
    _text(root / "obj.names", "person\ncar\n")
    _text(root / "train.txt", "data/obj_train_data/a.jpg\ndata/obj_train_data/empty.jpg\n")
    _text(root / "valid.txt", "obj_valid_data/b.png\nobj_valid_data/nolabel.jpg\n")
    _image(root / "obj_train_data/a.jpg", 64, 48)
    _text(root / "obj_train_data/a.txt", "0 0.5 0.5 0.25 0.5\n1 0.125 0.25 0.25 0.5\n")
    _image(root / "obj_train_data/empty.jpg", 64, 48)
    _text(root / "obj_train_data/empty.txt", "")
    _image(root / "obj_valid_data/b.png", 100, 80)
    _text(root / "obj_valid_data/b.txt", "1 0.3 0.4 0.2 0.1\n")
    _image(root / "obj_valid_data/nolabel.jpg", 100, 80)
    return root


def test_read_cvat_layout(cvat_dataset: Path) -> None:
    reader = darknet.read(cvat_dataset)
    assert reader.classes.names == ["person", "car"]
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [
        ("obj_train_data/a.jpg", "train", LabelState.ANNOTATED),
        ("obj_train_data/empty.jpg", "train", LabelState.NULL),
        ("obj_valid_data/b.png", "val", LabelState.ANNOTATED),
        ("obj_valid_data/nolabel.jpg", "val", LabelState.MISSING),
    ]
    a, _, b, _ = samples
    assert (a.image.width, a.image.height) == (64, 48)
    assert a.image.path == str((cvat_dataset / "obj_train_data/a.jpg").absolute())
    assert [(x.label, x.geometry) for x in a.annotations] == [
        ("person", Box(24.0, 12.0, 40.0, 36.0)),
        ("car", Box(0.0, 0.0, 16.0, 24.0)),
    ]
    assert b.annotations[0].label == "car"
    assert _coords(b.annotations[0].geometry) == pytest.approx((20.0, 28.0, 40.0, 36.0), abs=1e-9)


def test_read_from_obj_data_file_and_split_override(cvat_dataset: Path) -> None:
    samples = list(darknet.read(cvat_dataset / "obj.data", split="all"))
    assert len(samples) == 4 and {s.split for s in samples} == {"all"}


def test_read_without_obj_data(cvat_dataset: Path) -> None:
    (cvat_dataset / "obj.data").unlink()
    samples = list(darknet.read(cvat_dataset))
    assert [s.split for s in samples] == ["train", "train", "val", "val"]


def test_read_without_lists_takes_every_image(tmp_path: Path) -> None:
    _text(tmp_path / "obj.names", "a\n")
    _image(tmp_path / "x/one.jpg", 64, 48)
    _text(tmp_path / "x/one.txt", "0 0.5 0.5 0.5 0.5\n")
    (sample,) = list(darknet.read(tmp_path))
    assert sample.split is None and sample.annotations[0].geometry == Box(16, 12, 48, 36)


def test_foreign_absolute_paths_are_found_by_their_data_tail(cvat_dataset: Path) -> None:
    _text(cvat_dataset / "train.txt", "/home/someone/darknet/data/obj_train_data/a.jpg\n")
    samples = list(darknet.read(cvat_dataset))
    assert samples[0].image.file_name == "obj_train_data/a.jpg"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("line", "message"), [
    ("0 0.1 0.1 0.5 0.1 0.5 0.5\n", "expected 5 fields (class cx cy w h), got 7"),
    ("0 0.5 0.5 0.2\n", "expected 5 fields"),
    ("0 0.5 0.5 zero 0.2\n", "'zero' is not a number"),
    ("2 0.5 0.5 0.2 0.2\n", "class index 2 is not in the class names"),
])
def test_bad_label_line(cvat_dataset: Path, line: str, message: str) -> None:
    _text(cvat_dataset / "obj_train_data/a.txt", "0 0.5 0.5 0.25 0.5\n" + line)
    with pytest.raises(FormatError) as e:
        list(darknet.read(cvat_dataset))
    assert "a.txt" in str(e.value) and "line 2" in str(e.value) and message in str(e.value)


def test_listed_image_missing(cvat_dataset: Path) -> None:
    _text(cvat_dataset / "valid.txt", "obj_valid_data/b.png\ndata/obj_valid_data/gone.jpg\n")
    with pytest.raises(ImageError) as e:
        list(darknet.read(cvat_dataset))
    assert "valid.txt" in str(e.value) and "line 2" in str(e.value) and "gone.jpg" in str(e.value)


@pytest.mark.parametrize(("text", "where", "message"), [
    ("classes = 3\nnames = obj.names\n", "line 1", "`classes = 3` but obj.names has 2 names"),
    ("classes = 2\ntrain data/train.txt\n", "line 2", "expected `key = value`"),
    ("classes = 2\nnames = data/nothing.names\n", "line 2", "not found"),
    ("classes = 2\ntrain = data/nothing.txt\n", "line 2", "image list"),
])
def test_bad_obj_data(cvat_dataset: Path, text: str, where: str, message: str) -> None:
    _text(cvat_dataset / "obj.data", text)
    with pytest.raises(FormatError) as e:
        darknet.read(cvat_dataset)
    assert "obj.data" in str(e.value) and where in str(e.value) and message in str(e.value)


def test_blank_line_in_names(cvat_dataset: Path) -> None:
    _text(cvat_dataset / "obj.names", "person\n\ncar\n")
    with pytest.raises(FormatError, match=r"obj\.names \(line 2\)"):
        darknet.read(cvat_dataset)


def test_not_darknet(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="no obj.data and no obj.names"):
        darknet.read(tmp_path)


# --------------------------------------------------------------------------- detect


def test_detect(cvat_dataset: Path, tmp_path: Path) -> None:
    assert darknet.detect(cvat_dataset).score == 0.95
    assert darknet.detect(cvat_dataset / "obj.data").score == 0.95
    (cvat_dataset / "obj.data").unlink()
    assert darknet.detect(cvat_dataset).score == 0.8
    empty = tmp_path / "empty"
    empty.mkdir()
    assert darknet.detect(empty).score == 0
    ultra = tmp_path / "ultra"
    _text(ultra / "data.yaml", "train: images/train\nnames: [a]\n")
    assert darknet.detect(ultra).score == 0
    assert yolo.detect(cvat_dataset).score == 0  # no data.yaml, no images/ + labels/


# --------------------------------------------------------------------------- write


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    a = _image(tmp_path / "src/a.jpg", 64, 48)
    b = _image(tmp_path / "src/b.png", 100, 80)
    c = _image(tmp_path / "src/c.jpg", 64, 48)
    d = _image(tmp_path / "src/d.jpg", 64, 48)
    arr = np.zeros((80, 100), dtype=np.uint8)
    arr[10:20, 5:25] = 1
    samples = [
        Sample(ImageRef("a.jpg", 64, 48, path=str(a)), (
            Annotation("dog", Box(3.2, 4.8, 40.0, 33.6)),
            Annotation("cat", Polygon.from_points([(1.0, 2.0), (20.0, 3.0), (10.0, 30.0)])),
            Annotation("cat", RotatedBox(30.0, 20.0, 16.0, 8.0, 90.0)),
        ), split="train"),
        Sample(ImageRef("sub/b.png", 100, 80, path=str(b)), (
            Annotation("bird", Mask.from_array(arr)),
            Annotation("person", Keypoints((10, 10, 2, 30, 40, 2)), bbox=Box(5, 5, 35, 45)),
            Annotation("person", Keypoints((10, 10, 2))),
            Annotation("dog", Label()),
        ), split="val"),
        Sample(ImageRef("c.jpg", 64, 48, path=str(c)), (), split="val"),
        Sample(ImageRef("d.jpg", 64, 48, path=str(d)), (), state=LabelState.MISSING),
    ]
    out = tmp_path / "out"
    report = darknet.write(samples, out, classes=ClassMap.from_names(["zebra"]))
    assert report.images == 4
    assert report.annotations == {"box": 5}
    assert report.converted == {
        "polygon -> box (bounds)": 1,
        "rotated_box -> box (bounds)": 1,
        "mask -> box (bounds)": 1,
        "keypoints -> box (declared bbox)": 1,
    }
    assert report.dropped == {
        "keypoints: Darknet holds boxes only and these keypoints declare no box": 1,
        "label: Darknet cannot hold whole-image labels": 1,
    }
    assert report.files == 4 + 3 + 2 + 2  # images, labels (a, b, c), train/valid lists, obj.names + obj.data
    assert (out / "obj.names").read_text() == "zebra\ndog\ncat\nbird\nperson\n"
    assert (out / "obj.data").read_text() == (
        "classes = 5\ntrain = data/train.txt\nvalid = data/valid.txt\nnames = data/obj.names\nbackup = backup/\n"
    )
    assert (out / "train.txt").read_text() == "data/obj_train_data/a.jpg\ndata/obj_train_data/d.jpg\n"
    assert (out / "valid.txt").read_text() == "data/obj_valid_data/b.png\ndata/obj_valid_data/c.jpg\n"
    assert (out / "obj_train_data/a.txt").read_text().splitlines()[0] == "1 0.337500 0.400000 0.575000 0.600000"
    assert (out / "obj_valid_data/c.txt").read_text() == ""
    assert not (out / "obj_train_data/d.txt").exists()

    reader = darknet.read(out)
    assert reader.classes.names == ["zebra", "dog", "cat", "bird", "person"]
    back = {s.image.file_name: s for s in reader}
    assert [(k, s.split, s.state) for k, s in back.items()] == [
        ("obj_train_data/a.jpg", "train", LabelState.ANNOTATED),
        ("obj_train_data/d.jpg", "train", LabelState.MISSING),
        ("obj_valid_data/b.png", "val", LabelState.ANNOTATED),
        ("obj_valid_data/c.jpg", "val", LabelState.NULL),
    ]
    expected = {
        "obj_train_data/a.jpg": [("dog", Box(3.2, 4.8, 40.0, 33.6)), ("cat", Box(1.0, 2.0, 20.0, 30.0)),
                                 ("cat", Box(26.0, 12.0, 34.0, 28.0))],
        "obj_valid_data/b.png": [("bird", Box(5.0, 10.0, 25.0, 20.0)), ("person", Box(5, 5, 35, 45))],
    }
    for name, want in expected.items():
        got = back[name].annotations
        assert [g.label for g in got] == [w[0] for w in want]
        scale = back[name].image.width or 0
        for g, (_, w) in zip(got, want, strict=True):
            assert _coords(g.geometry) == pytest.approx(_coords(w), abs=1e-6 * scale)


def test_write_renames_colliding_names(tmp_path: Path) -> None:
    a = _image(tmp_path / "src/x/p.jpg", 64, 48)
    b = _image(tmp_path / "src/y/p.jpg", 64, 48)
    samples = [Sample(ImageRef("x/p.jpg", 64, 48, path=str(a)), (Annotation("a", Box(0, 0, 32, 24)),)),
               Sample(ImageRef("y/p.jpg", 64, 48, path=str(b)), (Annotation("a", Box(32, 24, 64, 48)),))]
    out = tmp_path / "out"
    report = darknet.write(samples, out)
    assert report.converted == {"image name -> renamed (name already used in its split)": 1}
    back = [(s.image.file_name, s.annotations[0].geometry) for s in darknet.read(out)]
    assert back == [("obj_train_data/p.jpg", Box(0, 0, 32, 24)), ("obj_train_data/p_1.jpg", Box(32, 24, 64, 48))]


def test_real_raccoon_round_trip(raccoon: Path, tmp_path: Path) -> None:
    """Raccoon boxes from VOC (1-based inclusive: x0 = xmin - 1, x1 = xmax) survive Darknet write → read."""
    import xml.etree.ElementTree as ET

    samples = []
    for name in ("raccoon-12", "raccoon-130", "raccoon-2"):
        image = tmp_path / "src" / f"{name}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raccoon / "images" / f"{name}.jpg", image)
        with Image.open(image) as im:
            width, height = im.size
        anns = []
        for obj in ET.parse(raccoon / "annotations" / f"{name}.xml").getroot().iter("object"):
            xmin, ymin, xmax, ymax = (float(obj.findtext(f"bndbox/{k}", "nan"))
                                      for k in ("xmin", "ymin", "xmax", "ymax"))
            anns.append(Annotation("raccoon", Box(xmin - 1, ymin - 1, xmax, ymax)))
        samples.append(Sample(ImageRef(image.name, width, height, path=str(image)), tuple(anns)))
    out = tmp_path / "out"
    darknet.write(samples, out)
    back = list(darknet.read(out))
    assert [s.image.file_name for s in back] == [f"obj_train_data/{s.image.file_name}" for s in samples]
    for want, got in zip(samples, back, strict=True):
        assert (got.image.width, got.image.height) == (want.image.width, want.image.height)
        assert len(got.annotations) == len(want.annotations)
        for g, w in zip(got.annotations, want.annotations, strict=True):
            # 6 decimals of a fraction: at most 1e-6 of the image size off
            assert _coords(g.geometry) == pytest.approx(_coords(w.geometry), abs=1e-6 * (want.image.width or 0))
