"""Apple Create ML object detection JSON: read, write, round trip, errors, detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from visionloop.core import Annotation, Box, FormatError, ImageRef, Label, LabelState, RotatedBox, Sample
from visionloop.formats import createml, detect


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


def _coords(box: object) -> tuple[float, float, float, float]:
    assert isinstance(box, Box)
    return (box.x0, box.y0, box.x1, box.y1)


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """As Apple documents it (x, y = centre) and Roboflow exports it (_annotations.createml.json per split).

    https://developer.apple.com/documentation/createml/building-an-object-detector-data-source
    """
    root = tmp_path / "cml"
    (root / "train").mkdir(parents=True)
    (root / "train" / "_annotations.createml.json").write_text(json.dumps([
        {"image": "a.jpg", "annotations": [
            {"label": "carrot", "coordinates": {"x": 120, "y": 164, "width": 230, "height": 119}},
            {"label": "orange", "coordinates": {"x": 230, "y": 321, "width": 50, "height": 50}},
        ]},
        {"image": "b.jpg", "annotations": []},
    ], indent=2))
    _image(root / "train" / "a.jpg", 400, 400)
    _image(root / "train" / "b.jpg", 40, 40)
    (root / "test").mkdir()
    (root / "test" / "_annotations.createml.json").write_text(
        '[{"image":"c.jpg","annotations":[{"label":"carrot","coordinates":{"x":10.5,"y":10,"width":3,"height":4.5}}]}]')
    _image(root / "test" / "c.jpg", 20, 20)
    return root


def test_read(dataset: Path) -> None:
    reader = createml.read(dataset)
    samples = list(reader)
    assert [(s.image.file_name, s.split, s.state) for s in samples] == [  # split folders in name order
        ("c.jpg", "test", LabelState.ANNOTATED),
        ("a.jpg", "train", LabelState.ANNOTATED),
        ("b.jpg", "train", LabelState.NULL),
    ]
    by_name = {s.image.file_name: s for s in samples}
    a = by_name["a.jpg"]
    assert [(x.label, _coords(x.geometry)) for x in a.annotations] == [
        ("carrot", (5.0, 104.5, 235.0, 223.5)), ("orange", (205.0, 296.0, 255.0, 346.0))]
    assert _coords(by_name["c.jpg"].annotations[0].geometry) == (9.0, 7.75, 12.0, 12.25)
    assert a.image.path == str(dataset / "train" / "a.jpg") and a.image.width is None
    assert [(c.name, c.id) for c in reader.classes] == [("carrot", 0), ("orange", 1)]


def test_round_trip(dataset: Path, tmp_path: Path) -> None:
    originals = list(createml.read(dataset))
    report = createml.write(originals, tmp_path / "out")
    assert report.images == 3 and report.annotations == {"box": 3} and not report.dropped
    again = list(createml.read(tmp_path / "out"))
    assert [(s.image.file_name, s.split, s.state, s.annotations) for s in again] == [
        (s.image.file_name, s.split, s.state, s.annotations) for s in originals]
    text = json.loads((tmp_path / "out" / "train" / "_annotations.createml.json").read_text())
    assert text[0]["annotations"][0] == {"label": "carrot",
                                         "coordinates": {"x": 120, "y": 164, "width": 230, "height": 119}}


def test_fractional_round_trip_and_conversions(tmp_path: Path) -> None:
    img = _image(tmp_path / "x.png", 50, 50)
    box = Box(1.1, 2.2, 3.3, 7.7)
    sample = Sample(ImageRef("x.png", path=str(img)), (
        Annotation("a", box), Annotation("b", RotatedBox(10, 10, 4, 2, 90)), Annotation("c", Label())))
    missing = Sample(ImageRef("y.png", path=str(img)), (), state=LabelState.MISSING)
    report = createml.write([sample, missing], tmp_path / "out")
    assert report.converted == {"rotated_box -> box (bounds)": 1,
                                "image missing labels -> null (an entry without annotations)": 1}
    assert report.dropped == {"label: Create ML cannot hold whole-image labels": 1}
    got, y = createml.read(tmp_path / "out")
    assert _coords(got.annotations[0].geometry) == pytest.approx(_coords(box), abs=1e-12)  # centre arithmetic
    assert _coords(got.annotations[1].geometry) == pytest.approx((9, 8, 11, 12), abs=1e-12)
    assert y.state is LabelState.NULL


def test_bad_annotation(tmp_path: Path) -> None:
    f = tmp_path / "ann.json"
    f.write_text('[{"image":"a.jpg","annotations":[]},'
                 '{"image":"b.jpg","annotations":[{"label":"x","coordinates":{"x":1,"y":2,"width":3}}]}]')
    with pytest.raises(FormatError) as err:
        list(createml.read(f))
    assert err.value.path == str(f) and err.value.where == "[1] (b.jpg) annotations[0]"


def test_malformed_json(tmp_path: Path) -> None:
    f = tmp_path / "ann.json"
    f.write_text('[{"image":"a.jpg","annotations":[]},{"image":')
    with pytest.raises(FormatError) as err:
        list(createml.read(f))
    assert "ann.json" in str(err.value)


def test_detect(dataset: Path, tmp_path: Path) -> None:
    assert detect(dataset) == "createml"
    assert detect(dataset / "train" / "_annotations.createml.json") == "createml"
    studio = tmp_path / "ls.json"  # Label Studio's export is an array too, but not of {image, annotations}
    studio.write_text('[{"id": 1, "annotations": [], "data": {"image": "a.jpg"}}]')
    assert createml.detect(studio).score == 0
    coco = tmp_path / "coco.json"
    coco.write_text('{"images": [], "annotations": [], "categories": []}')
    assert createml.detect(coco).score == 0
