"""RetinaNet Keras CSV: read, negatives, class ids, integer rounding, round trip, errors, detection."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from visionloop.core import (
    Annotation,
    Box,
    ClassMap,
    FormatError,
    ImageRef,
    Label,
    LabelState,
    Polygon,
    Sample,
)
from visionloop.formats import detect, retinanet, tfcsv


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


@pytest.fixture()
def fizyr(tmp_path: Path) -> Path:
    """As https://github.com/fizyr/keras-retinanet#csv-datasets documents it (paths relative to the CSV) and as its
    reader parses it: fizyr/keras-retinanet:keras_retinanet/preprocessing/csv_generator.py `_read_annotations` (no
    header, `path,,,,,` for an image without objects, integer corners) and `_read_classes` (`name,id`). The tool
    has no writer; test_tool_sources.py checks what our writer writes against those rules."""
    root = tmp_path / "rn"
    (root / "images").mkdir(parents=True)
    (root / "annotations.csv").write_text(
        "images/img_001.jpg,837,346,981,456,cow\n"
        "images/img_002.jpg,215,312,279,391,cat\n"
        "images/img_002.jpg,22,5,89,84,bird\n"
        "images/img_003.jpg,,,,,\n"
    )
    (root / "classes.csv").write_text("cow,0\ncat,1\nbird,2\n")
    for n in (1, 2, 3):
        _image(root / "images" / f"img_00{n}.jpg", 1000, 500)
    return root


def test_read(fizyr: Path) -> None:
    reader = retinanet.read(fizyr)
    assert [(c.name, c.id) for c in reader.classes] == [("cow", 0), ("cat", 1), ("bird", 2)]
    samples = list(reader)
    assert [(s.image.file_name, s.state) for s in samples] == [
        ("images/img_001.jpg", LabelState.ANNOTATED),
        ("images/img_002.jpg", LabelState.ANNOTATED),
        ("images/img_003.jpg", LabelState.NULL),
    ]
    assert [(a.label, a.geometry) for a in samples[1].annotations] == [
        ("cat", Box(215, 312, 279, 391)), ("bird", Box(22, 5, 89, 84))]
    assert samples[0].image.path == str(fizyr / "images" / "img_001.jpg")


def test_round_trip(fizyr: Path, tmp_path: Path) -> None:
    reader = retinanet.read(fizyr)
    originals = list(reader)
    report = retinanet.write(originals, tmp_path / "out", classes=reader.classes)
    assert report.images == 3 and report.annotations == {"box": 3} and not report.converted
    assert (tmp_path / "out" / "_classes.csv").read_text() == "cow,0\ncat,1\nbird,2\n"
    assert (tmp_path / "out" / "_annotations.csv").read_text().splitlines()[-1] == "images/img_003.jpg,,,,,"
    again_reader = retinanet.read(tmp_path / "out")
    again = list(again_reader)
    assert [(s.state, s.annotations) for s in again] == [(s.state, s.annotations) for s in originals]
    assert [(c.name, c.id) for c in again_reader.classes] == [("cow", 0), ("cat", 1), ("bird", 2)]


def test_write_rounds_to_integers(tmp_path: Path) -> None:
    img = _image(tmp_path / "x.jpg", 50, 50)
    sample = Sample(ImageRef("x.jpg", path=str(img)), (
        Annotation("a", Box(1.4, 2.5, 10.6, 20)),
        Annotation("a", Box(5.2, 5, 5.4, 6)),
        Annotation("b", Polygon.from_points([(0, 0), (4, 0), (4, 3)])),
        Annotation("c", Label()),
    ), split="train")
    report = retinanet.write([sample], tmp_path / "out", classes=ClassMap.from_names(["b", "a"]))
    assert report.converted == {
        "box -> integer pixel corners (rounded)": 2,
        "box -> widened to 1 px (keras-retinanet needs x2 > x1, y2 > y1)": 1,
        "polygon -> box (bounds)": 1,
    }
    assert report.dropped == {"label: RetinaNet CSV cannot hold whole-image labels": 1}
    assert (tmp_path / "out" / "train" / "_annotations.csv").read_text() == (
        "x.jpg,1,3,11,20,a\nx.jpg,5,5,6,6,a\nx.jpg,0,0,4,3,b\n")
    assert (tmp_path / "out" / "train" / "_classes.csv").read_text() == "b,0\na,1\n"
    (got,) = retinanet.read(tmp_path / "out")
    assert got.split == "train" and got.annotations[0].geometry == Box(1, 3, 11, 20)


def test_bad_rows(fizyr: Path) -> None:
    (fizyr / "annotations.csv").write_text("images/img_001.jpg,1,2,3,4,cow\nimages/img_002.jpg,1,2,3,cat\n")
    with pytest.raises(FormatError) as err:
        list(retinanet.read(fizyr))
    assert "annotations.csv" in str(err.value) and err.value.where == "line 2"
    (fizyr / "annotations.csv").write_text("images/img_001.jpg,1,2,3,4,dog\n")
    with pytest.raises(FormatError) as err:
        list(retinanet.read(fizyr))
    assert err.value.where == "line 1" and "'dog'" in err.value.message
    (fizyr / "annotations.csv").write_text("images/img_001.jpg,5,2,3,4,cow\n")
    with pytest.raises(FormatError) as err:
        list(retinanet.read(fizyr))
    assert err.value.where == "line 1"


def test_detect(fizyr: Path, tmp_path: Path) -> None:
    assert detect(fizyr) == "retinanet"
    assert detect(fizyr / "annotations.csv") == "retinanet"
    tf = tmp_path / "tf"
    tf.mkdir()
    (tf / "_annotations.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,1,1,x,0,0,1,1\n")
    assert retinanet.detect(tf).score == 0 and tfcsv.detect(tf).score > 0
