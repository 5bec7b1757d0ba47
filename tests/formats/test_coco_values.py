"""COCO values are numbers or refused, ids are unique (issue 11, item 8)."""

import json

import pytest

from visionloop.core.errors import FormatError
from visionloop.formats import read

IMAGE = {"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}


def _read(tmp_path, annotations, images=(IMAGE,)):
    doc = {"images": list(images), "annotations": annotations, "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    return [a for s in read(tmp_path / "a.json", format="coco") for a in s.annotations]


def _ann(**kw):
    return {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40], **kw}


@pytest.mark.parametrize(("ann", "message"), [
    (_ann(bbox=["10", "20", "30", "40"]), "bbox values must be numbers, got ['10', '20', '30', '40']"),
    (_ann(bbox=["10", "20", "30", "40"], score=0.5), "bbox values must be numbers, got '10'"),  # the general path
    (_ann(bbox=[True, 87, 442, 321]), "bbox values must be numbers, got [True, 87, 442, 321]"),
    (_ann(area="1200"), "area values must be numbers, got '1200'"),
    (_ann(segmentation=[[1, 2, "3", 4, 5, 6]]), "polygon values must be numbers"),
    (_ann(keypoints=[1, 2, True], bbox=None), "keypoints values must be numbers, got True"),
    (_ann(category_id=True), "`image_id` and `category_id` must be ids, not true/false"),
])
def test_strings_and_booleans_are_refused_where_numbers_belong(tmp_path, ann, message):
    with pytest.raises(FormatError) as e:
        _read(tmp_path, [ann])
    assert message in str(e.value) and e.value.where.startswith("annotations[0]")


def test_a_boolean_width_is_refused_like_a_string_width(tmp_path):
    for width in ("650", True):
        with pytest.raises(FormatError, match="image `width` must be a non-negative number") as e:
            _read(tmp_path, [], images=[{**IMAGE, "width": width}])
        assert e.value.where == "images[0]"


def test_numbers_still_read_exactly(tmp_path):
    (a,) = _read(tmp_path, [_ann(bbox=[10, 20.5, 30, 40])])
    assert (a.geometry.x0, a.geometry.y0, a.geometry.x1, a.geometry.y1) == (10, 20.5, 40, 60.5)


@pytest.mark.parametrize("ids", [[1, 2, 1], [5, 3, 9, 3], ["a", "b", "a"]])
def test_a_repeated_annotation_id_is_an_error_naming_both(tmp_path, ids):
    anns = [_ann(id=i) for i in ids]
    second = next(k for k in range(len(ids)) if ids[k] in ids[:k])
    with pytest.raises(FormatError) as e:
        _read(tmp_path, anns)
    first = ids.index(ids[second])
    assert f"duplicate annotation id {ids[second]!r}" in str(e.value).replace('"', "'") or \
        f"duplicate annotation id {ids[second]}" in str(e.value)
    assert f"(first at annotations[{first}])" in str(e.value) and e.value.where == f"annotations[{second}]"


def test_the_duplicate_image_id_error_names_the_duplicate(tmp_path):
    images = [IMAGE, {**IMAGE, "id": 2, "file_name": "b.jpg"}, {**IMAGE, "file_name": "c.jpg"}]
    with pytest.raises(FormatError) as e:
        _read(tmp_path, [], images=images)
    assert e.value.where == "images[2]" and "duplicate image id 1 (first at images[0])" in str(e.value)
