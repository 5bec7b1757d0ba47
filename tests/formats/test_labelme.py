"""LabelMe JSON: every shape type, group_id instances, flags, imageData, round trip, errors, detection."""

from __future__ import annotations

import base64
import io
import json
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
    Keypoints,
    Label,
    LabelState,
    Mask,
    Polygon,
    Polyline,
    RotatedBox,
    Sample,
)
from visionloop.formats import detect, labelme


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 90)).save(path)
    return path


def _png_b64(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(bool)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _shape(label: str, kind: str, points: list[list[float]], **kw: object) -> dict[str, object]:
    return {"label": label, "points": points, "group_id": kw.pop("group_id", None), "description": "",
            "shape_type": kind, "flags": {}, "mask": kw.pop("mask", None), **kw}


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    """As the labelme app saves (labelme/_label_file.py LabelFile.save): x.json beside x.jpg.

    https://github.com/wkentaro/labelme (examples/instance_segmentation/data_annotated)
    """
    root = tmp_path / "lm"
    _image(root / "a.jpg", 60, 40)
    patch = np.zeros((3, 4), bool)
    patch[1:, 1:] = True  # pixels (x 11..13, y 6..7) once placed at origin (10, 5)
    doc = {
        "version": "5.5.0",
        "flags": {"outdoor": True, "blurry": False},
        "shapes": [
            _shape("dog", "rectangle", [[30, 20.5], [10, 2]]),
            _shape("cat", "polygon", [[1, 1], [5, 1], [5, 5]], group_id=7),
            _shape("cat", "polygon", [[20, 20], [25, 20], [25, 25]], group_id=7),
            {**_shape("ball", "circle", [[30, 30], [33, 34]]), "flags": {"occluded": True}},
            _shape("blob", "mask", [[10, 5], [13, 7]], mask=_png_b64(patch)),
            _shape("nose", "point", [[3.5, 4.5]]),
            _shape("edge", "line", [[0, 0], [10, 10]]),
            {**_shape("car", "oriented_rectangle", [[10, 10], [20, 10], [20, 14], [10, 14]]),
             "description": "parked", "custom": 3},
        ],
        "imagePath": "a.jpg",
        "imageData": None,
        "imageHeight": 40,
        "imageWidth": 60,
    }
    (root / "a.json").write_text(json.dumps(doc, indent=2))
    # b: the image only inside imageData, with a Windows path; labelled empty
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (1, 2, 3)).save(buf, format="PNG")
    (root / "sub").mkdir()
    (root / "sub" / "b.json").write_text(json.dumps({
        "version": "4.5.6", "flags": {}, "shapes": [], "imagePath": "..\\elsewhere\\b.png",
        "imageData": base64.b64encode(buf.getvalue()).decode(), "imageHeight": 6, "imageWidth": 8}))
    _image(root / "c.png", 10, 10)  # no JSON: nobody labelled it
    return root


def test_read(dataset: Path, caplog: pytest.LogCaptureFixture) -> None:
    reader = labelme.read(dataset)
    samples = list(reader)
    assert [(s.image.file_name, s.state, s.image.size) for s in samples] == [
        ("a.jpg", LabelState.ANNOTATED, (60, 40)),
        ("elsewhere/b.png", LabelState.NULL, (8, 6)),
        ("c.png", LabelState.MISSING, None),
    ]
    a, b, _ = samples
    with Image.open(b.image.path) as im:  # type: ignore[arg-type]  # extracted from imageData
        assert im.size == (8, 6)
    anns = a.annotations
    assert [x.label for x in anns] == ["dog", "cat", "ball", "blob", "nose", "edge", "car", "outdoor"]
    assert anns[0].geometry == Box(10, 2, 30, 20.5)
    assert anns[1].geometry == Polygon(((1, 1, 5, 1, 5, 5), (20, 20, 25, 20, 25, 25))) and anns[1].track_id == 7
    circle = anns[2].geometry
    assert isinstance(circle, Polygon) and len(circle.rings[0]) == 2 * labelme.CIRCLE_VERTICES
    assert circle.area == pytest.approx(math.pi * 25, rel=2e-3) and anns[2].attributes == {"flags": {"occluded": True}}
    mask = anns[3].geometry
    assert isinstance(mask, Mask) and (mask.height, mask.width) == (40, 60)
    arr = mask.to_array()
    assert arr.sum() == 6 and arr[6:8, 11:14].all()
    assert anns[4].geometry == Keypoints((3.5, 4.5, 2.0))
    assert anns[5].geometry == Polyline((0, 0, 10, 10))  # a `line`
    car = anns[6]
    assert isinstance(car.geometry, RotatedBox) and (car.geometry.cx, car.geometry.cy, car.geometry.w,
                                                     car.geometry.h, car.geometry.angle) == (15, 12, 10, 4, 0)
    assert car.attributes == {"description": "parked", "custom": 3}
    assert anns[7].geometry == Label()
    assert "not read" not in caplog.text
    assert reader.classes.names == ["dog", "cat", "ball", "blob", "nose", "edge", "car", "outdoor"]


def test_round_trip(dataset: Path, tmp_path: Path) -> None:
    originals = list(labelme.read(dataset))
    report = labelme.write(originals, tmp_path / "out")
    assert report.annotations == {"box": 1, "polygon": 2, "mask": 1, "keypoints": 1, "polyline": 1, "rotated_box": 1,
                                  "label": 1}
    assert not report.dropped
    again = list(labelme.read(tmp_path / "out"))
    assert [(s.image.file_name, s.state) for s in again] == [
        ("a.jpg", LabelState.ANNOTATED), ("b.png", LabelState.NULL), ("c.png", LabelState.MISSING)]
    assert again[0].annotations[:2] == originals[0].annotations[:2]
    assert again[0].annotations[3:] == originals[0].annotations[3:]
    assert again[0].annotations[2].geometry == originals[0].annotations[2].geometry  # circle kept as its polygon
    assert not (tmp_path / "out" / "c.json").exists()
    written = json.loads((tmp_path / "out" / "a.json").read_text())
    assert written["shapes"][0]["points"] == [[10, 2], [30, 20.5]]
    assert written["shapes"][4]["points"] == [[11, 6], [13, 7]]  # the mask patch's first and last pixel
    assert written["flags"] == {"outdoor": True} and written["imageData"] is None


def test_write_multi_part_polygon_and_keypoints(tmp_path: Path) -> None:
    img = _image(tmp_path / "x.png", 30, 30)
    sample = Sample(ImageRef("x.png", path=str(img)), (
        Annotation("p", Polygon(((0, 0, 4, 0, 4, 4), (10, 10, 14, 10, 14, 14)))),
        Annotation("k", Keypoints((1, 1, 2, 0, 0, 0, 5, 6, 1))),
        Annotation("e", Mask.from_array(np.zeros((30, 30), np.uint8))),
    ))
    report = labelme.write([sample], tmp_path / "out")
    assert report.converted == {"keypoints -> points (one shape each, shared group_id; visibility lost)": 1}
    assert report.dropped == {"mask: empty mask: LabelMe cannot place it": 1}
    (got,) = labelme.read(tmp_path / "out")
    assert got.annotations[0].geometry == sample.annotations[0].geometry and got.annotations[0].track_id == 1
    assert [a.geometry for a in got.annotations[1:]] == [Keypoints((1, 1, 2)), Keypoints((5, 6, 2))]
    assert {a.track_id for a in got.annotations[1:]} == {2}


def test_bad_shape(tmp_path: Path) -> None:
    _image(tmp_path / "a.jpg", 10, 10)
    (tmp_path / "a.json").write_text(json.dumps({
        "version": "5.5.0", "flags": {}, "imagePath": "a.jpg", "imageData": None,
        "shapes": [_shape("x", "rectangle", [[1, 1], [2, 2]]), _shape("y", "rectangle", [[1, 1]])]}))
    with pytest.raises(FormatError) as err:
        list(labelme.read(tmp_path))
    assert err.value.path == str(tmp_path / "a.json") and err.value.where == "shapes[1]"
    assert "2 points" in err.value.message


def test_malformed_json(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"shapes": [], "imagePath": "a.jpg", ')
    with pytest.raises(FormatError) as err:
        list(labelme.read(tmp_path / "a.json"))
    assert "a.json" in str(err.value)


def test_detect(dataset: Path, tmp_path: Path) -> None:
    assert detect(dataset) == "labelme"
    assert detect(dataset / "a.json") == "labelme"
    coco = tmp_path / "coco.json"
    coco.write_text('{"images": [], "annotations": [], "categories": []}')
    assert labelme.detect(coco).score == 0


def test_line_to_coco_is_counted_dropped(tmp_path) -> None:
    """A LabelMe `line` reads as a Polyline; COCO has no line geometry, so converting counts it as dropped, and
    --strict refuses it (it was skipped on read before visionloop had a Polyline; never silent either way)."""
    import json

    import pytest
    from PIL import Image

    from visionloop.core.errors import LossError
    from visionloop.formats.convert import convert

    (tmp_path / "lm").mkdir()
    Image.new("RGB", (8, 6)).save(tmp_path / "lm" / "a.png")
    shapes = [{"label": "cat", "points": [[1, 1], [5, 4]], "group_id": None, "shape_type": "rectangle", "flags": {}},
              {"label": "edge", "points": [[0, 0], [3, 3]], "group_id": None, "shape_type": "line", "flags": {}}]
    (tmp_path / "lm" / "a.json").write_text(json.dumps({"version": "5.5.0", "flags": {}, "shapes": shapes,
                                                        "imagePath": "a.png", "imageData": None,
                                                        "imageHeight": 6, "imageWidth": 8}))
    report = convert(tmp_path / "lm", tmp_path / "o", to="coco", from_="labelme", images="none", workers=1)
    assert report.annotations == {"box": 1} and not report.skipped
    assert report.dropped == {"polyline: coco has no line geometry (open polylines)": 1}
    with pytest.raises(LossError, match="would be dropped: polyline: coco has no line geometry"):
        convert(tmp_path / "lm", tmp_path / "o2", to="coco", from_="labelme", images="none", strict=True, workers=1)
    assert not (tmp_path / "o2").exists()
