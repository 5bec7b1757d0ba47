"""The streaming JSON walker against json.loads, with windows small enough to cut every token."""

import json

import pytest

from visionloop.core import FormatError
from visionloop.formats._jsonwalk import top_level

DOC = {
    "info": {"description": "ünïcode ☃ and \"quotes\"", "year": 2026},
    "images": [{"id": i, "file_name": f"dir/ímage_{i}.jpg", "width": 640, "height": 480} for i in range(30)],
    "annotations": [{"id": k, "image_id": k % 30, "bbox": [1.5e2, -0.25, 12345678901234, 3], "segmentation": [],
                     "attributes": {"note": "a,b]c}"}} for k in range(90)],
    "empty": [],
    "categories": [{"id": 7, "name": "thing"}],
}


def _walk(path, chunk):
    out = {}
    for key, value in top_level(path, stream={"images", "annotations", "empty"}, chunk=chunk):
        out[key] = list(value) if key in ("images", "annotations", "empty") else value
    return out


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_same_as_json_loads_at_any_window(tmp_path, indent, chunk):
    p = tmp_path / "doc.json"
    p.write_text(json.dumps(DOC, indent=indent, ensure_ascii=False), encoding="utf-8")
    assert _walk(p, chunk) == json.loads(p.read_text(encoding="utf-8"))


def test_consumer_may_skip_an_array(tmp_path):
    p = tmp_path / "doc.json"
    p.write_text(json.dumps(DOC))
    keys = [k for k, _ in top_level(p, stream={"images", "annotations"}, chunk=5)]
    assert keys == ["info", "images", "annotations", "empty", "categories"]


@pytest.mark.parametrize("text, where", [
    ('{"images": [{"id": 1}, {"id": 2]}', "line 1"),
    ('{"images": [1, 2}\n', "line 1"),
    ('{"a": 1,\n "b": }', "line 2"),
    ('[1, 2]', None),
])
def test_errors_name_the_file_and_line(tmp_path, text, where):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(FormatError) as e:
        _walk(p, 4)
    assert "bad.json" in str(e.value)
    if where:
        assert where in str(e.value)
