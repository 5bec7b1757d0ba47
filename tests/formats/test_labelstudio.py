"""Label Studio JSON export.

Fixture laid out as Label Studio exports a project ("JSON" export), following
https://labelstud.io/guide/export.html#Label-Studio-JSON-format-of-annotated-tasks ,
https://labelstud.io/guide/task_format and the tag pages (https://labelstud.io/tags/rectanglelabels:
x, y, width, height in percent, `rotation` about the top-left corner; /tags/brushlabels: `rle`).
The brush RLE bytes below were produced by label-studio-converter 0.0.59 (`brush.mask2rle`), an
independent implementation, for the 7×5 mask drawn next to them.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import FormatError
from visionloop.core.geometry import Box, Caption, Keypoints, Label, Mask, Polygon, RotatedBox
from visionloop.core.sample import Annotation, ImageRef, LabelState, Sample, Source
from visionloop.formats import detect, labelstudio
from visionloop.formats.base import ImageMode

# label-studio-converter's mask2rle of this mask (1 = painted)
CONVERTER_RLE = [0, 0, 0, 140, 57, 27, 254, 35, 0, 191, 255, 108, 2, 255, 253, 176, 11, 255, 241, 128, 71,
                 255, 133, 192, 0]
SMALL = np.array([[0, 0, 0, 0, 0, 0, 0],
                  [0, 0, 1, 1, 1, 1, 0],
                  [0, 0, 1, 1, 1, 1, 0],
                  [0, 0, 1, 1, 1, 1, 0],
                  [1, 0, 0, 0, 0, 0, 0]], dtype=np.uint8)
# sha256 of label-studio-converter's mask2rle for _big_mask() (runs longer than 256 and 65536)
CONVERTER_BIG_SHA = "84ad0590e19c30a2b2ecd640f2de102a1e8f6d5ffe9daef369076f2c2288b97d"


def _big_mask() -> np.ndarray:
    big = np.zeros((300, 260), np.uint8)
    big[200:260, 10:250] = 1
    big[299, 259] = 1
    return big


def _rect(rid: str, x: float, y: float, w: float, h: float, labels: list[str], *, rotation: float = 0,
          size: tuple[int, int] = (200, 100), **extra: object) -> dict[str, object]:
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": size[0], "original_height": size[1], "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": labels},
            **extra}


EXPORT = [
    {
        "id": 1,
        "data": {"image": "/data/upload/1/a1b2c3-cat.jpg"},
        "annotations": [
            {"id": 1001, "completed_by": 10, "was_cancelled": False, "ground_truth": False,
             "created_at": "2021-03-09T22:16:08.728353Z", "updated_at": "2021-03-09T22:16:08.728378Z",
             "lead_time": 4.288, "result_count": 0, "task": 1,
             "result": [
                 _rect("r1", 10, 20, 20, 30, ["Cat"]),
                 {"id": "r1", "type": "textarea", "from_name": "note", "to_name": "image",
                  "value": {"text": ["fluffy"]}},
                 _rect("r2", 10, 20, 20, 30, ["Cat", "Pet"], rotation=90),
                 {"id": "p1", "type": "polygonlabels", "from_name": "polygon", "to_name": "image",
                  "original_width": 200, "original_height": 100, "image_rotation": 0,
                  "value": {"points": [[10, 10], [50, 10], [50, 50]], "closed": True, "polygonlabels": ["Cat"]}},
                 {"id": "k1", "type": "keypointlabels", "from_name": "kp", "to_name": "image",
                  "original_width": 200, "original_height": 100, "image_rotation": 0,
                  "value": {"x": 50, "y": 50, "width": 0.5, "keypointlabels": ["Nose"]}},
                 {"id": "c1", "type": "choices", "from_name": "weather", "to_name": "image",
                  "value": {"choices": ["Sunny"]}},
                 {"id": "t1", "type": "textarea", "from_name": "caption", "to_name": "image",
                  "value": {"text": ["a cat in the sun", "a sleepy cat"]}},
                 {"id": "s1", "type": "rating", "from_name": "quality", "to_name": "image", "value": {"rating": 4}},
             ]},
            {"id": 1002, "was_cancelled": True, "result": [_rect("z", 0, 0, 10, 10, ["Cat"])]},
        ],
        "predictions": [
            {"model_version": "yolo-v1", "score": 0.8, "created_ago": "3 hours",
             "result": [_rect("x1", 0, 0, 50, 50, ["Dog"], score=0.75)]},
        ],
    },
    {
        "id": 2,
        "data": {"image": "/data/local-files/?d=pictures/small.png"},
        "annotations": [
            {"id": 2001, "was_cancelled": False, "result": [
                {"id": "b1", "type": "brushlabels", "from_name": "brush", "to_name": "image",
                 "original_width": 7, "original_height": 5, "image_rotation": 0,
                 "value": {"format": "rle", "rle": CONVERTER_RLE, "brushlabels": ["Cat"]}}]},
            {"id": 2002, "was_cancelled": False, "result": [
                _rect("q1", 0, 0, 100, 100, ["Cat"], size=(7, 5))]},
        ],
        "predictions": [],
    },
    {"id": 3, "data": {"image": "/data/upload/1/empty.jpg"}, "annotations": [{"id": 3001, "result": []}],
     "predictions": []},
    {"id": 4, "data": {"image": "/data/upload/1/todo.jpg"}, "annotations": [], "predictions": []},
]


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    (root / "images").mkdir(parents=True)
    (root / "pictures").mkdir()
    Image.new("RGB", (200, 100)).save(root / "images" / "a1b2c3-cat.jpg")
    Image.new("RGB", (7, 5)).save(root / "pictures" / "small.png")
    Image.new("RGB", (20, 10)).save(root / "images" / "empty.jpg")
    Image.new("RGB", (20, 10)).save(root / "images" / "todo.jpg")
    f = root / "project-1-at-2021-03-09-22-16-abcdef.json"
    f.write_text(json.dumps(EXPORT, indent=2))
    return f


def test_brush_rle_matches_label_studio_converter() -> None:
    where = {"path": Path("x.json"), "where": "test"}
    np.testing.assert_array_equal(labelstudio.decode_brush(CONVERTER_RLE, 7, 5, **where), SMALL)  # type: ignore[arg-type]
    assert labelstudio.encode_brush(SMALL) == CONVERTER_RLE
    big = labelstudio.encode_brush(_big_mask())
    assert hashlib.sha256(bytes(big)).hexdigest() == CONVERTER_BIG_SHA
    np.testing.assert_array_equal(labelstudio.decode_brush(big, 260, 300, **where), _big_mask())  # type: ignore[arg-type]


def test_rotation_is_about_the_top_left_corner() -> None:
    # 200×100 image, x=10% y=20% → top-left (20, 20); 40×30 px turned 90° clockwise about it:
    # the width now points down, the height left, so the box spans x -10..20, y 20..60.
    sample = labelstudio._task({"data": {"image": "a.jpg"}, "annotations": [
        {"result": [_rect("r", 10, 20, 20, 30, ["a"], rotation=90)]}]}, 0, Path("/nowhere/x.json"),
        labelstudio.ClassMap(), None)
    g = sample.annotations[0].geometry
    assert isinstance(g, RotatedBox)
    assert (g.cx, g.cy, g.w, g.h, g.angle) == (5, 40, 40, 30, 90)
    assert g.bounds() == Box(-10, 20, 20, 60)
    # any angle: the first corner of the rotated box is Label Studio's (x, y)
    t = math.radians(30)
    sample = labelstudio._task({"data": {"image": "a.jpg"}, "annotations": [
        {"result": [_rect("r", 10, 20, 20, 30, ["a"], rotation=30)]}]}, 0, Path("/nowhere/x.json"),
        labelstudio.ClassMap(), None)
    g = sample.annotations[0].geometry
    assert isinstance(g, RotatedBox)
    assert g.corners()[0] == pytest.approx((20, 20))
    assert g.corners()[1] == pytest.approx((20 + 40 * math.cos(t), 20 + 40 * math.sin(t)))


def test_detect(export: Path) -> None:
    assert labelstudio.detect(export).score >= 0.9
    assert labelstudio.detect(export.parent).score >= 0.9
    assert detect(export) == "labelstudio"


def test_read_exact(export: Path) -> None:
    reader = labelstudio.read(export)
    a, b, c, d = list(reader)
    assert reader.classes.names == ["Cat", "Nose", "Sunny", "Dog"]
    assert a.image.file_name == "a1b2c3-cat.jpg" and a.image.size == (200, 100)
    assert a.image.path == str(export.parent / "images" / "a1b2c3-cat.jpg")
    assert a.image.metadata["ls_image"] == "/data/upload/1/a1b2c3-cat.jpg"
    assert a.annotations == (
        Annotation("Cat", Box(20, 20, 60, 50), attributes={"note": "fluffy"}, source=Source.HUMAN),
        Annotation("Cat", RotatedBox(5, 40, 40, 30, 90), attributes={"extra_labels": ["Pet"]}, source=Source.HUMAN),
        Annotation("Cat", Polygon(((20, 10, 100, 10, 100, 50),)), source=Source.HUMAN),
        Annotation("Nose", Keypoints((100, 50, 2)), source=Source.HUMAN),
        Annotation("Sunny", Label(), source=Source.HUMAN),
        Annotation("", Caption("a cat in the sun"), source=Source.HUMAN),  # the image captioning template's TextArea
        Annotation("", Caption("a sleepy cat"), source=Source.HUMAN),
        Annotation("Dog", Box(0, 0, 100, 50), attributes={"model_version": "yolo-v1"}, source=Source.MODEL,
                   confidence=0.75),
    )
    assert a.image.metadata["ls_results"] == [EXPORT[0]["annotations"][0]["result"][-1]]  # type: ignore[index]
    assert b.image.file_name == "pictures/small.png"
    mask, box = b.annotations
    assert isinstance(mask.geometry, Mask) and mask.attributes == {"ls_annotation": 0}
    np.testing.assert_array_equal(mask.geometry.to_array(), SMALL)
    assert box == Annotation("Cat", Box(0, 0, 7, 5), attributes={"ls_annotation": 1}, source=Source.HUMAN)
    assert c.state is LabelState.NULL and c.annotations == ()
    assert d.state is LabelState.MISSING


def test_roundtrip(export: Path, tmp_path: Path) -> None:
    first = list(labelstudio.read(export))
    out = tmp_path / "out"
    report = labelstudio.write(first, out)
    assert report.images == 4 and report.files == 4
    assert dict(report.annotations) == {"box": 3, "rotated_box": 1, "polygon": 1, "keypoints": 1, "label": 1,
                                        "mask": 1, "caption": 2}
    assert not report.dropped and not report.converted
    assert labelstudio.detect(out).score >= 0.9
    back = list(labelstudio.read(out))
    assert [s.image.file_name for s in back] == [s.image.file_name for s in first]
    assert [s.annotations for s in back] == [s.annotations for s in first]
    assert [s.state for s in back] == [s.state for s in first]
    assert back[0].image.metadata["ls_results"] == first[0].image.metadata["ls_results"]
    config = (out / "label_config.xml").read_text()
    assert '<RectangleLabels name="label" toName="image">' in config and '<TextArea name="note"' in config
    assert '<TextArea name="caption" toName="image"/>' in config
    task = json.loads((out / "tasks.json").read_text())[0]
    # one textarea result holds the control's texts, as Label Studio writes one TextArea's answers
    assert [r["value"] for r in task["annotations"][0]["result"] if r["from_name"] == "caption"] == [
        {"text": ["a cat in the sun", "a sleepy cat"]}]
    assert task["data"]["image"] == "/data/local-files/?d=images/a1b2c3-cat.jpg"
    assert task["predictions"][0]["score"] == 0.75 and task["predictions"][0]["model_version"] == "yolo-v1"


def test_write_converts_what_label_studio_cannot_hold(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "x.png")
    ref = ImageRef("x.png", width=10, height=10, path=str(tmp_path / "x.png"))
    sample = Sample(ref, (
        Annotation("p", Keypoints((1, 1, 2, 2, 2, 1, 0, 0, 0))),
        Annotation("b", Box(0, 0, 1, 1), attributes={"occluded": True}, crowd=True, track_id=3),
    ))
    report = labelstudio.write([sample], tmp_path / "o", images=ImageMode.NONE)
    assert report.converted == {"keypoints visibility -> visible points": 1,
                                "keypoints (2 points) -> 2 keypoint regions": 1, "attribute bool -> number": 1}
    assert report.dropped == {"crowd flag: Label Studio has no crowd flag": 1,
                              "track id: Label Studio image tasks have no tracks": 1}
    back = list(labelstudio.read(tmp_path / "o"))[0]
    assert [a.geometry for a in back.annotations] == [Keypoints((1, 1, 2)), Keypoints((2, 2, 2)), Box(0, 0, 1, 1)]
    assert back.annotations[2].attributes == {"occluded": 1}


def test_bad_input_names_task_and_result(export: Path) -> None:
    doc = json.loads(export.read_text())
    doc[0]["annotations"][0]["result"][2]["value"]["width"] = "wide"
    export.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as e:
        list(labelstudio.read(export))
    assert export.name in str(e.value)
    assert "task 0 (id 1) annotation 0 result 2 (rectanglelabels)" in str(e.value) and "value.width" in str(e.value)
    doc[0]["annotations"][0]["result"][2]["value"]["width"] = 20
    doc[1]["annotations"][0]["result"][0]["value"]["rle"] = CONVERTER_RLE[:10]
    export.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="brush RLE ends early"):
        list(labelstudio.read(export))
    export.write_text(json.dumps(EXPORT)[:-30])
    with pytest.raises(FormatError) as e:
        list(labelstudio.read(export))
    assert "line 1" in str(e.value)
