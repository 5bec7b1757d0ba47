"""TensorFlow Object Detection CSV: read, write, pixel convention against VOC, errors, detection."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from visionloop.core import (
    Annotation,
    Box,
    FormatError,
    ImageRef,
    Keypoints,
    Label,
    LabelState,
    Polygon,
    Sample,
)
from visionloop.formats import ImageMode, detect, tfcsv, tfrecord, voc


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


def _coords(box: object) -> tuple[float, float, float, float]:
    assert isinstance(box, Box)
    return (box.x0, box.y0, box.x1, box.y1)


@pytest.fixture()
def roboflow(tmp_path: Path) -> Path:
    """Roboflow's "Tensorflow Object Detection CSV" export: <split>/_annotations.csv, images beside.

    https://roboflow.com/formats/tensorflow-object-detection-csv
    """
    root = tmp_path / "rf"
    (root / "train").mkdir(parents=True)
    (root / "valid").mkdir()
    (root / "train" / "_annotations.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\n"
        "a.jpg,64,48,dog,1,2,30,40\n"
        "b.jpg,100,80,cat,10.5,20,50,79\n"
        "a.jpg,64,48,cat,0,0,64,48\n"  # rows of one image need not be adjacent
    )
    _image(root / "train" / "a.jpg", 64, 48)
    _image(root / "train" / "b.jpg", 100, 80)
    _image(root / "train" / "empty.jpg", 32, 32)  # listed nowhere: labelled empty
    (root / "valid" / "_annotations.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\nc.png,50,50,dog,5,5,10,10\n")
    _image(root / "valid" / "c.png", 50, 50)
    return root


def test_read_roboflow(roboflow: Path) -> None:
    reader = tfcsv.read(roboflow)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state, s.image.size) for s in samples] == [
        ("a.jpg", "train", LabelState.ANNOTATED, (64, 48)),
        ("b.jpg", "train", LabelState.ANNOTATED, (100, 80)),
        ("empty.jpg", "train", LabelState.NULL, None),
        ("c.png", "valid", LabelState.ANNOTATED, (50, 50)),
    ]
    a, b, _, c = samples
    assert [(x.label, _coords(x.geometry)) for x in a.annotations] == [
        ("dog", (1.0, 2.0, 30.0, 40.0)), ("cat", (0.0, 0.0, 64.0, 48.0))]
    assert [(x.label, _coords(x.geometry)) for x in b.annotations] == [("cat", (10.5, 20.0, 50.0, 79.0))]
    assert a.image.path == str(roboflow / "train" / "a.jpg")
    assert [(k.name, k.id) for k in reader.classes] == [("dog", 0), ("cat", 1)]


def test_raccoon_csv_header_and_pixel_convention(raccoon: Path) -> None:
    """Pins the convention: TF CSV numbers are continuous edges; raccoon's CSV copied VOC's integers.

    raccoon-146.jpg: VOC XML says xmin=4 ymin=4 xmax=271 ymax=180 (1-based inclusive), and
    xml_to_csv.py copied those numbers into test_labels.csv. Read as TF CSV (x0 = xmin, the way
    generate_tfrecord.py divides them) and as VOC (x0 = xmin - 1) they differ by 1 px at the top-left.
    """
    RACCOON = raccoon
    for name in ("train_labels.csv", "test_labels.csv"):
        with open(RACCOON / "data" / name, newline="") as f:
            assert f.readline() == "filename,width,height,class,xmin,ymin,xmax,ymax\n"
    rows = [r for r in csv.DictReader(open(RACCOON / "data" / "test_labels.csv", newline=""))
            if r["filename"] == "raccoon-146.jpg"]
    assert [(r["xmin"], r["ymin"], r["xmax"], r["ymax"]) for r in rows] == [("4", "4", "271", "180")]
    xml = (RACCOON / "annotations" / "raccoon-146.xml").read_text()
    assert "<xmin>4</xmin>" in xml and "<ymin>4</ymin>" in xml and "<xmax>271</xmax>" in xml
    (ours,) = [s for s in tfcsv.read(RACCOON / "data" / "test_labels.csv") if s.image.file_name == "raccoon-146.jpg"]
    (from_voc,) = voc.read(RACCOON / "annotations" / "raccoon-146.xml")
    assert _coords(ours.annotations[0].geometry) == (4.0, 4.0, 271.0, 180.0)
    assert _coords(from_voc.annotations[0].geometry) == (3.0, 3.0, 271.0, 180.0)
    assert ours.split == "test" and ours.image.size == (275, 183)


def test_raccoon_csv_agrees_with_the_tfrecord_built_from_it(raccoon: Path) -> None:
    RACCOON = raccoon
    from_csv = {s.image.file_name: sorted(_coords(a.geometry) for a in s.annotations)
                for s in tfcsv.read(RACCOON / "data" / "test_labels.csv")}
    from_record = {s.image.file_name: sorted(_coords(a.geometry) for a in s.annotations)
                   for s in tfrecord.read(RACCOON / "data" / "test.record")}
    assert from_csv == from_record and len(from_csv) == 40


def test_read_raccoon_data_folder(raccoon: Path) -> None:
    RACCOON = raccoon
    samples = list(tfcsv.read(RACCOON / "data"))
    assert len(samples) == 200 and sum(len(s.annotations) for s in samples) == 217
    assert {s.split for s in samples} == {"train", "test"}
    assert all(Path(s.image.path).is_file() for s in samples)  # type: ignore[arg-type]  # found in ../images


def test_round_trip(tmp_path: Path, roboflow: Path) -> None:
    originals = list(tfcsv.read(roboflow))
    report = tfcsv.write(originals, tmp_path / "out")
    assert report.images == 4 and report.annotations == {"box": 4} and not report.dropped
    again = list(tfcsv.read(tmp_path / "out"))
    assert [(s.image.file_name, s.split, s.state) for s in again] == [
        (s.image.file_name, s.split, s.state) for s in originals]
    for x, y in zip(originals, again, strict=True):
        assert x.annotations == y.annotations
    assert (tmp_path / "out" / "train" / "_annotations.csv").read_text().splitlines()[:3] == [
        "filename,width,height,class,xmin,ymin,xmax,ymax",
        "a.jpg,64,48,dog,1,2,30,40",
        "a.jpg,64,48,cat,0,0,64,48",
    ]


def test_write_converts_and_drops(tmp_path: Path) -> None:
    img = _image(tmp_path / "x.jpg", 40, 30)
    sample = Sample(ImageRef("x.jpg", path=str(img)), (
        Annotation("p", Polygon.from_points([(1, 2), (10.25, 2), (5, 20)])),
        Annotation("k", Keypoints((1, 1, 2))),
        Annotation("scene", Label()),
    ))
    report = tfcsv.write([sample, Sample(ImageRef("x.jpg", path=str(img)), ())], tmp_path / "out")
    assert report.converted == {"polygon -> box (bounds)": 1,
                                "image name -> renamed (name already used in its folder)": 1}
    assert report.dropped == {
        "keypoints: TF Object Detection CSV holds boxes only and these keypoints declare no box": 1,
        "label: TF Object Detection CSV cannot hold whole-image labels": 1,
    }
    got = list(tfcsv.read(tmp_path / "out"))
    assert [(s.image.file_name, s.state) for s in got] == [("x.jpg", LabelState.ANNOTATED),
                                                           ("x_1.jpg", LabelState.NULL)]
    assert _coords(got[0].annotations[0].geometry) == (1.0, 2.0, 10.25, 20.0)
    with pytest.raises(FormatError):
        tfcsv.write([sample], tmp_path / "out")


def test_bad_number(tmp_path: Path) -> None:
    (tmp_path / "_annotations.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,10,10,x,1,2,3,4\na.jpg,10,10,x,1,two,3,4\n")
    with pytest.raises(FormatError) as err:
        list(tfcsv.read(tmp_path))
    assert "_annotations.csv" in str(err.value) and err.value.where == "line 3" and "'two'" in err.value.message


def test_inverted_box_and_size_conflict(tmp_path: Path) -> None:
    f = tmp_path / "train_labels.csv"
    f.write_text("filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,10,10,x,5,2,3,4\n")
    with pytest.raises(FormatError) as err:
        list(tfcsv.read(f))
    assert err.value.path == str(f) and err.value.where == "line 2"
    f.write_text("filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,10,10,x,1,2,3,4\na.jpg,12,10,x,1,2,3,4\n")
    with pytest.raises(FormatError) as err:
        list(tfcsv.read(f))
    assert err.value.where == "line 3" and "10x10" in err.value.message


def test_detect(roboflow: Path, tmp_path: Path, raccoon: Path) -> None:
    assert detect(roboflow) == "tfcsv"
    assert detect(roboflow / "train" / "_annotations.csv") == "tfcsv"
    other = tmp_path / "other.csv"
    other.write_text("path,x1,y1,x2,y2,class_name\n")  # a box CSV by its column names (test_csv_kaggle.py)
    assert tfcsv.detect(other).score == 0.5
    other.write_text("path,label\n")  # no box columns: not claimed
    assert tfcsv.detect(other).score == 0
    assert detect(raccoon / "data" / "train_labels.csv") == "tfcsv"
    assert detect(raccoon / "data") == "tfrecord"  # the records beside the CSVs win: images inside
    assert detect(raccoon) == "voc"


def test_images_without_boxes_read_back_null(tmp_path: Path) -> None:
    img = _image(tmp_path / "src.jpg", 10, 10)
    samples = [Sample(ImageRef("sub/n.jpg", path=str(img)), ()), Sample(ImageRef("m.jpg", path=str(img)), ())]
    report = tfcsv.write(samples, tmp_path / "out")
    assert report.images == 2 and not report.dropped
    assert (tmp_path / "out" / "_annotations.csv").read_text() == "filename,width,height,class,xmin,ymin,xmax,ymax\n"
    got = list(tfcsv.read(tmp_path / "out"))
    assert sorted((s.image.file_name, s.state) for s in got) == [("m.jpg", LabelState.NULL),
                                                                ("sub/n.jpg", LabelState.NULL)]
    report = tfcsv.write(samples, tmp_path / "out2", images=ImageMode.NONE)
    assert report.dropped == {
        "image: no boxes, and TF CSV lists only images with boxes (images not written)": 2}
