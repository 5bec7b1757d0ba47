"""The streaming JSON walker against json.loads, with windows small enough to cut every token."""

import json

import pytest

from visionloop.core import FormatError
from visionloop.formats._jsonwalk import array_cut, resume, top_level

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


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_slices_between_cuts_give_the_whole_array(tmp_path, chunk):
    """stop= gives the array's offset; array_cut finds cuts; resume(end=…) reads each slice; together: the array."""
    doc = {**DOC, "annotations": sorted(DOC["annotations"], key=lambda a: a["image_id"])}
    p = tmp_path / "doc.json"
    p.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    key, at = list(top_level(p, stream=set(), stop={"annotations"}))[-1]
    assert key == "annotations" and p.read_bytes()[at:at + 1] == b"["
    size = p.stat().st_size
    cuts, firsts = [], []
    for target in range(at, size, 700):
        found = array_cut(p, target, lambda e: e["image_id"])
        if found and (not cuts or found[0] > cuts[-1]):
            cuts.append(found[0])
            firsts.append(found[1])
    assert len(cuts) >= 5
    got = []
    bounds = [at, *cuts]
    for k, start in enumerate(bounds):
        end = bounds[k + 1] if k + 1 < len(bounds) else None
        for key, value in resume(p, start, "annotations", stream={"annotations", "empty"}, inside=k > 0, end=end,
                                 chunk=chunk):
            if key == "annotations":
                got += list(value)
            elif end is None:  # the last slice walks on to the end of the document
                assert key in ("empty", "categories")
                if key == "empty":
                    assert list(value) == []
    assert got == doc["annotations"]
    # each cut is at a change of image: its element is the first of its image
    for first in firsts:
        i = got.index(first)
        assert i > 0 and got[i - 1]["image_id"] != first["image_id"]


def test_a_cut_inside_an_element_is_caught(tmp_path):
    p = tmp_path / "doc.json"
    p.write_text(json.dumps({"a": [{"x": {"y": 1}, "z": 2}, {"x": {"y": 3}, "z": 4}]}))
    (_, at), = list(top_level(p, stream=set(), stop={"a"}))
    inner = p.read_bytes().index(b'{"y": 3}')
    with pytest.raises(FormatError):
        for _, value in resume(p, at, "a", stream={"a"}, end=inner):
            list(value)
